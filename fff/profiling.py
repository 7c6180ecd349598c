"""The main job: one target, the native baseline against the accelerated runtime.

For each target: build the model (FLOPs, params), convert it to a static-shape f32 IR, start
one worker process per backend, feed both the same fixed-seed input, check that their outputs
agree, then time them in interleaved rounds (A B, B A, ...) until the median of every backend
is known to within the target confidence interval or the time cap is reached. One record per
target x backend, with raw samples, statistics, speed-up, parity, counters and metadata.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Callable, Sequence

import numpy as np

from fff.backends import BACKENDS, PRECISIONS, fixed_seed_input
from fff.errors import DeviceError, UsageError
from fff.machine import machine_info, versions
from fff.stats import instability_warnings, speedup_with_ci, summarize

__all__ = ["ProfileOptions", "profile", "profile_records", "profile_target"]

SCHEMA = "fff.profile/1"
BASELINE = "torch"
ROUND_SECONDS = 0.2  # long enough to amortise a round's overhead, short enough to interleave often


@dataclass(frozen=True)
class ProfileOptions:
    """What to measure and how; validated as a whole before anything runs."""

    backends: tuple[str, ...] = ("torch", "openvino")
    device: str = "CPU"
    precision: str = "f32"
    threads: int | None = None  # None: every CPU this process may run on
    batch: int | None = None
    resolution: int | None = None
    input_shape: tuple[int, ...] | None = None  # the whole shape: files with dynamic dims, functions
    counters: tuple[str, ...] = ()
    simulate_cache: bool = False
    target_ci: float = 0.01  # stop when each median's 95% CI is within +-1%
    max_seconds: float = 20.0  # per target, timed rounds only
    min_rounds: int = 3
    warmup: int = 5
    keep_samples: bool = True
    flamegraph: str | None = None
    breakdown: bool = False  # per-layer profiles of every backend after the timed rounds (fff.breakdown)
    flamegraph_per_target: bool = False  # several targets: one file each, the target's name in it

    def validated(self) -> "ProfileOptions":
        unknown = [b for b in self.backends if b not in BACKENDS]
        if unknown or not self.backends:
            raise UsageError(f"unknown backend(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(BACKENDS)}")
        if len(set(self.backends)) != len(self.backends):
            raise UsageError(f"backend listed twice: {','.join(self.backends)}")
        if self.precision not in PRECISIONS:
            raise UsageError(f"invalid precision '{self.precision}' (choose {', '.join(PRECISIONS)})")
        def whole(value) -> bool:
            return isinstance(value, int) and not isinstance(value, bool) and value >= 1

        for name in ("threads", "batch", "resolution"):
            value = getattr(self, name)
            if value is not None and not whole(value):
                raise UsageError(f"{name} must be a whole number >= 1, got {value!r}")
        if self.input_shape is not None and not (self.input_shape and all(map(whole, self.input_shape))):
            raise UsageError(f"input shape must be whole numbers >= 1, got {self.input_shape!r}")
        if not 0 < self.target_ci < 1:
            raise UsageError(f"target CI must be between 0 and 1 (0.01 = +-1%), got {self.target_ci!r}")
        if not self.max_seconds > 0:
            raise UsageError(f"time cap must be positive, got {self.max_seconds!r}")
        if self.min_rounds < 1 or self.warmup < 0:
            raise UsageError("min_rounds must be >= 1 and warmup >= 0")
        if self.counters:
            from fff.counters import validate_names

            validate_names(self.counters)
        threads = self.threads or len(os.sched_getaffinity(0))
        shape = None if self.input_shape is None else tuple(self.input_shape)
        return replace(self, threads=threads, backends=tuple(self.backends), counters=tuple(self.counters),
                       input_shape=shape)


@dataclass
class _Side:
    """What one backend gave during one target's measurement."""

    name: str
    worker: object
    prepared: dict
    iterations_per_round: int = 1
    samples: list = field(default_factory=list)
    counter_rounds: list = field(default_factory=list)

    @property
    def all_samples(self) -> np.ndarray:
        return np.concatenate(self.samples) if self.samples else np.empty(0)


def _worker_env(backend: str, threads: int) -> dict:
    # The baseline's OpenMP pool gets exactly the thread count OpenVINO gets.
    return {"OMP_NUM_THREADS": str(threads)} if backend == "torch" else {}


def _measure_rounds(sides: list[_Side], options: ProfileOptions, progress: Callable[[str], None], label: str) -> dict:
    """Interleaved rounds until every median's CI is within target, or the time cap."""
    for side in sides:  # size each backend's round from a short calibration
        probe = side.worker.call("round", iterations=3)["samples_ns"]
        side.iterations_per_round = int(np.clip(ROUND_SECONDS / max(np.median(probe) / 1e9, 1e-6), 1, 2000))
    order, start, rounds = [], time.monotonic(), 0
    while True:
        sequence = sides if rounds % 2 == 0 else sides[::-1]  # A B, B A: linear drift cancels
        for side in sequence:
            measured = side.worker.call("round", iterations=side.iterations_per_round, counters=options.counters)
            side.samples.append(measured["samples_ns"])
            if measured["counters"] is not None:
                side.counter_rounds.append(measured["counters"])
            order.append(side.name)
        rounds += 1
        elapsed = time.monotonic() - start
        widths = {s.name: summarize(s.all_samples).ci_halfwidth_rel for s in sides}
        progress(f"{label}: round {rounds}, " + ", ".join(
            f"{name} {np.median(s.all_samples) / 1e6:.3f} ms +-{100 * widths[name]:.1f}%"
            for name, s in zip(widths, sides)) + f" ({elapsed:.1f} s)")
        converged = all(w <= options.target_ci for w in widths.values())
        if rounds >= options.min_rounds and (converged or elapsed >= options.max_seconds):
            break
    return {"rounds": rounds, "order": order, "converged": converged, "seconds": round(elapsed, 3),
            "iterations_per_round": {s.name: s.iterations_per_round for s in sides}}


SIMULATED_ITERATIONS = 3  # valgrind runs 50-100x slower; the counts are deterministic, so few suffice


def _simulate_caches(backends, options: ProfileOptions, target: str, build_options: dict, xml: str, input_shape,
                     progress) -> dict[str, dict]:
    """Cache counts simulated under valgrind for each backend, one inference thread each."""
    if not options.simulate_cache:
        return {}
    from fff.cache_sim import simulate, simulate_callable

    results = {}
    for backend in backends:
        progress(f"{target}: simulating the caches of {backend} under valgrind (slow)")
        if backend == BASELINE:
            simulation = simulate_callable(
                "fff.backends:torch_simulation_callable",
                {"target": target, "build_options": build_options, "precision": options.precision,
                 "input_shape": list(input_shape)},
                iterations=SIMULATED_ITERATIONS)
        else:
            simulation = simulate(xml, list(input_shape), iterations=SIMULATED_ITERATIONS, precision=options.precision)
        results[backend] = {
            "simulated_counters": simulation.counters.as_record(),
            "simulation": {"tool": "valgrind callgrind --cache-sim=yes", "iterations": simulation.iterations,
                           "warmup": simulation.warmup, "threads": 1, "geometry": simulation.geometry.as_dict(),
                           "elapsed_s": round(simulation.elapsed_s, 2), "caveat": simulation.caveat},
        }
    return results


def _flamegraph(sides: list[_Side], options: ProfileOptions, target: str, progress) -> dict | None:
    """py-spy over about three seconds of the baseline, after (never during) the timed rounds."""
    baseline = next((s for s in sides if s.name == BASELINE), None)
    if not options.flamegraph or baseline is None:
        return None
    from pathlib import Path

    from fff.flamegraph import record_baseline

    path = Path(options.flamegraph)
    if options.flamegraph_per_target:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in target)
        path = path.with_name(f"{path.stem}.{safe}{path.suffix}")
    progress(f"{target}: sampling the {BASELINE} run with py-spy into {path}")
    iterations = int(np.clip(3.0 / (np.median(baseline.all_samples) / 1e9), 5, 5000))
    return record_baseline(baseline.worker, path, iterations)


def profile_target(target: str, options: ProfileOptions, progress: Callable[[str], None] = lambda _: None) -> list[dict]:
    """Measure one target on every backend; returns one record per backend."""
    from fff.conversion import convert
    from fff.models import build
    from fff.parity import compare
    from fff.worker import Worker

    options = options.validated()
    build_options = {"batch": options.batch, "resolution": options.resolution,
                     "input_shape": None if options.input_shape is None else list(options.input_shape)}
    progress(f"{target}: building")
    model = build(target, **build_options)
    backends = [b for b in options.backends if b != BASELINE or model.module is not None]
    if not backends:
        raise UsageError(f"{target}: a model file has no PyTorch module; add the openvino backend")
    if len(backends) < len(options.backends):
        progress(f"{target}: no PyTorch baseline (a model file has no PyTorch module); timing OpenVINO alone")
    progress(f"{target}: converting to OpenVINO IR")
    xml = str(convert(model)) if model.module is not None else str(model.path)
    inputs = [fixed_seed_input(model.input_shape)]

    common = dict(target=target, build_options=build_options, xml=xml, input_shape=list(model.input_shape),
                  device=options.device, threads=options.threads, precision=options.precision)
    sides: list[_Side] = []
    try:
        for backend in backends:
            progress(f"{target}: starting the {backend} worker")
            worker = Worker(backend, env=_worker_env(backend, options.threads), **common)
            sides.append(_Side(backend, worker, prepared={}))
            sides[-1].prepared = worker.call("prepare", inputs=inputs, warmup=options.warmup)
        interleaving = _measure_rounds(sides, options, progress, target)
        flamegraph = _flamegraph(sides, options, target, progress)
        breakdowns = {}
        if options.breakdown:  # after the timed rounds, never inside them: profiling slows what it watches
            from fff.breakdown import collect

            breakdowns = collect({s.name: s.worker for s in sides},
                                 {s.name: float(np.median(s.all_samples)) / 1e6 for s in sides}, BASELINE, progress, target)
    finally:
        for side in sides:
            side.worker.close()

    simulations = _simulate_caches(backends, options, target, build_options, xml, model.input_shape, progress)
    by_name = {s.name: s for s in sides}
    baseline = by_name.get(BASELINE)
    timestamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    records = []
    for side in sides:
        samples = side.all_samples
        latency = summarize(samples)
        record = {
            "schema": SCHEMA,
            "target": target,
            "backend": side.name,
            "device": options.device if side.name != BASELINE else "CPU",
            "precision": options.precision,
            "threads": options.threads,
            "batch": model.input_shape[0],
            "input_shape": list(model.input_shape),
            "flops": model.flops,
            "flops_convention": "2 x multiply-adds (torch.utils.flop_counter), one inference of the whole batch",
            "params": model.params,
            "latency_ms": latency.as_dict(),
            "first_inference_ms": side.prepared["first_inference_ns"] / 1e6,
            "gflops_per_s": model.flops / (latency.median / 1e3) / 1e9 if model.flops else None,
            "speedup": None,
            "speedup_ci95": None,
            "parity": None,
            "counters": {},
            "derived_counters": {},
            "warnings": instability_warnings(latency, f"{target} {side.name}", target_rel=options.target_ci),
            "interleaving": interleaving,
            "clock": side.prepared["clock"],
            "config": side.prepared["config"],
            "machine": machine_info(),
            "versions": versions(),
            "timestamp": timestamp,
            "samples_ns": samples.tolist() if options.keep_samples else None,
        }
        if side.counter_rounds:
            from fff.counters import merge

            merged = merge(side.counter_rounds)
            record["counters"] = merged.as_record()
            record["derived_counters"] = {name: {"value": m.value, "reason": m.reason}
                                          for name, m in merged.derived().items()}
        if side.name in simulations:
            record.update(simulations[side.name])
        if side.name in breakdowns:
            record["breakdown"] = breakdowns[side.name]
        if side.name == BASELINE and flamegraph is not None:
            record["flamegraph"] = flamegraph
        if side.name != BASELINE and baseline is not None:
            point, low, high = speedup_with_ci(baseline.all_samples, samples)
            record["speedup"], record["speedup_ci95"] = point, [low, high]
            parity = compare(baseline.prepared["output"], side.prepared["output"])
            record["parity"] = {"max_abs_err": parity.max_abs_err, "max_rel_err": parity.max_rel_err, "ok": parity.ok}
        records.append(record)
    return records


def check_device(device: str) -> None:
    """Refuse a device this machine lacks before anything is built or measured."""
    import openvino as ov

    available = ov.Core().available_devices
    if device not in available and device.split(".")[0] not in available:
        raise DeviceError(f"device '{device}' is not available on this machine (available: {', '.join(available) or 'none'})")


def profile_records(targets: Sequence[str] | str, options: ProfileOptions | None = None, *,
                    progress: Callable[[str], None] = lambda _: None,
                    on_target: Callable[[list[dict]], None] = lambda _: None) -> list[dict]:
    """Every target in turn; ``on_target`` sees the records so far after each one, so a
    caller can save them before a later target fails."""
    options = (options or ProfileOptions()).validated()
    targets = [targets] if isinstance(targets, str) else list(targets)
    if "openvino" in options.backends:
        check_device(options.device)
    if len(targets) > 1 and options.flamegraph:
        options = replace(options, flamegraph_per_target=True)
    records: list[dict] = []
    for target in targets:
        records.extend(profile_target(target, options, progress))
        on_target(records)
    return records


def profile(targets: Sequence[str] | str, **options):
    """``fff.profile("mobilenet_v2", threads=2)`` -> pandas.DataFrame, one row per target x
    backend, nested fields flattened with dots (``latency_ms.median``)."""
    import pandas as pd

    records = profile_records(targets, ProfileOptions(**options))
    return pd.json_normalize(records, sep=".")
