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
one child per job. A job names a kind in ``JOBS``: "openvino" (an IR or ONNX file through
fff.Runner) or "callable" (``module:function`` returning a zero-argument callable, run between
the same client requests: the seam for the PyTorch baseline). ``simulate`` and
``simulate_callable`` start a server for one job; fff.explain.simulation_phase keeps one per core for a
whole study.
"""

from __future__ import annotations

import numbers
import os
import shutil
from dataclasses import dataclass, field

from fff.measure.counters import CounterResult, CounterResults
from fff.errors import FffError, UsageError
from fff.explain.simulation_server import ISA_CAPS

__all__ = ["CacheGeometry", "SimulationResult", "cache_geometry", "parse_cache_spec", "simulate", "simulate_cache", "simulate_callable",
           "parse_callgrind_totals", "SIMULATED_COUNTERS"]

DUMP_LABEL = "fff-measured"
CAVEAT = ("simulated by valgrind callgrind: its virtual CPU has no AVX-512, so the runtime picks different "
          "kernels than natively; LRU inclusive caches on virtual addresses, no prefetchers, user space only")

# Capping the kernels' instruction set (fff.explain.simulation_server.ISA_CAPS) makes the emulation 5-9x
# faster (valgrind emulates a 256-bit FMA in ~66 ns). What a cap changes, per counter, as measured in
# issue #13 (mobilenet_v2, resnet50, valgrind 3.19): LL misses -1.1%..+0.2% (resnet50), -0.7% (OpenVINO
# mobilenet_v2 at 4 MiB), -19% (PyTorch mobilenet_v2); instructions about 3x; L1 misses about 2x (SSE41;
# AVX: 1.13x).
ISA_CAP_EFFECT = {
    "instructions": "about 3x the uncapped count under an SSE4.1 cap (narrower vectors): not the native figure",
    "l1d-misses": "up to 2x the uncapped count (SSE41; 1.13x under AVX)",
    "llc-loads": "follows the L1 misses: inflated by the cap",
    "llc-misses": "within ~1% of uncapped for resnet50 and OpenVINO mobilenet_v2; PyTorch mobilenet_v2 -19%",
    "llc-store-misses": "not measured separately; like llc-misses, the traffic of the tensors",
}

# fff counter name -> (callgrind events summed, what it means)
SIMULATED_COUNTERS = {
    "instructions": (("Ir",), "instructions executed (Ir)"),
    "l1d-misses": (("D1mr",), "L1 data read misses (D1mr)"),
    "llc-loads": (("I1mr", "D1mr"), "LL read accesses: L1 instruction + data read misses (I1mr + D1mr)"),
    "llc-misses": (("DLmr", "ILmr"), "LL read misses, data + instruction (DLmr + ILmr)"),
    "llc-store-misses": (("DLmw",), "LL data write misses (DLmw)"),
}


@dataclass(frozen=True)
class CacheLevel:
    size: int  # bytes
    assoc: int
    line: int
    note: str = ""

    def option(self) -> str:
        return f"{self.size},{self.assoc},{self.line}"


@dataclass(frozen=True)
class CacheGeometry:
    I1: CacheLevel
    D1: CacheLevel
    LL: CacheLevel
    source: str

    def valgrind_options(self) -> list[str]:
        return [f"--I1={self.I1.option()}", f"--D1={self.D1.option()}", f"--LL={self.LL.option()}"]

    def as_dict(self) -> dict:
        return {name: {"size": level.size, "assoc": level.assoc, "line": level.line, "note": level.note}
                for name, level in (("I1", self.I1), ("D1", self.D1), ("LL", self.LL))} | {"source": self.source}


def _simulable(size: int, assoc: int, line: int) -> CacheLevel:
    """Valgrind needs a power-of-two set count; keep the size and widen the ways, as valgrind does itself."""
    sets = size // (assoc * line)
    if sets >= 1 and sets & (sets - 1) == 0:
        return CacheLevel(size, assoc, line)
    pow2 = 1 << (max(sets, 1).bit_length() - 1)
    if size % (pow2 * line) == 0:
        wide = size // (pow2 * line)
        return CacheLevel(size, wide, line, f"{assoc}-way with {sets} sets simulated as {wide}-way with {pow2} sets")
    return CacheLevel(pow2 * assoc * line, assoc, line,
                      f"{size} B with {sets} sets simulated as {pow2 * assoc * line} B with {pow2} sets")


CACHE_SPEC_USAGE = "LL=SIZE[,Nway][,line=B], e.g. LL=8MiB,16way (SIZE in B, KiB, MiB or GiB)"
_UNITS = {"b": 1, "kib": 1024, "kb": 1024, "k": 1024, "mib": 1024**2, "mb": 1024**2, "m": 1024**2,
          "gib": 1024**3, "gb": 1024**3, "g": 1024**3}


def parse_cache_spec(text: str) -> CacheLevel:
    """A what-if last-level cache from ``LL=8MiB,16way`` (ways default to 16, lines to 64 B);
    UsageError naming the problem otherwise. A size valgrind cannot simulate (its set count must be
    a power of two) is adapted as the machine's own LL is, and the note says how."""
    import re

    def bad(why: str) -> UsageError:
        return UsageError(f"bad cache spec {text!r}: {why}; expected {CACHE_SPEC_USAGE}")

    if not isinstance(text, str) or not text.upper().startswith("LL="):
        raise bad("it must start with LL=")
    parts = [p.strip() for p in text[3:].split(",")]
    size_match = re.fullmatch(r"(\d+)\s*([A-Za-z]*)", parts[0])
    if not size_match or size_match[2].lower() not in _UNITS:
        raise bad(f"size {parts[0]!r} is not a number with a unit (B, KiB, MiB, GiB)")
    size, assoc, line = int(size_match[1]) * _UNITS[size_match[2].lower()], 16, 64
    for part in parts[1:]:
        if (ways := re.fullmatch(r"(\d+)\s*-?way", part, re.IGNORECASE)):
            assoc = int(ways[1])
        elif (bytes_ := re.fullmatch(r"line=(\d+)", part, re.IGNORECASE)):
            line = int(bytes_[1])
        else:
            raise bad(f"{part!r} is neither Nway nor line=B")
    if assoc < 1 or line < 16 or line & (line - 1):
        raise bad("ways must be >= 1 and the line a power of two >= 16 B")
    if size < assoc * line * 2:
        raise bad(f"{size} B is too small for {assoc} ways of {line} B lines")
    level = _simulable(size, assoc, line)
    return CacheLevel(level.size, level.assoc, level.line,
                      f"what-if LL from {text!r}" + (f"; {level.note}" if level.note else ""))


def cache_geometry(ll: CacheLevel | None = None) -> CacheGeometry:
    """I1, D1 and the last level of cpu0 (from sysfs, via fff.measure.machine), in the form valgrind's
    --I1/--D1/--LL take; ``ll`` replaces the last level (a what-if cache, parse_cache_spec)."""
    from fff.measure.machine import CPU_SYSFS, sysfs_caches

    levels = {}
    for name, cache in sysfs_caches(0).items():
        size, assoc, line = cache["size_bytes"], cache["ways"], cache["line_bytes"]
        if size and assoc and line:  # 0 ways: fully associative or unreported
            levels[name] = _simulable(size, assoc, line)
    unified = sorted(name for name in levels if name[-1].isdigit())  # "L2", "L3": no i/d suffix
    if "L1i" not in levels or "L1d" not in levels or not unified:
        raise FffError(f"cannot read the cache geometry from {CPU_SYSFS}/cpu0/cache (need L1 instruction, "
                       "L1 data and a unified last level); cache simulation needs it to model this machine")
    if ll is not None:
        return CacheGeometry(levels["L1i"], levels["L1d"], ll, f"{CPU_SYSFS}/cpu0/cache for L1; what-if LL")
    return CacheGeometry(levels["L1i"], levels["L1d"], levels[unified[-1]],
                         f"{CPU_SYSFS}/cpu0/cache ({unified[-1]} as LL)")


@dataclass(frozen=True)
class SimulationResult:
    """Simulated counters for ``iterations`` inferences (warm-up excluded, simulated caches warm)."""

    counters: CounterResults
    events: dict[str, int]  # callgrind's totals over the measured inferences (Ir, D1mr, DLmr, ...)
    iterations: int
    warmup: int
    geometry: CacheGeometry
    elapsed_s: float
    caveat: str = CAVEAT
    isa_cap: str | None = None  # ISA_CAPS key the kernels were capped at; None: what valgrind's CPU offers
    command: list[str] = field(default_factory=list, repr=False)
    child: dict = field(default_factory=dict, repr=False)  # what the child reported (config, ...)

    def per_inference(self, name: str) -> float | None:
        return self.counters[name].per_inference()


def parse_callgrind_totals(path: os.PathLike | str) -> tuple[str, dict[str, int]]:
    """(description, event -> total) from one callgrind output file."""
    events, totals, description = None, None, ""
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("events:"):
                events = line.split(":", 1)[1].split()
            elif line.startswith("desc: Trigger:"):
                description = line.split(":", 2)[2].strip()
            elif line.startswith("totals:") or (line.startswith("summary:") and totals is None):
                totals = [int(x) for x in line.split(":", 1)[1].split()]
    if events is None or totals is None:
        raise FffError(f"callgrind output {path} has no events/totals lines; is it a callgrind profile?")
    totals += [0] * (len(events) - len(totals))  # callgrind leaves trailing zeros out
    return description, dict(zip(events, totals))


def counters_from_events(events: dict[str, int], iterations: int, geometry: CacheGeometry,
                         isa_cap: str | None = None) -> CounterResults:
    results = {}
    for name, (parts, meaning) in SIMULATED_COUNTERS.items():
        if any(part not in events for part in parts):
            results[name] = CounterResult(name, None, "error", f"callgrind gave no {'/'.join(parts)} events",
                                          inferences=iterations)
            continue
        total = sum(events[part] for part in parts)
        reason = f"{meaning}; LL {geometry.LL.size // 1024} KiB {geometry.LL.assoc}-way {geometry.LL.line} B lines"
        if isa_cap:
            reason += f"; kernels capped at {isa_cap.upper()}: {ISA_CAP_EFFECT[name]}"
        results[name] = CounterResult(name, float(total), "simulated", reason, inferences=iterations, raw=total)
    return CounterResults(results, iterations, threads=None, source="callgrind")


def unavailable_reason() -> str:
    """Why caches cannot be simulated on this machine, or "" when they can."""
    if shutil.which("valgrind") is None:
        return ("cache simulation needs valgrind, which is not installed (Debian/Ubuntu: "
                "sudo apt-get install valgrind)")
    from fff import _native

    if not _native.callgrind_available():
        return ("this build of fff has no callgrind client requests (valgrind/callgrind.h was missing when "
                "it was compiled); install valgrind's headers and rebuild fff to simulate caches")
    return ""


def _valgrind() -> str:
    reason = unavailable_reason()
    if reason:
        raise FffError(reason)
    return shutil.which("valgrind")


def _simulate_once(job: dict, iterations: int, warmup: int, timeout: float | None, ll: CacheLevel | None,
                   isa_cap: str | None) -> SimulationResult:
    """One job in a server of its own (fff.explain.simulation_server), which imports only what the job needs."""
    from fff.explain.simulation_server import SimulationServer

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
    job = {"kind": "openvino", "model": os.fspath(model_path), "input_shape": shapes, "precision": precision}
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
    measured. The interpreter's own work between calls is measured too, as it is natively.
    """
    _check_counts(iterations, warmup)
    if not isinstance(factory, str) or factory.count(":") != 1:
        raise UsageError(f"factory must be 'module:function', got {factory!r}")
    return _simulate_once({"kind": "callable", "factory": factory, "kwargs": kwargs or {}}, iterations, warmup, timeout,
                          ll, isa_cap)


# --- the child ------------------------------------------------------------------------------

def torch_child_callable(**kwargs):
    """The PyTorch baseline for the simulation child (fff.backends.torch_eager.torch_simulation_callable).

    With ``module_path`` (the module the parent built, saved whole by torch.save) nothing is
    built here: random initialisation under valgrind took 22 s for resnet50, loading 0.9 s.
    Without it the seeded build runs here, without the FLOPs count that building a model makes:
    under valgrind it is a whole extra forward pass (17 s for mobilenet_v2), and the parent has
    already counted them."""
    if kwargs.get("module_path"):
        from fff.backends.torch_eager import torch_simulation_callable

        return torch_simulation_callable(**kwargs)
    import fff.models.targets as targets
    from fff.models.flops import FlopCount

    targets.count_flops = lambda module, example: FlopCount(flops=0, uncounted=())  # this child only
    from fff.backends.torch_eager import torch_simulation_callable

    return torch_simulation_callable(**kwargs)


# A job's "first_call_warms": the first inference (lazy initialisation included) is simulated and
# counts as the first warm-up, instead of running unsimulated before it. Valgrind emulates that
# call at nearly full cost either way, so it looked like a third of a 1 + 1 job; measured side by
# side (bench/bench_simulation_warmup.py) it saved nothing, and PyTorch's second inference still
# writes to fresh memory (LL store misses 1.8-2x), so fff does not use it (kept for the bench).
def _warmups_after_first(job: dict) -> int:
    if job.get("first_call_warms") and job["warmup"] >= 1:
        from fff import _native

        _native.callgrind_start_instrumentation()  # before the first call: it warms the simulated caches
        return job["warmup"] - 1
    return job["warmup"]


def _job_openvino(job: dict) -> dict:
    from fff.backends.openvino.runner import Runner

    runner = Runner(job["model"], job["input_shape"], precision=job["precision"], threads=1)
    # The runner's first inference runs before its warm-up; with instrumentation already on it is simulated.
    runner.run(job["iterations"], warmup=_warmups_after_first(job), callgrind=True)
    return {"config": runner.effective_config}


def _job_callable(job: dict) -> dict:
    from importlib import import_module

    from fff import _native

    module, function = job["factory"].split(":")
    fn = getattr(import_module(module), function)(**job["kwargs"])
    warmup = _warmups_after_first(job)
    fn()  # the first call: lazy initialisation stays out of the counts (and of the simulation unless it warms)
    _native.callgrind_start_instrumentation()
    for _ in range(warmup):
        fn()
    _native.callgrind_zero_stats()
    for _ in range(job["iterations"]):
        fn()
    _native.callgrind_dump_stats(DUMP_LABEL)
    _native.callgrind_stop_instrumentation()
    return {}


JOBS = {"openvino": _job_openvino, "callable": _job_callable}  # what fff.explain.simulation_server runs, by kind
