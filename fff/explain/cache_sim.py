"""Simulated cache counters: the measured inferences under valgrind's cache simulator.

Machines without a hardware PMU (the VMs fff is developed and tested on) cannot count cache
misses, so fff simulates them: a child Python process runs the inferences under
``valgrind --tool=callgrind --cache-sim=yes`` with the machine's own cache geometry read from
sysfs (valgrind's own guess is unreliable in VMs: it took a 335 MB direct-mapped LL here).

How the measured region is delimited: instrumentation (and so cache simulation) is off while
Python starts and the model compiles (``--instr-atstart=no``), is switched on by a client
request before the warm-up so the simulated caches are warm when measuring starts, costs are
zeroed after the warm-up and dumped after the last measured inference. Zeroing and dumping
cover every thread; callgrind's collect toggle would not (it is per thread, and the work runs
on the runtime's worker threads too). The child runs one inference thread: valgrind serialises
threads anyway, and one thread makes the counts repeatable, though not bit-identical (likely
because OpenVINO hands each inference to its stream thread while the caller waits, and how long
that wait spins under valgrind's serialised threads varies). For a 2-layer MLP (about 11,000
instructions per inference) LL misses were equal in 29 of 30 runs and one line apart in the
other; L1 counts, which also depend on where buffers fall in the L1's sets, varied by up to 7%.
Larger models dilute these few lines.

Caveats, also attached to every result: valgrind's virtual CPU has no AVX-512, so OpenVINO picks
other kernels than in the native run; the caches are simulated with virtual addresses, inclusive,
LRU, without prefetchers; only user-space code is seen.

The simulated process is a fff.explain.simulation_server: a Python interpreter under valgrind that forks
one child per job. A job names its run function (a backend's ``simulation_job``: OpenVINO's runs
fff.Runner's loop, a Python stack's runs fff.explain.callgrind.measure_callable). ``simulate``
(an IR or ONNX file through fff.Runner) and ``simulate_callable`` (``module:function`` returning a
zero-argument callable) start a server for one job; fff.explain.simulation_phase keeps one per
core for a whole study. The cache geometry lives in fff.explain.cache_geometry, callgrind's
events and client requests in fff.explain.callgrind.
"""

from __future__ import annotations

import numbers
import os

from fff.errors import UsageError
from fff.explain.cache_geometry import CacheGeometry, CacheLevel, cache_geometry, parse_cache_spec
from fff.explain.callgrind import CAVEAT, SIMULATED_COUNTERS, parse_callgrind_totals, unavailable_reason
from fff.explain.simulation_server import ISA_CAPS, SimulationResult, SimulationServer

__all__ = ["CacheGeometry", "CacheLevel", "SimulationResult", "cache_geometry", "parse_cache_spec", "simulate",
           "simulate_cache", "simulate_callable", "parse_callgrind_totals", "unavailable_reason", "SIMULATED_COUNTERS",
           "CAVEAT"]


def _simulate_once(job: dict, iterations: int, warmup: int, timeout: float | None, ll: CacheLevel | None,
                   isa_cap: str | None) -> SimulationResult:
    """One job in a server of its own (fff.explain.simulation_server), which imports only what the job needs."""
    if isa_cap is not None and isa_cap not in ISA_CAPS:
        raise UsageError(f"unknown ISA cap {isa_cap!r}; choose from {', '.join(ISA_CAPS)}")
    with SimulationServer(ll, isa_cap) as server:
        return server.run(job, iterations, warmup, timeout)


def _check_counts(iterations, warmup) -> None:
    for name, value, least in (("iterations", iterations, 1), ("warmup", warmup, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise UsageError(f"{name} must be a whole number >= {least}, got {value!r}")


def simulate(model_path, input_shape=None, *, iterations: int = 3, warmup: int = 1, precision: str = "f32",
             timeout: float | None = 600, ll: CacheLevel | None = None, isa_cap: str | None = None) -> SimulationResult:
    """Simulated cache counters for ``iterations`` inferences of an OpenVINO model (IR or ONNX).

    Runs in a child process under valgrind (50-100x slower than natively: keep models small and
    iterations few). One inference thread. Raises FffError if valgrind is not installed.
    """
    _check_counts(iterations, warmup)
    shapes = None if input_shape is None else [list(map(int, s)) for s in
                                               ([input_shape] if isinstance(input_shape[0], numbers.Integral) else input_shape)]
    job = {"run": "fff.backends.openvino.backend:simulate_inferences",
           "kwargs": {"model": os.fspath(model_path), "input_shape": shapes, "precision": precision}}
    return _simulate_once(job, iterations, warmup, timeout, ll, isa_cap)


# The name fff re-exports at the top level, where plain "simulate" would say too little.
simulate_cache = simulate


def simulate_callable(factory: str, kwargs: dict | None = None, *, iterations: int = 3, warmup: int = 1,
                      timeout: float | None = 600, ll: CacheLevel | None = None,
                      isa_cap: str | None = None) -> SimulationResult:
    """Simulated cache counters for a Python callable, e.g. the PyTorch baseline.

    ``factory`` is "module:function"; the child imports it, calls it with ``kwargs`` (JSON-able)
    outside the measured region to get a zero-argument callable, calls that once (first call,
    lazy initialisation), ``warmup`` times with the caches simulated, then ``iterations`` times
    measured (fff.explain.callgrind.measure_callable). The interpreter's own work between calls is
    measured too, as it is natively.
    """
    _check_counts(iterations, warmup)
    if not isinstance(factory, str) or factory.count(":") != 1:
        raise UsageError(f"factory must be 'module:function', got {factory!r}")
    job = {"run": "fff.explain.callgrind:measure_factory", "kwargs": {"factory": factory, "kwargs": kwargs or {}}}
    return _simulate_once(job, iterations, warmup, timeout, ll, isa_cap)
