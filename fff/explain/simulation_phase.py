"""The simulation phase: cache counts of many targets simulated under valgrind, on every core at once.

Simulation is 50-100x slower than running natively and uses a whole core, so it never runs
while anything is timed: fff-profile simulates a target after its timed rounds, fff-study after
every cell has been timed. It keeps one simulation server (fff.explain.simulation_server: a valgrind'ed
interpreter that imported torch and openvino once and forks a child per job) per core busy with
jobs, the largest first so that a large model does not finish alone at the end.

Each target's PyTorch module is built natively by the builder child (fff.builder) and saved
whole; the simulated child loads it instead of building it again under valgrind (random
initialisation of resnet50 took 22 s there, loading 0.9 s), and never counts FLOPs again. The
OpenVINO job compiles the IR the timed run used (the conversion cache). One warm-up inference,
then one measured (fff.profiling.SIMULATED_ITERATIONS; issue #13: successive inferences agree
within 0.3% after the cold pass).
"""

from __future__ import annotations

import os
import queue
import shutil
import tempfile
import threading
from dataclasses import dataclass
from typing import Callable, Iterable

from fff.errors import FffError

__all__ = ["SimulationTarget", "simulate_targets", "record_fields", "error_fields", "not_simulated_fields", "simulation_timeout", "SIMULATED_ITERATIONS", "SIMULATED_WARMUP"]

# After one warm-up (the cold pass), successive inferences agree within 0.3% and fresh processes
# give the same counts (issue #13), so one measured inference suffices.
SIMULATED_ITERATIONS = 1
SIMULATED_WARMUP = 1


@dataclass(frozen=True)
class SimulationTarget:
    """One target to simulate on each of its backends; ``key`` is the caller's name for it."""

    key: str
    target: str
    build_options: dict
    backends: tuple[str, ...]
    precision: str
    flops: float | None = None  # from the timed run: orders the jobs, sizes the time limit


def simulation_timeout(flops: float | None) -> float:
    """Seconds a job may take: a hang must end, a large model must not. Measured under valgrind on the
    2-core VM with capped kernels: about 6 s + 20 s per GFLOP per inference (issue #13); two
    inferences (warm-up and measured) and a five-fold margin for an uncapped or loaded run."""
    gigaflops = (flops or 0) / 1e9
    return 600.0 + 2 * 5 * 20.0 * gigaflops


def record_fields(result, isa_cap: str | None, weights: str) -> dict:
    """What a record gets from one simulation (the same fields fff-profile and fff-study write)."""
    return {
        "simulated_counters": result.counters.as_record(),
        "simulation": {"tool": "valgrind callgrind --cache-sim=yes", "iterations": result.iterations,
                       "warmup": result.warmup, "threads": 1, "geometry": result.geometry.as_dict(),
                       "elapsed_s": round(result.elapsed_s, 2), "caveat": result.caveat,
                       "isa": "valgrind's virtual CPU (AVX2, no AVX-512)" + (
                           f", kernels capped at {isa_cap.upper()}" if isa_cap else ""),
                       "process": "a fork of a simulation server per job (fff.explain.simulation_server)",
                       "weights": weights},
    }


def error_fields(error: dict) -> dict:
    """What a record gets when its simulation failed: every simulated counter "error", with why;
    never a zero."""
    from fff.explain.callgrind import SIMULATED_COUNTERS

    why = f"the simulation failed: {error['type']}: {error['message']}"
    return {"simulated_counters": {name: {"per_inference": None, "total": None, "status": "error", "reason": why, "scaled": False}
                                   for name in SIMULATED_COUNTERS},
            "simulation": {"tool": "valgrind callgrind --cache-sim=yes", "error": why}}


def not_simulated_fields(reason: str) -> dict:
    """What a record gets when its stack cannot be simulated (Backend.simulation_job raised
    NotSimulated): status "not simulated" with the stack's reason; not a failure, so a study's
    --retry-errors does not try it again."""
    from fff.explain.callgrind import SIMULATED_COUNTERS

    return {"simulated_counters": {name: {"per_inference": None, "total": None, "status": "not simulated",
                                          "reason": reason, "scaled": False} for name in SIMULATED_COUNTERS},
            "simulation": {"tool": "valgrind callgrind --cache-sim=yes", "not_simulated": reason}}


@dataclass
class _Job:
    item: SimulationTarget
    backend: str
    job: dict
    weights: str
    cleanup: str | None = None  # a saved module, removed once simulated


def _jobs_for(item: SimulationTarget, directory: str) -> tuple[list[_Job], dict[str, dict]]:
    """Build (natively, in the builder child) what the jobs of ``item`` need: each stack's artifact,
    and the PyTorch module saved whole for the stacks whose simulated child loads it. Also returns
    the reason of each stack that cannot be simulated (NotSimulated), by name."""
    from fff.backends import backend_class, class_path
    from fff.backends.base import NotSimulated, side_precision
    from fff.builder import shared_builder

    classes = {name: backend_class(name) for name in item.backends}
    precisions = {name: side_precision(cls, item.precision) for name, cls in classes.items()}
    model = shared_builder().prepare(item.target, item.build_options,
                                     {name: class_path(cls) for name, cls in classes.items()}, precisions=precisions)
    jobs, refused = [], {}
    for name, cls in classes.items():
        if name not in model.artifacts:
            continue  # the stack does not run this target (a model file and a stack needing PyTorch)
        path = None
        if cls.simulation_needs_module:
            # A name of its own: a count of the files present would repeat the name of a file in use once
            # an earlier job's file was removed (that deleted a queued job's module, once in 83 cells).
            handle, path = tempfile.mkstemp(prefix="module-", suffix=".pt", dir=directory)
            os.close(handle)
            if not shared_builder().save_module(item.target, item.build_options, path):
                os.unlink(path)
                path = None
        try:
            job = cls.simulation_job(target=item.target, build_options=item.build_options,
                                     input_shape=model.input_shape, artifact=model.artifacts[name],
                                     precision=precisions[name], module_path=path)
        except NotSimulated as error:
            refused[name] = str(error).splitlines()[0]
            if path:
                os.unlink(path)
            continue
        jobs.append(_Job(item, name, {"run": job["run"], "kwargs": job["kwargs"]}, job["weights"], path))
    return jobs, refused


def simulate_targets(items: Iterable[SimulationTarget], *, cache: str | None = None, isa_cap: str | None = None,
                     workers: int | None = None, progress: Callable[[str], None] = lambda _: None,
                     on_done: Callable[[SimulationTarget, dict, dict], None]) -> None:
    """Simulate every backend of every item, ``workers`` jobs at once (default: every CPU this process
    may use). ``on_done(item, fields, errors)`` is called in this thread as each item finishes, with
    the record fields per backend (record_fields, or error_fields for a backend that failed) and,
    for backends that failed, {"type", "message"}. A backend whose stack cannot be simulated
    (NotSimulated) is one of those failures, with its reason."""
    from fff.explain.cache_geometry import parse_cache_spec
    from fff.explain.callgrind import unavailable_reason
    from fff.explain.simulation_server import PRELOAD, SimulationServer

    reason = unavailable_reason()
    if reason:
        raise FffError(reason)
    ll = parse_cache_spec(cache) if cache else None
    items = sorted(items, key=lambda item: -(item.flops or 0))  # the largest first: no long tail at the end
    if not items:
        return
    workers = max(1, min(workers or len(os.sched_getaffinity(0)), sum(len(i.backends) for i in items)))
    preload = _preload({name for item in items for name in item.backends}, PRELOAD)
    todo: queue.Queue = queue.Queue()
    done: queue.Queue = queue.Queue()
    servers: list = []
    stopping = threading.Event()

    def serve() -> None:
        server = None
        while not stopping.is_set():
            job = todo.get()
            if job is None:
                break
            try:
                if server is None or not server.running:
                    server = SimulationServer(ll, isa_cap, preload=preload)
                    servers.append(server)
                result = server.run(job.job, SIMULATED_ITERATIONS, SIMULATED_WARMUP, simulation_timeout(job.item.flops))
                fields = record_fields(result, isa_cap, job.weights)
                fields["simulation"]["server_start_s"] = round(server.start_seconds, 2)  # once per server, not per job
                done.put((job, fields, None))
            except Exception as error:  # noqa: BLE001 - one job's failure is that job's result
                done.put((job, None, _failure(error)))
            finally:
                if job.cleanup and os.path.exists(job.cleanup):
                    os.unlink(job.cleanup)
        if server is not None:
            server.close()

    threads = [threading.Thread(target=serve, daemon=True, name=f"fff-simulation-{n}") for n in range(workers)]
    directory = tempfile.mkdtemp(prefix="fff-simulation-")
    pending: dict[str, list] = {}  # item key -> [item, jobs left, fields, errors]
    progress(f"simulating the caches of {len(items)} target(s) under valgrind after the timing, {workers} at once, "
             f"the largest first (slow: minutes per target)")
    try:
        for thread in threads:
            thread.start()
        in_flight = 0  # jobs queued or running, not yet collected
        for item in items:
            while in_flight > workers:  # one item prepared ahead: saved modules do not pile up on disk
                in_flight -= _collect(done, pending, on_done)
            try:
                jobs, refused = _jobs_for(item, directory)
            except FffError as error:
                errors = {b: _failure(error) for b in item.backends}
                on_done(item, {b: error_fields(e) for b, e in errors.items()}, errors)
                continue
            said = {b: not_simulated_fields(reason) for b, reason in refused.items()}
            if not jobs:
                on_done(item, said, {})
                continue
            pending[item.key] = [item, len(jobs), said, {}]
            for job in jobs:
                todo.put(job)
            in_flight += len(jobs)
            while in_flight and _collect(done, pending, on_done, block=False):
                in_flight -= 1
        while in_flight:
            in_flight -= _collect(done, pending, on_done)
    except BaseException:
        stopping.set()
        for server in list(servers):
            server.close()  # kills the job in flight: Ctrl-C must not wait minutes for valgrind
        raise
    finally:
        for _ in threads:
            todo.put(None)
        for thread in threads:
            thread.join(timeout=30)
        shutil.rmtree(directory, ignore_errors=True)


def _preload(names, base: tuple[str, ...]) -> tuple[str, ...]:
    """What the servers import up front: ``base``, then each stack's packages and its own module."""
    from fff.backends import backend_class

    modules = list(base)
    for name in sorted(names):
        cls = backend_class(name)
        modules += [*cls.packages, cls.__module__]
    return tuple(dict.fromkeys(modules))


def _failure(error: BaseException) -> dict:
    """{"type", "message"}: the error's first line, or its class where it says nothing."""
    text = str(error).strip()
    return {"type": type(error).__name__, "message": text.splitlines()[0] if text else type(error).__name__}


def _collect(done: queue.Queue, pending: dict, on_done, block: bool = True) -> bool:
    """Take one finished job; call on_done when it was its item's last. False when none was ready
    (blocking waits half a second at a time, so Ctrl-C is seen)."""
    try:
        job, fields, error = done.get(timeout=0.5) if block else done.get_nowait()
    except queue.Empty:
        return False
    entry = pending[job.item.key]
    entry[1] -= 1
    if fields is not None:
        entry[2][job.backend] = fields
    if error is not None:
        entry[2][job.backend], entry[3][job.backend] = error_fields(error), error
    if entry[1] == 0:
        on_done(entry[0], entry[2], entry[3])
    return True
