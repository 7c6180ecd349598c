"""The main job: one target, the native baseline against every accelerated stack.

For each target: build the model (FLOPs, params) and every stack's artifact in the builder child
(fff.builder), start one worker per stack (fff.measure.worker), feed all the same fixed-seed input,
check that their outputs agree with the baseline's (parity, with the tolerance of the precision),
then time them in interleaved rounds (fff.measure.rounds) until the median of every stack is known
to within the target confidence interval or the time cap is reached. One record per target x
stack (fff.measure.record), then what explains it: per-layer breakdown, flame graph, cache
simulation and model, roofline point (fff.explain).

Stacks are found through fff.backends' registry; nothing here names one beyond the baseline.
Every round is checked for contention (fff.measure.contention): a round in which a stack got
clearly less CPU than it asked for while other processes took it is left out and measured again
while the time cap allows, and every record carries a verdict (``ok``, ``noisy``, ``contended``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np

from fff.backends import BASELINE, DEFAULT_BACKENDS, backend_class, backend_label, check_backend_names, class_path
from fff.backends.base import PRECISIONS, fixed_seed_input, side_precision
from fff.errors import FffError, NonFiniteOutputError, UsageError
from fff.measure.phases import record_phases
from fff.measure.record import compare_with_baseline, measured_record, verdict_of
from fff.measure.rounds import Side, measure_rounds

__all__ = ["ProfileOptions", "profile", "profile_records", "profile_target", "build_options_of", "check_targets",
           "check_available"]


@dataclass(frozen=True)
class ProfileOptions:
    """What to measure and how; validated as a whole before anything runs."""

    backends: tuple[str, ...] = DEFAULT_BACKENDS  # registry names or module:Class (fff.backends)
    device: str = "CPU"
    precision: str = "f32"
    calibration: str | None = None  # int8: a directory of images to calibrate on (fff.backends.calibration); None: synthetic
    threads: int | None = None  # None: every CPU this process may run on
    batch: int | None = None
    resolution: int | None = None
    input_shape: tuple[int, ...] | None = None  # the whole shape: files with dynamic dims, functions
    counters: tuple[str, ...] = ()
    simulate_cache: bool = False
    cache: str | None = None  # what-if LL ("LL=8MiB,16way") for the cache model and simulation; None: this machine's
    # further LL sizes ("machine" or what-if specs) for the model and simulation, from the same timed run
    # (each record's ll_sizes); timing is always on this machine's own cache
    extra_caches: tuple[str, ...] = ()
    simulate_isa: str | None = None  # cap the simulated kernels' ISA (fff.explain.cache_sim.ISA_CAPS): 5-9x faster
    cache_model: bool = True  # modelled LL traffic and working set per backend (fff.explain.cache_model), seconds per target
    roofline: bool = True  # machine roofs (fff.explain.roofline, measured once per machine) and each record's point
    target_ci: float = 0.01  # stop when each median's 95% CI is within +-1%
    max_seconds: float = 20.0  # per target, timed rounds only
    # False: max_seconds is the user's limit, and a cap that cannot hold min_rounds rounds is an error.
    # True: it is a default, a budget (a built-in study's, fff-profile's without --max-time), raised
    # per target to what the calibration says min_rounds rounds need; the record's interleaving says so.
    fit_cap: bool = False
    min_rounds: int = 3  # clean (uncontended) rounds of each backend
    warmup: int = 5  # untimed inferences before the first round
    iterations: int | None = None  # timed inferences per round; None: sized to about ROUND_SECONDS
    keep_samples: bool = True
    flamegraph: str | None = None
    breakdown: bool = False  # per-layer profiles of every backend after the timed rounds (fff.explain.breakdown)
    flamegraph_per_target: bool = False  # several targets: one file each, the target's name in it

    def validated(self) -> "ProfileOptions":
        check_backend_names(self.backends)
        if self.precision not in PRECISIONS:
            raise UsageError(f"invalid precision '{self.precision}' (choose {', '.join(PRECISIONS)})")
        for name in self.backends:
            supported = backend_class(name).precisions
            # The baseline beside other stacks runs f32 where it lacks the precision (PyTorch has no int8):
            # the speed-up then names both sides' precisions. Any other stack must compute in it.
            if self.precision not in supported and not (name == BASELINE and len(self.backends) > 1):
                raise UsageError(f"backend {name} cannot compute in {self.precision} (it offers {', '.join(supported)})")
        def whole(value) -> bool:
            return isinstance(value, int) and not isinstance(value, bool) and value >= 1

        if self.calibration is not None:
            _check_calibration(self)

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
            from fff.explain.simulation_server import ISA_CAPS

            if self.simulate_isa not in ISA_CAPS:
                raise UsageError(f"unknown simulation ISA cap {self.simulate_isa!r}; choose from {', '.join(ISA_CAPS)}")
        if self.cache is not None:
            from fff.explain.cache_geometry import parse_cache_spec

            parse_cache_spec(self.cache)
        from fff.explain.flamegraph import check_output_path
        from fff.measure.contention import check_threads

        check_threads(self.threads)
        if self.flamegraph is not None:
            check_output_path(self.flamegraph)
        if self.extra_caches:
            from fff.explain.cache_geometry import MACHINE, parse_cache_sizes

            parse_cache_sizes([self.cache or MACHINE, *self.extra_caches])  # each valid, none twice
        threads = self.threads or len(os.sched_getaffinity(0))
        shape = None if self.input_shape is None else tuple(self.input_shape)
        return replace(self, threads=threads, backends=tuple(self.backends), counters=tuple(self.counters),
                       input_shape=shape, extra_caches=tuple(self.extra_caches))


def _check_calibration(options: ProfileOptions) -> None:
    """--calibration DIR: only for int8, images the quantizers can read, a model that takes images."""
    from fff.backends.calibration import check_calibration_dir

    if options.precision != "int8":
        raise UsageError(f"--calibration calibrates int8 quantization; it needs --precision int8 "
                         f"(got {options.precision})")
    shape = options.input_shape
    if shape is not None and (len(shape) != 4 or shape[1] != 3):
        raise UsageError(f"--calibration images need an input of [N, 3, H, W] images; the input shape asked "
                         f"is {list(shape)}")
    check_calibration_dir(options.calibration)


def build_options_of(options: ProfileOptions) -> dict:
    """What fff.models.build is given for a target profiled with ``options``."""
    return {"batch": options.batch, "resolution": options.resolution,
            "input_shape": None if options.input_shape is None else list(options.input_shape)}


@dataclass
class _Target:
    """One target being profiled: its options, its model as the builder returned it, and the stacks."""

    name: str
    options: ProfileOptions
    build_options: dict
    classes: dict  # backend name -> Backend class, in the order asked for
    model: object = None  # fff.builder.BuiltTarget
    # backend name -> seconds the parent timed for its record's phases (fff.measure.phases)
    costs: dict = field(default_factory=dict)
    shared: dict = field(default_factory=dict)  # seconds spent for all its stacks at once (phases' "target")

    def cost(self, name: str, phase: str, seconds: float) -> None:
        costs = self.costs.setdefault(name, {})
        costs[phase] = costs.get(phase, 0.0) + seconds

    @property
    def served(self) -> dict[str, str]:
        return {name: class_path(cls) for name, cls in self.classes.items()}

    def precision_of(self, name: str) -> str:
        """The precision stack ``name`` computes in (the baseline: f32 where it lacks the one asked)."""
        return side_precision(self.classes[name], self.options.precision)


def _build(job: _Target, progress, fresh: tuple[str, ...] = ()):
    from fff.builder import shared_builder

    precisions = {name: job.precision_of(name) for name in job.classes}
    return shared_builder().prepare(job.name, job.build_options, job.served, fresh=fresh, precisions=precisions,
                                    calibration=job.options.calibration)


def _start_worker(job: _Target, name: str):
    """One stack's worker for the target's artifact as it is now (a fresh one replaces it)."""
    from fff.measure.worker import Worker

    cls, options = job.classes[name], job.options
    return Worker(name, served=class_path(cls), env=cls.environment(options.threads), target=job.name,
                  build_options=job.build_options, artifact=job.model.artifacts[name],
                  input_shape=list(job.model.input_shape), device=options.device, threads=options.threads,
                  precision=job.precision_of(name))


def _parity(job: _Target, baseline: Side, side: Side) -> dict:
    from fff.measure.parity import compare_outputs

    tolerance = job.classes[side.name].parity_tolerance(job.precision_of(side.name), job.precision_of(baseline.name))
    return compare_outputs(baseline.prepared["output"], side.prepared["output"], tolerance=tolerance,
                           names=job.model.outputs, sides=(backend_label(baseline.name), backend_label(side.name)))


def _fresh_artifact(job: _Target, name: str, progress, why: str) -> None:
    """``name``'s artifact made afresh (its cache entry replaced), saying why."""
    note = (f"{job.model.name}: the cached {job.classes[name].artifact_name} of {backend_label(name)} "
            f"{why.splitlines()[0]}; made afresh to check again")
    progress(note)
    job.cost(name, "prepare_s", job.model.artifacts[name].get("prepare_s", 0.0))  # the cached one's cost too
    fresh = _build(job, progress, fresh=(name,))
    job.model = replace(fresh, notes=job.model.notes + (note,))


def _start_sides(job: _Target, names: list[str], inputs, progress) -> list[Side]:
    """A worker per stack, each prepared (first inference, warm-up, output); a cached artifact that
    cannot be loaded is made afresh once before the stack is given up."""
    sides = []
    for name in names:
        progress(f"{job.name}: starting the {name} worker")
        started = time.monotonic()
        try:
            worker = _start_worker(job, name)
        except FffError as error:
            if not job.model.artifacts[name].get("cached"):
                raise
            job.cost(name, "worker_start_s", time.monotonic() - started)
            _fresh_artifact(job, name, progress, f"could not be loaded ({error})")
            started = time.monotonic()
            worker = _start_worker(job, name)
        job.cost(name, "worker_start_s", time.monotonic() - started)
        sides.append(Side(name, worker, prepared={}))
        sides[-1].prepared = _prepare(job, name, worker, inputs)
    return sides


def _prepare(job: _Target, name: str, worker, inputs) -> dict:
    """The worker's first inference and warm-up, under the stack's own multiple of the answer limit
    (a stack that compiles in its worker takes minutes there on a large model)."""
    timeout = worker.timeout * job.classes[name].prepare_timeout_scale
    started = time.monotonic()
    prepared = worker.call("prepare", timeout=timeout, inputs=inputs, warmup=job.options.warmup)
    job.cost(name, "prepare_call_s", time.monotonic() - started)
    return prepared


def _check_baseline_output(job: _Target, sides: list[Side]) -> None:
    """The user's model must compute finite numbers on the baseline before any stack is compared
    with it: a NaN of the model's own is the model's, never a parity failure of an accelerated stack."""
    from fff.measure.parity import non_finite

    baseline = next((s for s in sides if s.name == BASELINE), None)
    bad = None if baseline is None else non_finite(baseline.prepared["output"])
    if bad:
        raise NonFiniteOutputError(
            f"{job.name}: the model's own output on {backend_label(BASELINE)} is not finite ({bad}, on fff's "
            "fixed-seed input: standard normal, seed 0); there is nothing to compare the other stacks with: "
            "fix the model")


def _recheck_cached_parity(job: _Target, sides: list[Side], inputs, progress) -> None:
    """A cached artifact whose outputs disagree with the baseline's is made afresh once and its
    worker started again: a damaged cache entry must not be reported as the stack computing wrongly."""
    baseline = next((s for s in sides if s.name == BASELINE), None)
    if baseline is None:
        return
    for side in sides:
        if side is baseline or not job.model.artifacts[side.name].get("cached") or _parity(job, baseline, side)["ok"]:
            continue
        _fresh_artifact(job, side.name, progress, f"gave outputs that disagree with {backend_label(BASELINE)}")
        side.worker.close()
        started = time.monotonic()
        side.worker = _start_worker(job, side.name)
        job.cost(side.name, "worker_start_s", time.monotonic() - started)
        side.prepared = _prepare(job, side.name, side.worker, inputs)
        agree = _parity(job, baseline, side)["ok"]
        made = job.classes[side.name].artifact_name
        note = f"{job.model.name}: " + (f"the fresh {made} agrees with {backend_label(BASELINE)}" if agree else
                                        f"the fresh {made} disagrees too: the parity failure is not the cache's")
        progress(note)
        job.model = replace(job.model, notes=job.model.notes + (note,))


def _flamegraph(job: _Target, sides: list[Side], progress) -> dict | None:
    """py-spy over about three seconds of the baseline, after (never during) the timed rounds."""
    options = job.options
    baseline = next((s for s in sides if s.name == BASELINE), None)
    if not options.flamegraph or baseline is None:
        return None
    from pathlib import Path

    from fff.explain.flamegraph import record_baseline

    path = Path(options.flamegraph)
    if options.flamegraph_per_target:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in job.name)
        path = path.with_name(f"{path.stem}.{safe}{path.suffix}")
    progress(f"{job.name}: sampling the {BASELINE} run with py-spy into {path}")
    iterations = int(np.clip(3.0 / (np.median(baseline.all_samples) / 1e9), 5, 5000))
    return record_baseline(baseline.worker, path, iterations, title=f"{job.name} on {BASELINE} "
                           f"({backend_label(BASELINE)}): py-spy samples of {iterations} inferences")


def _breakdowns(job: _Target, sides: list[Side], progress) -> dict:
    """Per-layer profiles after the timed rounds, never inside them: profiling slows what it watches."""
    if not job.options.breakdown:
        return {}
    from fff.explain.breakdown import collect

    return collect({s.name: s.worker for s in sides}, {s.name: float(np.median(s.all_samples)) / 1e6 for s in sides},
                   {s.name: job.classes[s.name].attribute for s in sides}, BASELINE, progress, job.name)


def _simulate_caches(job: _Target, names: list[str], progress) -> dict[str, dict]:
    """Cache counts simulated under valgrind for each stack (fff.explain.simulation_phase), after the
    timed rounds, all stacks at once; one inference thread each."""
    options = job.options
    if not options.simulate_cache:
        return {}
    from fff.explain.simulation_phase import SimulationTarget, simulate_targets

    from fff.explain.cache_geometry import MACHINE

    outcome: dict[str, dict] = {}
    for extra in (None, *options.extra_caches):  # the record's own LL, then each further size (ll_sizes)
        fields_of: dict[str, dict] = {}

        def done(_, fields: dict, errors: dict) -> None:  # a failure is said in the records: the timing is kept
            for backend, error in errors.items():
                progress(f"{job.name}: simulating the caches of {backend}"
                         f"{'' if extra is None else f' at {extra}'} failed: {error['message']}")
            fields_of.update(fields)

        spec = options.cache if extra is None else None if extra == MACHINE else extra
        simulate_targets([SimulationTarget(job.name, job.name, job.build_options, tuple(names), options.precision,
                                           job.model.flops)],
                         cache=spec, isa_cap=options.simulate_isa, progress=progress, on_done=done)
        if extra is None:
            outcome.update(fields_of)
        else:
            for backend, fields in fields_of.items():
                outcome.setdefault(backend, {}).setdefault("ll_sizes", {})[extra] = fields
    return outcome


def _model_caches(job: _Target, names: list[str], progress) -> dict:
    """Modelled LL traffic and working set per stack (fff.explain.cache_model), computed in the builder
    child like the build itself; a failure there is said in the records, not fatal to the target."""
    from fff.builder import shared_builder
    from fff.explain.cache_model import model_error

    if not job.options.cache_model:
        return {}
    progress(f"{job.name}: modelling LL traffic (tensor-level LRU)")
    started = time.monotonic()
    served = {name: where for name, where in job.served.items() if name in names}
    try:
        precisions = {name: job.precision_of(name) for name in served}  # the baseline's own where it lacks int8
        modelled = shared_builder().model_caches(job.name, job.build_options, served, job.model.artifacts,
                                                 precisions, job.options.cache, job.options.extra_caches)
    except FffError as error:
        modelled = model_error(names, error)
    for fields in modelled.values():  # the whole call, every stack and the child's round trip: its cost
        fields.get("cache_model", {})["target_seconds"] = round(time.monotonic() - started, 3)
    return modelled


def _records(job: _Target, sides: list[Side], interleaving: dict, explained: dict) -> list[dict]:
    """One record per stack: what its rounds measured (fff.measure.record), then what explains it."""
    from datetime import datetime, timezone

    options = job.options
    baseline = next((s for s in sides if s.name == BASELINE), None)
    verdicts = {s.name: verdict_of(s, options.min_rounds) for s in sides}
    timestamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    roof = None
    if options.roofline:
        from fff.explain.roofline import machine_roofline, roofline_point

        started = time.monotonic()
        roof = machine_roofline(options.threads)
        job.shared["roofline_s"] = time.monotonic() - started
    records = []
    for side in sides:
        record = measured_record(job.name, side, job.model, options, device=job.classes[side.name].device_of(options.device),
                                 verdict=verdicts[side.name], interleaving=interleaving, timestamp=timestamp,
                                 packages=job.classes[side.name].packages)
        record["effective_threads"] = job.classes[side.name].effective_threads(record["config"] or {})
        record["precision"] = job.precision_of(side.name)  # what this stack computed in
        record["precision_asked"] = options.precision  # what pairs the rows of one measurement (analysis)
        calibration = job.model.artifacts.get(side.name, {}).get("calibration")
        if calibration is not None:  # a quantized stack: what set its ranges (synthetic: timing, not accuracy)
            record["calibration"] = calibration
        if baseline is not None and side is not baseline:
            record["speedup_precisions"] = f"{record['precision']} ({side.name}) vs " \
                                           f"{job.precision_of(baseline.name)} ({baseline.name})"
        simulated, modelled = explained["simulated"].get(side.name, {}), explained["modelled"].get(side.name, {})
        record.update(simulated)
        record.update(modelled)
        if simulated.get("ll_sizes") or modelled.get("ll_sizes"):  # each further LL size: its model and simulation
            record["ll_sizes"] = {size: {**(modelled.get("ll_sizes") or {}).get(size, {}),
                                         **(simulated.get("ll_sizes") or {}).get(size, {})}
                                  for size in options.extra_caches}
        if roof is not None:
            record["roofline"] = roofline_point(record, roof)
        if side.name in explained["breakdowns"]:
            record["breakdown"] = explained["breakdowns"][side.name]
        if side is baseline and explained["flamegraph"] is not None:
            record["flamegraph"] = explained["flamegraph"]
        if baseline is not None and side is not baseline:
            compare_with_baseline(record, side, baseline, verdicts[BASELINE], options.min_rounds,
                                  _parity(job, baseline, side))
        timed = {**job.costs.get(side.name, {}), "calibration_s": side.calibration_s, "rounds_s": side.rounds_s}
        record["phases"] = record_phases(record, job.model.artifacts.get(side.name, {}), timed, job.shared)
        records.append(record)
    return records


def profile_target(target: str, options: ProfileOptions, progress: Callable[[str], None] = lambda _: None) -> list[dict]:
    """Measure one target on every stack; returns one record per stack."""
    options = options.validated()
    job = _Target(target, options, build_options_of(options), {name: backend_class(name) for name in options.backends})
    progress(f"{target}: building the model and each stack's artifact (in a child process)")
    started = time.monotonic()
    job.model = _build(job, progress)  # the main process does no risky work
    prepared = sum(artifact.get("prepare_s", 0.0) for artifact in job.model.artifacts.values())
    job.shared["build_s"] = max(0.0, time.monotonic() - started - prepared)
    for note in job.model.notes:
        progress(note)
    names = [name for name in options.backends if name in job.model.artifacts]
    left_out = [name for name in options.backends if name not in names]
    if not names:
        raise UsageError(f"{target}: a model file has no PyTorch module, and every backend asked for needs one; "
                         "add one that runs model files (openvino)")
    if left_out:  # a model file
        progress(f"{target}: " + ("no PyTorch baseline" if BASELINE in left_out else "no PyTorch module")
                 + f" (a model file has no PyTorch module); timing {', '.join(names)} alone"
                 + (f" ({', '.join(b for b in left_out if b != BASELINE)} need one too)" if set(left_out) - {BASELINE} else ""))
    inputs = [fixed_seed_input(job.model.input_shape)]
    sides: list[Side] = []
    try:
        sides = _start_sides(job, names, inputs, progress)
        _check_baseline_output(job, sides)  # before anything is compared or timed
        _recheck_cached_parity(job, sides, inputs, progress)
        interleaving = measure_rounds(sides, options, progress, target)
        explained = {"flamegraph": _flamegraph(job, sides, progress), "breakdowns": _breakdowns(job, sides, progress)}
    finally:
        for side in sides:
            side.worker.close()
    explained["simulated"] = _simulate_caches(job, names, progress)
    explained["modelled"] = _model_caches(job, names, progress)
    return _records(job, sides, interleaving, explained)


def check_targets(targets: Sequence[str], options: ProfileOptions) -> None:
    """Every target checked from its text (fff.models.target_check), without importing torch:
    a typo in the last target is refused at once, before the first is built."""
    from fff.models.target_check import check_target

    for target in targets:
        check_target(target, **build_options_of(options))


def check_available(options: ProfileOptions) -> None:
    """Refuse a stack or device this machine lacks before anything is built or measured."""
    for name in options.backends:
        backend_class(name).check_available(options.device)


def profile_records(targets: Sequence[str] | str, options: ProfileOptions | None = None, *,
                    progress: Callable[[str], None] = lambda _: None,
                    on_target: Callable[[list[dict]], None] = lambda _: None) -> list[dict]:
    """Every target in turn; ``on_target`` sees the records so far after each one, so a
    caller can save them before a later target fails."""
    options = (options or ProfileOptions()).validated()
    targets = [targets] if isinstance(targets, str) else list(targets)
    check_targets(targets, options)
    check_available(options)
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
