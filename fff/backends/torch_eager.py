"""The code being timed on each side: the native framework (PyTorch eager) and the
accelerated runtime (OpenVINO through fff's C++ runner).

Both sides share one shape so the profiler treats them alike: ``prepare`` runs the first
inference and the warm-up and returns the output for the parity check; ``round`` returns raw
per-iteration nanoseconds, warm-up excluded. Each backend lives in a worker process of its own
(see fff.measure.worker), so PyTorch's OpenMP pool and OpenVINO's TBB arena never share a process.
"""

from __future__ import annotations

import os
import time

import numpy as np

from fff.measure.contention import RoundMeter
from fff.errors import UsageError

__all__ = ["BACKENDS", "PRECISIONS", "TorchBackend", "OpenVINOBackend"]

PRECISIONS = ("f32", "bf16", "f16")


class TorchBackend:
    """PyTorch eager: eval mode, inference_mode, the same thread count as the accelerated side.

    Precisions other than f32 run under CPU autocast, the framework's own way to compute in them.
    """

    name = "torch"

    def __init__(self, *, target: str, build_options: dict, threads: int, precision: str,
                 module_path: str | None = None, **_):
        import torch

        from fff.models import build

        torch.set_num_threads(threads)
        self._threads = threads
        self._torch = torch
        if module_path:  # the module another process built (fff.builder saves it whole): same weights, no build
            self._module = torch.load(module_path, weights_only=False)
        else:
            self._module = build(target, **build_options).module
        if self._module is None:
            raise UsageError(f"{target}: a model file has no PyTorch module; the torch backend needs a "
                             "zoo name, a pattern spec or module:function")
        self._dtype = {"f32": None, "bf16": torch.bfloat16, "f16": torch.float16}[precision]
        self._input = None

    def _infer(self):
        torch = self._torch
        with torch.inference_mode():
            if self._dtype is None:
                return self._module(self._input)
            with torch.autocast("cpu", dtype=self._dtype):
                return self._module(self._input)

    def prepare(self, inputs: list[np.ndarray], warmup: int) -> dict:
        self._input = self._torch.from_numpy(inputs[0])
        start = time.perf_counter_ns()
        output = self._infer()
        first_ns = time.perf_counter_ns() - start
        for _ in range(warmup):
            self._infer()
        return {
            "first_inference_ns": float(first_ns),
            "output": output.float().numpy(),
            "config": self.config(),
            "clock": {"source": "perf_counter_ns", "reason": "Python's monotonic clock around each forward call"},
        }

    def round(self, iterations: int, counters: tuple[str, ...] = (), warmup: int = 0,
              deadline_s: float | None = None) -> dict:
        """Raw nanoseconds per iteration after ``warmup`` untimed ones; counters (every thread of
        this process, the OpenMP pool included) and the CPU accounting (fff.measure.contention) read
        outside the timed iterations. ``deadline_s``: stop timing after this many seconds (at
        least one iteration), so a round slowed down by contention cannot overrun the time cap."""
        from fff.measure.counters import count

        for _ in range(warmup):
            self._infer()
        samples = np.empty(iterations, dtype=np.float64)
        deadline = None if deadline_s is None else time.perf_counter_ns() + int(deadline_s * 1e9)
        if not counters:
            meter = RoundMeter(_cpus_asked(self._threads))
            done = self._timed_loop(samples, deadline)
            usage = meter.stop(done)
            counted = None
        else:
            with count(counters, inferences=iterations) as counting:
                meter = RoundMeter(_cpus_asked(self._threads))
                done = self._timed_loop(samples, deadline)
                usage = meter.stop(done)
                counting.inferences = done  # a deadline may have stopped the loop early
            counted = counting.results
        return {"samples_ns": samples[:done], "counters": counted, "usage": usage}

    def _timed_loop(self, samples: np.ndarray, deadline_ns: int | None) -> int:
        for i in range(len(samples)):
            start = time.perf_counter_ns()
            self._infer()
            end = time.perf_counter_ns()
            samples[i] = end - start
            if deadline_ns is not None and end > deadline_ns:
                return i + 1
        return len(samples)

    def breakdown(self, iterations: int) -> dict:
        """Per-layer profile (forward hooks and a TorchFunctionMode), after the timed rounds (fff.explain.layer_profiles)."""
        from fff.explain.layer_profiles import profile_torch

        return profile_torch(self._module, self._infer, iterations)

    def config(self) -> dict:
        torch = self._torch
        return {
            "threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(),
            "mkldnn": torch.backends.mkldnn.is_available(),
            "autocast_dtype": str(self._dtype) if self._dtype is not None else None,
            "torch_build": torch.__version__,
            "parallel_backend": next((line.split(":", 1)[1].strip() for line in torch.__config__.parallel_info().splitlines()
                                      if line.startswith("ATen parallel backend")), None),
        }


class OpenVINOBackend:
    """OpenVINO's C++ runtime via fff.Runner: static shape, explicit precision and threads."""

    name = "openvino"

    def __init__(self, *, xml: str, input_shape, device: str, threads: int, precision: str, **_):
        from fff.backends.openvino.runner import Runner, clock_info

        self._runner = Runner(xml, input_shape, device=device, precision=precision, threads=threads)
        self._threads = threads
        self._clock = clock_info()

    def prepare(self, inputs: list[np.ndarray], warmup: int) -> dict:
        self._runner.set_inputs(*inputs)
        first = self._runner.run(iterations=1, warmup=warmup)
        return {
            "first_inference_ns": first.first_inference_ns,
            "output": self._runner.output(0).astype(np.float32),
            "config": self._runner.effective_config,
            "clock": self._clock,
        }

    def round(self, iterations: int, counters: tuple[str, ...] = (), warmup: int = 0,
              deadline_s: float | None = None) -> dict:
        """As TorchBackend.round; the C++ loop runs its iterations whole (``deadline_s`` is not
        checked inside it: OpenVINO slows down about 4x under contention, PyTorch 10-20x)."""
        if warmup:
            self._runner.run(warmup, warmup=0)
        meter = RoundMeter(_cpus_asked(self._threads))
        result = self._runner.run(iterations, warmup=0, counters=counters)
        usage = meter.stop(iterations)
        return {"samples_ns": result.latencies_ns, "counters": result.counters, "usage": usage}

    def breakdown(self, iterations: int) -> dict:
        """Per-node profile from a second, profiling-enabled compilation (fff.explain.layer_profiles)."""
        from fff.explain.layer_profiles import profile_openvino

        return profile_openvino(self._runner, iterations)


def _cpus_asked(threads: int) -> int:
    """The CPUs a pool of ``threads`` spinning threads can keep busy here."""
    return max(1, min(threads, len(os.sched_getaffinity(0))))


def torch_simulation_callable(target: str, build_options: dict, precision: str, input_shape: list[int],
                              module_path: str | None = None):
    """The baseline's inference as a zero-argument callable, for fff.explain.cache_sim's child under
    valgrind: same model (seeded build, or the parent's build loaded from ``module_path``), same
    fixed-seed input as the profiler, one thread."""
    backend = TorchBackend(target=target, build_options=build_options, threads=1, precision=precision,
                           module_path=module_path)
    backend._input = backend._torch.from_numpy(fixed_seed_input(input_shape))
    return backend._infer


def fixed_seed_input(input_shape) -> np.ndarray:
    """The input every backend sees: standard normal, seed 0."""
    return np.random.default_rng(0).standard_normal(tuple(input_shape)).astype(np.float32)


BACKENDS = {backend.name: backend for backend in (TorchBackend, OpenVINOBackend)}
