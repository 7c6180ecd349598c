"""What every acceleration stack implements: the Backend interface.

A stack's code runs in three places, and the interface says which method runs where:

- **the builder child** (fff.builder, a process that built the model and holds it):
  ``prepare_artifact`` makes what the stack runs (an IR, a compiled or quantized model), cached on
  disk by content where that is costly; ``cache_trace`` traces one inference for the cache model
  (fff.explain.cache_model) or raises NotModelled with the reason.
- **the stack's worker** (fff.measure.worker, a process of its own, so thread pools never share one):
  an instance built from the artifact; ``prepare`` runs the first inference and the warm-up and
  returns the output for the parity check and the effective configuration read back from the
  runtime; ``round`` times iterations with counters and CPU accounting; ``breakdown`` takes the
  stack's own per-layer profile (after the timed rounds, never inside them).
- **the parent** (plain data only): ``environment`` for the worker, ``check_available`` before
  anything is built, ``parity_tolerance`` per precision, ``attribute`` to map a raw layer profile
  to the model's layers and the category taxonomy (fff.explain.breakdown), ``simulation_job`` for
  valgrind's cache simulation (fff.explain.simulation_phase) or NotSimulated with the reason.

Class attributes describe the stack to the registry and the reports: ``name``, ``label``,
``color``, the ``precisions`` it can compute in, whether it needs the PyTorch module
(``needs_module``: a model file has none) and whether it honours ``--device``.

A minimal stack overrides ``__init__`` (keep the module and input), ``infer`` (one inference,
returning the output) and ``config``; the timed loop, counters, contention accounting and the
first inference come from here. fff measures it exactly as it measures its built-in stacks.
"""

from __future__ import annotations

import os
import time
from typing import Any, ClassVar

import numpy as np

from fff.errors import FffError

__all__ = ["Backend", "NotModelled", "NotSimulated", "fixed_seed_input", "cpus_asked", "side_precision", "PRECISIONS"]

PRECISIONS = ("f32", "bf16", "f16", "int8")  # every precision fff can ask a stack for


class NotModelled(FffError):
    """The cache model cannot trace this stack (its record says why instead of giving a figure)."""


class NotSimulated(FffError):
    """Valgrind cannot run this stack's inference (its record says why)."""


def fixed_seed_input(input_shape) -> np.ndarray:
    """The input every stack sees: standard normal, seed 0."""
    return np.random.default_rng(0).standard_normal(tuple(input_shape)).astype(np.float32)


def side_precision(backend_class, precision: str) -> str:
    """The precision a stack computes in when ``precision`` is asked: that one where it offers it,
    else f32 (the baseline's case: PyTorch eager has no int8, so an int8 stack is compared with its
    f32; the profiler refuses every other stack that lacks the precision before anything is built)."""
    return precision if precision in backend_class.precisions else "f32"


def cpus_asked(threads: int) -> int:
    """The CPUs a pool of ``threads`` spinning threads can keep busy here."""
    return max(1, min(threads, len(os.sched_getaffinity(0))))


class Backend:
    """One acceleration stack (see the module docstring for where each method runs)."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""  # how reports name it, e.g. "PyTorch eager"
    color: ClassVar[str] = ""  # its colour in every figure; empty: one picked from its name
    precisions: ClassVar[tuple[str, ...]] = ("f32",)
    needs_module: ClassVar[bool] = True  # False: it can run a model file (.onnx, .xml) without PyTorch
    honours_device: ClassVar[bool] = False  # False: it always runs on the CPU, whatever --device says
    simulation_needs_module: ClassVar[bool] = False  # the simulated child loads the module the builder saved
    artifact_name: ClassVar[str] = "artifact"  # what notes call prepare_artifact's product ("IR")
    # The cache model's error against simulation on this stack, as bench/bench_cache_model.py measured
    # it; a report quotes it where no simulated cell calibrated the model. Empty: never measured.
    cache_model_error: ClassVar[str] = ""
    # The Python packages it runs on: their versions go into every record of it, and a study's
    # simulation servers import them once, before forking a child per job.
    packages: ClassVar[tuple[str, ...]] = ()
    # ``prepare`` may take this many times the workers' answer limit (FFF_WORKER_TIMEOUT, else 600 s):
    # more than 1 for a stack that compiles in its worker, where a large model takes minutes.
    prepare_timeout_scale: ClassVar[float] = 1.0

    # --- the parent ------------------------------------------------------------------------------

    @classmethod
    def environment(cls, threads: int) -> dict[str, str]:
        """Variables its worker process starts with (thread pools that read them at start-up)."""
        return {}

    @classmethod
    def check_available(cls, device: str) -> None:
        """Raise a one-line FffError when this machine cannot run the stack on ``device``."""

    @classmethod
    def device_of(cls, device: str) -> str:
        """The device a record names for a run asked to use ``device``."""
        return device if cls.honours_device else "CPU"

    @classmethod
    def effective_threads(cls, config: dict) -> int | None:
        """The thread count its runtime reported in ``config`` (``config()``'s result); None: none reported."""
        try:
            return int(config["threads"])
        except (KeyError, TypeError, ValueError):
            return None

    @classmethod
    def parity_tolerance(cls, precision: str, baseline_precision: str):
        """How close its output must be to the baseline's (fff.measure.parity.Tolerance)."""
        from fff.measure.parity import tolerance_for

        return tolerance_for(precision, baseline_precision)

    @classmethod
    def attribute(cls, raw: dict, baseline_raw: dict | None, reported_ms: float | None) -> dict:
        """Its per-layer profile (``breakdown``'s raw output) as a fff.explain.breakdown table."""
        raise NotImplementedError(f"{cls.name} has no per-layer profile")

    @classmethod
    def simulation_job(cls, *, target: str, build_options: dict, input_shape, artifact: dict, precision: str,
                       module_path: str | None) -> dict:
        """``{"run": "module:function", "kwargs": {...}, "weights": "..."}``: what the simulated child
        calls (``function(iterations=, warmup=, **kwargs)``) to run inferences between callgrind's
        client requests (fff.explain.callgrind.measure_callable does that for a Python callable)."""
        raise NotSimulated(f"{cls.name}: cache simulation is not implemented for this stack")

    # --- the builder child -----------------------------------------------------------------------

    @classmethod
    def prepare_artifact(cls, model, *, cache_dir=None, fresh: bool = False, precision: str = "f32") -> dict:
        """What its worker runs at ``precision``, as plain data (``cached``: from a cache; ``notes``: said
        to the user). A quantized stack quantizes here (int8), so the cost stays out of the worker; the
        builder passes ``precision`` only for int8 (the one precision that changes an artifact), and
        with it ``calibration`` (a directory of images, fff.backends.calibration) when the user gave one."""
        return {"cached": False, "notes": []}

    @classmethod
    def cache_trace(cls, model, artifact: dict, precision: str):
        """(warm-up, counted) fff.explain.cache_model.Trace of one inference, or NotModelled."""
        raise NotModelled(f"{cls.name}: the cache model has no tracer for this stack")

    # --- the worker ------------------------------------------------------------------------------

    def __init__(self, *, target: str, build_options: dict, artifact: dict, input_shape, device: str, threads: int,
                 precision: str):
        self.target, self.threads, self.precision = target, threads, precision
        self.input_shape = tuple(input_shape)

    def set_input(self, array: np.ndarray) -> None:
        """Keep the input for ``infer`` (called once, before the first inference)."""
        self._input = array

    def infer(self) -> Any:
        """One inference on the input ``set_input`` gave; returns the output."""
        raise NotImplementedError

    def output_array(self, output) -> np.ndarray | list[np.ndarray]:
        """``infer``'s output as a float32 numpy array for the parity check; a model with several
        outputs (a tuple, list or dict of tensors, fff.models.outputs) gives one array per output,
        in order."""
        from fff.models.outputs import named_outputs

        if isinstance(output, (tuple, list, dict)):
            return [self.output_array(tensor) for _, tensor in named_outputs(output, self.target)]
        if hasattr(output, "detach"):
            output = output.detach().float().cpu().numpy()
        return np.asarray(output, dtype=np.float32)

    def config(self) -> dict:
        """The effective configuration, read back from the runtime after it compiled."""
        return {}

    def clock(self) -> dict:
        return {"source": "perf_counter_ns", "reason": "Python's monotonic clock around each inference call"}

    def prepare(self, inputs: list[np.ndarray], warmup: int) -> dict:
        self.set_input(inputs[0])
        start = time.perf_counter_ns()
        output = self.infer()
        first_ns = time.perf_counter_ns() - start
        for _ in range(warmup):
            self.infer()
        return {"first_inference_ns": float(first_ns), "output": self.output_array(output), "config": self.config(),
                "clock": self.clock()}

    def round(self, iterations: int, counters: tuple[str, ...] = (), warmup: int = 0,
              deadline_s: float | None = None) -> dict:
        """Raw nanoseconds per iteration after ``warmup`` untimed ones; counters (every thread of
        this process) and the CPU accounting (fff.measure.contention) read outside the timed
        iterations. ``deadline_s``: stop timing after this many seconds (at least one iteration),
        so that a round slowed down by contention cannot overrun the time cap."""
        from fff.measure.contention import RoundMeter
        from fff.measure.counters import count

        for _ in range(warmup):
            self.infer()
        samples = np.empty(iterations, dtype=np.float64)
        deadline = None if deadline_s is None else time.perf_counter_ns() + int(deadline_s * 1e9)
        if not counters:
            meter = RoundMeter(cpus_asked(self.threads))
            done = self._timed_loop(samples, deadline)
            return {"samples_ns": samples[:done], "counters": None, "usage": meter.stop(done)}
        with count(counters, inferences=iterations) as counting:
            meter = RoundMeter(cpus_asked(self.threads))
            done = self._timed_loop(samples, deadline)
            usage = meter.stop(done)
            counting.inferences = done  # a deadline may have stopped the loop early
        return {"samples_ns": samples[:done], "counters": counting.results, "usage": usage}

    def _timed_loop(self, samples: np.ndarray, deadline_ns: int | None) -> int:
        infer = self.infer
        for i in range(len(samples)):
            start = time.perf_counter_ns()
            infer()
            end = time.perf_counter_ns()
            samples[i] = end - start
            if deadline_ns is not None and end > deadline_ns:
                return i + 1
        return len(samples)

    def breakdown(self, iterations: int) -> dict:
        """The stack's own per-layer profile of ``iterations`` inferences (raw, for ``attribute``)."""
        raise FffError(f"{self.name} has no per-layer profile")
