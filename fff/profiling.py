"""The main job: one target, the native baseline against the accelerated runtime.

For each target: build the model (FLOPs, params), convert it to a static-shape f32 IR, start
one worker process per backend, feed both the same fixed-seed input, check that their outputs
agree, then time them in interleaved rounds (A B, B A, ...) until the median of every backend
is known to within the target confidence interval or the time cap is reached. One record per
target x backend, with raw samples, statistics, speed-up, parity, counters and metadata.

Every round is checked for contention (fff.measure.contention): a round in which the backend got clearly
less CPU than it asked for while other processes took it is left out and measured again while
the time cap allows, and every record carries a verdict (``ok``, ``noisy``, ``contended``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Callable, Sequence

import numpy as np

from fff.backends.torch_eager import BACKENDS, PRECISIONS, fixed_seed_input
from fff.measure.contention import record_verdict, round_problem, summarize_rounds, worst
from fff.errors import DeviceError, FffError, UsageError
from fff.measure.machine import machine_info, versions
from fff.measure.stats import instability_warnings, speedup_with_ci, summarize

__all__ = ["ProfileOptions", "profile", "profile_records", "profile_target"]

SCHEMA = "fff.profile/1"
BASELINE = "torch"
ROUND_SECONDS = 0.2  # long enough to amortise a round's overhead, short enough to interleave often
MIN_ITERATIONS = 5  # per round: fewer makes every sample one taken just after the other backend ran
# Untimed inferences at the start of every round: the first inference after the other backend
# ran was slower (bench/README.md, "first inference of a round"), so it is run, not timed.
ROUND_WARMUP = 1


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
    cache: str | None = None  # what-if LL ("LL=8MiB,16way") for the cache model and simulation; None: this machine's
    simulate_isa: str | None = None  # cap the simulated kernels' ISA (fff.explain.cache_sim.ISA_CAPS): 5-9x faster
    cache_model: bool = True  # modelled LL traffic and working set per backend (fff.explain.cache_model), seconds per target
    roofline: bool = True  # machine roofs (fff.explain.roofline, measured once per machine) and each record's point
    target_ci: float = 0.01  # stop when each median's 95% CI is within +-1%
    max_seconds: float = 20.0  # per target, timed rounds only
    min_rounds: int = 3  # clean (uncontended) rounds of each backend
    warmup: int = 5  # untimed inferences before the first round
    iterations: int | None = None  # timed inferences per round; None: sized to about ROUND_SECONDS
    keep_samples: bool = True
    flamegraph: str | None = None
    breakdown: bool = False  # per-layer profiles of every backend after the timed rounds (fff.explain.breakdown)
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

        for name in ("threads", "batch", "resolution", "iterations"):
            value = getattr(self, name)
            if value is not None and not whole(value):
                raise UsageError(f"{name} must be a whole number >= 1, got {value!r}")
        if self.input_shape is not None and not (self.input_shape and all(map(whole, self.input_shape))):
            raise UsageError(f"input shape must be whole numbers >= 1, got {self.input_shape!r}")
        if not 0 < self.target_ci < 1:
            raise UsageError(f"target CI must be between 0 and 1 (0.01 = +-1%), got {self.target_ci!r}")
        if not self.max_seconds > 0:
            raise UsageError(f"time cap must be positive, got {self.max_seconds!r}")
        if not whole(self.min_rounds) or not (isinstance(self.warmup, int) and self.warmup >= 0):
            raise UsageError(f"min_rounds must be a whole number >= 1 and warmup >= 0, got {self.min_rounds!r} "
                             f"and {self.warmup!r}")
        if self.counters:
            from fff.measure.counters import validate_names

            validate_names(self.counters)
        if self.simulate_isa is not None:
            from fff.explain.cache_sim import ISA_CAPS

            if self.simulate_isa not in ISA_CAPS:
                raise UsageError(f"unknown simulation ISA cap {self.simulate_isa!r}; choose from {', '.join(ISA_CAPS)}")
        if self.cache is not None:
            from fff.explain.cache_sim import parse_cache_spec

            parse_cache_spec(self.cache)
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
    round_seconds: float = 0.0  # the last round's duration as the parent saw it (warm-up and messages included)
    samples: list = field(default_factory=list)  # per round, clean or not
    counter_rounds: list = field(default_factory=list)
    usages: list = field(default_factory=list)  # fff.measure.contention.RoundUsage per round
    problems: list = field(default_factory=list)  # None for a clean round, else why it was left out

    @property
    def clean_rounds(self) -> int:
        return sum(p is None for p in self.problems)

    def _kept(self, per_round: list) -> list:
        """The clean rounds' entries; every round's when none was clean (the verdict says so)."""
        clean = [value for value, problem in zip(per_round, self.problems) if problem is None]
        return clean if self.clean_rounds else list(per_round)

    @property
    def all_samples(self) -> np.ndarray:
        kept = self._kept(self.samples)
        return np.concatenate(kept) if kept else np.empty(0)

    @property
    def kept_counter_rounds(self) -> list:
        return [c for c in self._kept(self.counter_rounds) if c is not None]


def _worker_env(backend: str, threads: int) -> dict:
    # The baseline's OpenMP pool gets exactly the thread count OpenVINO gets.
    return {"OMP_NUM_THREADS": str(threads)} if backend == "torch" else {}


def _size_rounds(sides: list[_Side], options: ProfileOptions, label: str) -> None:
    """Iterations per round from a short calibration, so that ``min_rounds`` rounds of every
    backend fit in the time cap; a cap that cannot hold them is a usage error, never overridden."""
    per_inference, contended = {}, False
    for side in sides:
        probe = side.worker.call("round", iterations=3, warmup=ROUND_WARMUP)
        per_inference[side.name] = float(np.median(probe["samples_ns"])) / 1e9
        contended |= round_problem(probe["usage"]) is not None
    smallest = options.iterations or MIN_ITERATIONS
    cycle = sum((smallest + ROUND_WARMUP) * per_inference[s.name] for s in sides)
    # Only a calibration that got its CPUs proves the cap too small; a contended one measured the
    # load, and the rounds (smallest size) will say so in the verdict.
    if options.min_rounds * cycle > options.max_seconds and not contended:
        raise UsageError(
            f"{label}: a time cap of {options.max_seconds:g} s cannot hold {options.min_rounds} rounds of "
            f"{smallest} iterations of every backend (one round of each takes about {cycle:.2f} s here); raise "
            f"--max-time or lower --min-rounds" + (" or --iterations" if options.iterations else ""))
    wanted = {s.name: options.iterations or ROUND_SECONDS / max(per_inference[s.name], 1e-6) for s in sides}
    if not options.iterations:  # shrink the rounds so that min_rounds pairs of them fit in the cap
        budget = options.max_seconds / options.min_rounds - sum(ROUND_WARMUP * t for t in per_inference.values())
        scale = min(1.0, budget / sum(wanted[name] * t for name, t in per_inference.items()))
        wanted = {name: int(np.clip(w * scale, MIN_ITERATIONS, 2000)) for name, w in wanted.items()}
    for side in sides:
        side.iterations_per_round = int(wanted[side.name])
        side.round_seconds = (side.iterations_per_round + ROUND_WARMUP) * per_inference[side.name]


def _measure_rounds(sides: list[_Side], options: ProfileOptions, progress: Callable[[str], None], label: str) -> dict:
    """Interleaved rounds until every backend has ``min_rounds`` clean rounds and every median's
    CI is within target, or until the next pair of rounds would not fit in the time cap.
    Contended rounds are left out of the statistics (and re-measured while time remains)."""
    _size_rounds(sides, options, label)
    order, start, rounds = [], time.monotonic(), 0
    deadline = start + options.max_seconds
    while True:
        sequence = sides if rounds % 2 == 0 else sides[::-1]  # A B, B A: linear drift cancels
        for side in sequence:
            began = time.monotonic()
            # PyTorch stops timing at the cap (its rounds slow down most under contention);
            # with counters a round runs whole, so that counts and inferences match.
            measured = side.worker.call("round", iterations=side.iterations_per_round, counters=options.counters,
                                        warmup=ROUND_WARMUP,
                                        deadline_s=None if options.counters else max(deadline - began, 0.0))
            side.round_seconds = time.monotonic() - began
            side.samples.append(measured["samples_ns"])
            side.counter_rounds.append(measured["counters"])
            side.usages.append(measured["usage"])
            side.problems.append(round_problem(measured["usage"]))
            order.append(side.name)
        rounds += 1
        elapsed = time.monotonic() - start
        widths = {s.name: summarize(s.all_samples).ci_halfwidth_rel for s in sides}
        progress(f"{label}: round {rounds}, " + ", ".join(
            f"{name} {np.median(s.all_samples) / 1e6:.3f} ms +-{100 * widths[name]:.1f}%"
            + (f" ({len(s.problems) - s.clean_rounds} contended)" if s.clean_rounds < len(s.problems) else "")
            for name, s in zip(widths, sides)) + f" ({elapsed:.1f} s)")
        enough = all(s.clean_rounds >= options.min_rounds for s in sides)
        converged = enough and all(w <= options.target_ci for w in widths.values())
        next_pair = sum(s.round_seconds for s in sides)
        if converged or elapsed + next_pair > options.max_seconds:
            break
    return {"rounds": rounds, "order": order, "converged": converged, "seconds": round(elapsed, 3),
            "iterations_per_round": {s.name: s.iterations_per_round for s in sides},
            "round_warmup": ROUND_WARMUP, "min_iterations": MIN_ITERATIONS}


def _simulate_caches(backends, options: ProfileOptions, target: str, build_options: dict, flops, progress) -> dict[str, dict]:
    """Cache counts simulated under valgrind for each backend (fff.explain.simulation_phase), after the
    timed rounds, both backends at once; one inference thread each."""
    if not options.simulate_cache:
        return {}
    from fff.explain.simulation_phase import SimulationTarget, simulate_targets

    outcome: dict[str, dict] = {}

    def done(_, fields: dict, errors: dict) -> None:  # a failure is said in the records: the timing is kept
        for backend, error in errors.items():
            progress(f"{target}: simulating the caches of {backend} failed: {error['message']}")
        outcome.update(fields)

    simulate_targets([SimulationTarget(target, target, build_options, tuple(backends), options.precision, flops)],
                     cache=options.cache, isa_cap=options.simulate_isa, progress=progress, on_done=done)
    return outcome


def _flamegraph(sides: list[_Side], options: ProfileOptions, target: str, progress) -> dict | None:
    """py-spy over about three seconds of the baseline, after (never during) the timed rounds."""
    baseline = next((s for s in sides if s.name == BASELINE), None)
    if not options.flamegraph or baseline is None:
        return None
    from pathlib import Path

    from fff.explain.flamegraph import record_baseline

    path = Path(options.flamegraph)
    if options.flamegraph_per_target:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in target)
        path = path.with_name(f"{path.stem}.{safe}{path.suffix}")
    progress(f"{target}: sampling the {BASELINE} run with py-spy into {path}")
    iterations = int(np.clip(3.0 / (np.median(baseline.all_samples) / 1e9), 5, 5000))
    return record_baseline(baseline.worker, path, iterations,
                           title=f"{target} on {BASELINE} (PyTorch eager): py-spy samples of {iterations} inferences")


def _start_worker(backend: str, target: str, build_options: dict, model, options: ProfileOptions):
    """One backend's worker for ``model`` (its IR as it is now: a fresh conversion replaces it)."""
    from fff.measure.worker import Worker

    return Worker(backend, env=_worker_env(backend, options.threads), target=target, build_options=build_options,
                  xml=model.xml, input_shape=list(model.input_shape), device=options.device,
                  threads=options.threads, precision=options.precision)


def _recheck_cached_parity(target: str, model, sides: list[_Side], build_options: dict, inputs, options: ProfileOptions,
                           progress):
    """A cached IR whose outputs disagree with PyTorch is converted afresh once and its workers
    started again: a damaged cache entry must not be reported as OpenVINO computing wrongly."""
    from dataclasses import replace as with_changes

    from fff.measure.parity import compare

    baseline = next((s for s in sides if s.name == BASELINE), None)
    suspects = [s for s in sides if s is not baseline and baseline is not None
                and not compare(baseline.prepared["output"], s.prepared["output"]).ok]
    if not model.cached or not suspects:
        return model
    fresh = _fresh_ir(target, model, build_options, progress, "gave outputs that disagree with PyTorch")
    for side in suspects:
        side.worker.close()
        side.worker = _start_worker(side.name, target, build_options, fresh, options)
        side.prepared = side.worker.call("prepare", inputs=inputs, warmup=options.warmup)
    agree = all(compare(baseline.prepared["output"], s.prepared["output"]).ok for s in suspects)
    note = f"{model.name}: " + ("the fresh conversion agrees with PyTorch" if agree else
                                "the fresh conversion disagrees too: the parity failure is not the cache's")
    progress(note)
    return with_changes(fresh, notes=fresh.notes + (note,))


def _fresh_ir(target: str, model, build_options: dict, progress, why: str):
    """``model`` converted afresh, its cache entry replaced, saying why."""
    from dataclasses import replace as with_changes

    from fff.builder import shared_builder

    note = f"{model.name}: the cached IR {why.splitlines()[0]}; converted afresh to check again"
    progress(note)
    fresh = shared_builder().prepare(target, build_options, fresh=True)
    return with_changes(fresh, notes=model.notes + (note,))


def _model_caches(target: str, build_options: dict, backends, xml: str, options: ProfileOptions, progress) -> dict:
    """Modelled LL traffic and working set per backend (fff.explain.cache_model), computed in the builder
    child like the build itself; a failure there is said in the records, not fatal to the target."""
    from fff.builder import shared_builder
    from fff.explain.cache_model import model_error

    progress(f"{target}: modelling LL traffic (tensor-level LRU)")
    try:
        return shared_builder().model_caches(target, build_options, backends, xml, options.precision, options.cache)
    except FffError as error:
        return model_error(backends, error)


def build_options_of(options: ProfileOptions) -> dict:
    """What fff.models.build is given for a target profiled with ``options``."""
    return {"batch": options.batch, "resolution": options.resolution,
            "input_shape": None if options.input_shape is None else list(options.input_shape)}


def profile_target(target: str, options: ProfileOptions, progress: Callable[[str], None] = lambda _: None) -> list[dict]:
    """Measure one target on every backend; returns one record per backend."""
    from fff.builder import shared_builder
    from fff.measure.parity import compare

    options = options.validated()
    build_options = build_options_of(options)
    progress(f"{target}: building and converting to OpenVINO IR (in a child process)")
    model = shared_builder().prepare(target, build_options)  # the main process does no risky work
    for note in model.notes:
        progress(note)
    backends = [b for b in options.backends if b != BASELINE or model.has_module]
    if not backends:
        raise UsageError(f"{target}: a model file has no PyTorch module; add the openvino backend")
    if len(backends) < len(options.backends):
        progress(f"{target}: no PyTorch baseline (a model file has no PyTorch module); timing OpenVINO alone")
    inputs = [fixed_seed_input(model.input_shape)]

    sides: list[_Side] = []
    try:
        for backend in backends:
            progress(f"{target}: starting the {backend} worker")
            try:
                worker = _start_worker(backend, target, build_options, model, options)
            except FffError as error:
                if backend == BASELINE or not model.cached:
                    raise
                model = _fresh_ir(target, model, build_options, progress, f"could not be compiled ({error})")
                worker = _start_worker(backend, target, build_options, model, options)
            sides.append(_Side(backend, worker, prepared={}))
            sides[-1].prepared = worker.call("prepare", inputs=inputs, warmup=options.warmup)
        model = _recheck_cached_parity(target, model, sides, build_options, inputs, options, progress)
        interleaving = _measure_rounds(sides, options, progress, target)
        flamegraph = _flamegraph(sides, options, target, progress)
        breakdowns = {}
        if options.breakdown:  # after the timed rounds, never inside them: profiling slows what it watches
            from fff.explain.breakdown import collect

            breakdowns = collect({s.name: s.worker for s in sides},
                                 {s.name: float(np.median(s.all_samples)) / 1e6 for s in sides}, BASELINE, progress, target)
    finally:
        for side in sides:
            side.worker.close()

    simulations = _simulate_caches(backends, options, target, build_options, model.flops, progress)
    modelled, model_started = {}, time.monotonic()
    if options.cache_model:
        modelled = _model_caches(target, build_options, backends, model.xml, options, progress)
        for fields in modelled.values():  # the whole call, both backends and the child's round trip: its cost
            fields.get("cache_model", {})["target_seconds"] = round(time.monotonic() - model_started, 3)
    by_name = {s.name: s for s in sides}
    baseline = by_name.get(BASELINE)
    timestamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    records = []
    verdicts = {s.name: record_verdict(s.clean_rounds, options.min_rounds, [summarize(s.all_samples).ci_halfwidth_rel])
                for s in sides}
    for side in sides:
        samples = side.all_samples
        latency = summarize(samples)
        verdict, reason = verdicts[side.name]
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
            "flops_convention": f"2 x multiply-adds ({model.flops_counter}), one inference of the whole batch",
            "uncounted_ops": list(model.uncounted_ops),  # what the FLOPs leave out
            "input_shape_source": model.input_shape_source,
            "params": model.params,
            "latency_ms": latency.as_dict(),
            "first_inference_ms": side.prepared["first_inference_ns"] / 1e6,
            "gflops_per_s": model.flops / (latency.median / 1e3) / 1e9 if model.flops else None,
            "speedup": None,
            "speedup_ci95": None,
            "parity": None,
            "counters": {},
            "derived_counters": {},
            "verdict": verdict,
            "verdict_reason": reason,
            "contention": {**summarize_rounds(side.usages, side.problems),
                           "rounds": [dict(u.as_dict(), left_out=p) for u, p in zip(side.usages, side.problems)]},
            "warnings": list(model.notes) + instability_warnings(latency, f"{target} {side.name}",
                                                                 target_rel=options.target_ci),
            "interleaving": interleaving,
            "clock": side.prepared["clock"],
            "config": side.prepared["config"],
            "machine": machine_info(),
            "versions": versions(),
            "timestamp": timestamp,
            "samples_ns": samples.tolist() if options.keep_samples else None,
        }
        if side.kept_counter_rounds:
            from fff.measure.counters import merge

            merged = merge(side.kept_counter_rounds)
            record["counters"] = merged.as_record()
            record["derived_counters"] = {name: {"value": m.value, "reason": m.reason}
                                          for name, m in merged.derived().items()}
        if side.name in simulations:
            record.update(simulations[side.name])
        record.update(modelled.get(side.name, {}))
        if options.roofline:
            from fff.explain.roofline import machine_roofline, roofline_point

            record["roofline"] = roofline_point(record, machine_roofline(options.threads))
        if side.name in breakdowns:
            record["breakdown"] = breakdowns[side.name]
        if side.name == BASELINE and flamegraph is not None:
            record["flamegraph"] = flamegraph
        if side.name != BASELINE and baseline is not None:
            point, low, high = speedup_with_ci(baseline.all_samples, samples)
            record["speedup"], record["speedup_ci95"] = point, [low, high]
            # a speed-up is as trustworthy as the worse of its two sides and its own CI
            spread, why = record_verdict(options.min_rounds, options.min_rounds, [(high - low) / 2 / point])
            candidates = [(verdict, reason), (verdicts[BASELINE][0], f"{BASELINE}: {verdicts[BASELINE][1]}"),
                          (spread, f"speed-up's {why}" if why else "")]
            record["verdict"] = worst(v for v, _ in candidates)
            record["verdict_reason"] = "; ".join(r for v, r in candidates if v == record["verdict"] and r)
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
    _warn_untrustworthy(records)
    return pd.json_normalize(records, sep=".")


def _warn_untrustworthy(records: list[dict]) -> None:
    """One MeasurementWarning per call naming every record whose verdict is not ``ok``."""
    import warnings

    from fff.errors import MeasurementWarning

    flagged = [f"{r['target']} {r['backend']}: {r['verdict']} ({r['verdict_reason']})"
               for r in records if r["verdict"] != "ok"]
    if flagged:
        warnings.warn(MeasurementWarning(
            "not to be trusted as a headline: " + "; ".join(flagged) + " (see the verdict column; contended "
            "rounds were left out and re-measured while the time cap allowed)"), stacklevel=3)
