"""Valgrind's callgrind as fff's cache simulator: its counters, its output files, and the client
requests around a measured region.

The measured region: instrumentation (and so cache simulation) is off while Python starts and the
model compiles (``--instr-atstart=no``), is switched on by a client request before the warm-up so
the simulated caches are warm when measuring starts, costs are zeroed after the warm-up and dumped
after the last measured inference. Zeroing and dumping cover every thread; callgrind's collect
toggle would not (it is per thread, and the work runs on the runtime's worker threads too).
``measure_callable`` does that for a Python callable (the seam every stack written in Python uses);
OpenVINO's C++ runner issues the same requests inside its own loop.
"""

from __future__ import annotations

import os
import shutil

from fff.errors import FffError
from fff.measure.counters import CounterResult, CounterResults

__all__ = ["DUMP_LABEL", "CAVEAT", "ISA_CAP_EFFECT", "SIMULATED_COUNTERS", "parse_callgrind_totals",
           "counters_from_events", "unavailable_reason", "valgrind_path", "measure_callable", "measure_factory"]

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


def counters_from_events(events: dict[str, int], iterations: int, geometry,
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


def valgrind_path() -> str:
    reason = unavailable_reason()
    if reason:
        raise FffError(reason)
    return shutil.which("valgrind")


def measure_callable(fn, iterations: int, warmup: int) -> None:
    """``fn`` once unsimulated (lazy initialisation stays out of the counts), ``warmup`` times with
    the caches simulated, then ``iterations`` times counted and dumped under DUMP_LABEL."""
    from fff import _native

    fn()
    _native.callgrind_start_instrumentation()
    for _ in range(warmup):
        fn()
    _native.callgrind_zero_stats()
    for _ in range(iterations):
        fn()
    _native.callgrind_dump_stats(DUMP_LABEL)
    _native.callgrind_stop_instrumentation()


def measure_factory(*, factory: str, kwargs: dict, iterations: int, warmup: int) -> dict:
    """A simulation job's run function: ``factory`` ("module:function") called with ``kwargs`` gives
    the zero-argument callable that measure_callable runs."""
    from fff.measure.child_process import import_user_module  # a plugin stack may live in the working directory

    module, _, function = factory.partition(":")
    measure_callable(getattr(import_user_module(module), function)(**kwargs), iterations, warmup)
    return {}
