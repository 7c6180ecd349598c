"""The machine's own limits, and how close each record comes to them (the roofline).

Three figures, measured once per machine and thread count and cached with the machine's
fingerprint (fff.measure.machine) next to the conversion cache:

- ``fma_peak``: f32 FLOP/s of independent FMA chains in registers on every thread (the native
  kernel in cpp/roofline.cpp, the widest ISA the CPU has): the compute roof no code can pass;
- ``gemm_peak``: f32 FLOP/s of a large MatMul through OpenVINO (fff.Runner, same threads): the
  compute roof a real kernel reaches;
- ``triad``: bytes/s of a STREAM triad over arrays 4x the LL (native, same threads): the memory
  roof.

A record's arithmetic intensity is its FLOPs per byte of LL traffic ((read + write misses) x
line), from the best source it has: measured (PMU), simulated (valgrind) or modelled
(fff.explain.cache_model); the record says which. Its attainable FLOP/s is min(compute roof, intensity x
bandwidth), and its attained fraction is its GFLOP/s over that.

Each roof is measured in a round bracketed like a timed round (fff.measure.contention: the process's CPU
time against wall x threads, and other processes' time from /proc/stat). A contended round is
measured again, up to ATTEMPTS times; a roof still contended after that is returned with
``verdict: "contended"`` and its reason, and is not cached: a roof measured low would make
records "pass" it. Every record's point carries the roof's verdict, and a fraction against a
contended roof is not given as one (``attained_fraction`` stays None).

Frequency bound used by the sanity check (tests): no x86 core sustains FMAs above 6 GHz, so the
FMA peak cannot exceed threads x lanes x 2 FLOPs x 2 FMA pipes x 6 GHz.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from datetime import datetime, timezone

__all__ = ["machine_roofline", "measure_roofline", "gemm_peak", "roofline_point", "FREQUENCY_BOUND_HZ",
           "FMA_PIPES_BOUND"]

FREQUENCY_BOUND_HZ = 6.0e9
FMA_PIPES_BOUND = 2
# /2: each roof carries the contention verdict of the rounds that measured it; a /1 roof cached
# before that may have been measured on a busy machine, so it is measured again.
SCHEMA = "fff.explain.roofline/2"
ATTEMPTS = 3  # rounds per roof before it is called contended
RETRY_PAUSE_S = 1.0  # lets a short burst of another process pass before the next attempt
# A contended roof is not cached; within one process it is reused this long before fff tries again,
# so a study on a busy machine does not pay ATTEMPTS x three roofs for every cell.
CONTENDED_REUSE_S = 300.0
GEMM_SIZE = 2048  # 17 GFLOP per inference: tens of ms on any CPU, weights 16 MiB


def gemm_peak(threads: int, n: int = GEMM_SIZE, iterations: int = 5) -> dict:
    """Best f32 FLOP/s of an n x n by n x n MatMul through OpenVINO's CPU plugin."""
    return gemm_kernel(threads, n, iterations)()


def gemm_kernel(threads: int, n: int = GEMM_SIZE, iterations: int = 5):
    """The GEMM compiled now; the returned function times it (so a meter brackets the timing only)."""
    import numpy as np
    import openvino as ov
    from openvino import opset13 as ops

    from fff.backends.openvino.runner import Runner

    weights = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    x = ops.parameter([n, n], ov.Type.f32, name="x")
    model = ov.Model([ops.matmul(x, ops.constant(weights), False, False)], [x], "fff_gemm")
    with tempfile.TemporaryDirectory(prefix="fff-gemm-") as tmp:
        xml = os.path.join(tmp, "gemm.xml")
        ov.save_model(model, xml, compress_to_fp16=False)
        runner = Runner(xml, [n, n], precision="f32", threads=threads)

    def timed() -> dict:
        result = runner.run(iterations, warmup=2)
        best_s = float(np.min(result.latencies_ns)) / 1e9
        return {"per_second": 2.0 * n ** 3 / best_s, "seconds": best_s, "threads": threads, "n": n,
                "source": f"measured: {n}x{n} f32 MatMul through OpenVINO CPU, best of {iterations}"}

    return timed


def _kernels(threads: int, ll_bytes: int) -> dict:
    """Roof name -> a function measuring it once (best of a few runs)."""
    from fff import _native

    return {
        "fma_peak_flops": lambda: max((_native.fma_peak(threads, 0.3) for _ in range(5)),
                                      key=lambda m: m["per_second"]),
        "triad_bytes_per_s": lambda: _native.triad_bandwidth(threads, _triad_bytes(ll_bytes), 5),
        "gemm_peak_flops": gemm_kernel(threads),
    }


def _triad_bytes(ll_bytes: int) -> int:
    return max(4 * ll_bytes, 64 << 20)


def _measured_clean(kernel, threads: int, meter) -> tuple[dict, dict]:
    """Run ``kernel`` in metered rounds until one is not contended (at most ATTEMPTS): its result
    and an account of the rounds (attempts, the kept round's CPU share and others' CPUs, and the
    problem when every round was contended; then the fastest round's result is kept)."""
    from fff.measure.contention import round_problem

    cpus = max(1, min(threads, len(os.sched_getaffinity(0))))
    rounds = []
    for attempt in range(ATTEMPTS):
        if attempt:
            time.sleep(RETRY_PAUSE_S)
        round_meter = meter(cpus)
        result = kernel()
        usage = round_meter.stop(1)
        problem = round_problem(usage)
        rounds.append((result, usage, problem))
        if problem is None:
            break
    result, usage, problem = (rounds[-1] if rounds[-1][2] is None
                              else max(rounds, key=lambda r: r[0]["per_second"]))
    account = {"attempts": len(rounds), "problem": problem, "cpu_share": round(usage.cpu_share, 3),
               "others_cpus": None if usage.others_cpus is None else round(usage.others_cpus, 3),
               "steal_cpus": None if usage.steal_cpus is None else round(usage.steal_cpus, 3)}
    return result, account


def _contention_reason(name: str, account: dict) -> str:
    others = "" if account["others_cpus"] is None else f", other processes took {account['others_cpus']:.2f} CPUs"
    return (f"{name}: contended in {account['attempts']} of {account['attempts']} rounds ({account['problem']}: "
            f"it got {100 * account['cpu_share']:.0f}% of the CPU it asked for{others})")


def measure_roofline(threads: int, ll_bytes: int | None = None, *, meter=None) -> dict:
    """Measure the three roofs now (a few seconds; more when rounds are contended). ``meter``
    replaces fff.measure.contention.RoundMeter (tests inject contention readings with it)."""
    from fff.measure.contention import RoundMeter
    from fff.measure.machine import machine_fingerprint, sysfs_caches

    if ll_bytes is None:
        sizes = [c["size_bytes"] for c in sysfs_caches(0).values() if c["size_bytes"]]
        ll_bytes = max(sizes) if sizes else 32 << 20
    measured, contention = {}, {}
    for name, kernel in _kernels(threads, ll_bytes).items():
        measured[name], contention[name] = _measured_clean(kernel, threads, meter or RoundMeter)
    fma, triad, gemm = (measured[n] for n in ("fma_peak_flops", "triad_bytes_per_s", "gemm_peak_flops"))
    reasons = [_contention_reason(name, account) for name, account in contention.items() if account["problem"]]
    return {
        "schema": SCHEMA,
        "fingerprint": machine_fingerprint(),
        "threads": threads,
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "fma_peak_flops": fma["per_second"],
        "fma_isa": fma["isa"],
        "fma_lanes": fma["lanes"],
        "gemm_peak_flops": gemm["per_second"],
        "triad_bytes_per_s": triad["per_second"],
        "verdict": "contended" if reasons else "ok",
        "verdict_reason": "; ".join(reasons),
        "contention": contention,
        "sources": {
            "fma_peak_flops": f"measured: native FMA chains ({fma['isa']}, {fma['lanes']} f32 lanes), "
                              f"{threads} threads, best of 5 x 0.3 s",
            "gemm_peak_flops": gemm["source"],
            "triad_bytes_per_s": f"measured: native triad, {threads} threads, 3 arrays of "
                                 f"{_triad_bytes(ll_bytes) >> 20} MiB, best of 5 (STREAM's 24 B per element)",
        },
        "caveat": ("measured once per machine and thread count, in rounds checked for contention "
                   "(fff.measure.contention); a contended roof comes out low and is not cached"),
    }


def _cache_path(threads: int):
    from fff.backends.artifact_cache import default_cache_dir
    from fff.measure.machine import machine_fingerprint

    return default_cache_dir() / f"roofline-{machine_fingerprint()}-{threads}t.json"


_contended: dict[int, tuple[float, dict]] = {}  # threads -> (monotonic time, roof) this process measured


def cached_roof_usable(cached: dict, threads: int) -> bool:
    """A cached roof is used only when this fff measured it (same schema), for these threads, cleanly."""
    return cached.get("schema") == SCHEMA and cached.get("threads") == threads and cached.get("verdict") == "ok"


def machine_roofline(threads: int | None = None, *, refresh: bool = False, measure=None) -> dict:
    """The roofs for ``threads`` (default: every available CPU), measured once and cached; a
    contended measurement is returned (its verdict says so) but not cached. ``measure``
    replaces measure_roofline (tests)."""
    threads = threads or len(os.sched_getaffinity(0))
    path = _cache_path(threads)
    if not refresh and path.exists():
        try:
            cached = json.loads(path.read_text())
            if cached_roof_usable(cached, threads):
                return cached
        except (OSError, ValueError):
            pass  # unreadable: measure again
    if not refresh and threads in _contended and time.monotonic() - _contended[threads][0] < CONTENDED_REUSE_S:
        return _contended[threads][1]
    roof = (measure or measure_roofline)(threads)
    if roof.get("verdict") != "ok":
        _contended[threads] = (time.monotonic(), roof)
        return roof
    _contended.pop(threads, None)
    try:
        from fff.safe_write import write_text

        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps(roof, indent=1))
    except OSError:
        pass  # a read-only cache dir costs a re-measurement next time, nothing else
    return roof


def _traffic(record: dict) -> tuple[float, str] | None:
    """LL bytes per inference from the best source the record has, and that source."""
    model_ll = (record.get("cache_model") or {}).get("ll") or {}
    simulated_ll = ((record.get("simulation") or {}).get("geometry") or {}).get("LL") or {}
    # A what-if LL is not the cache the timed run had: its traffic cannot place the timed run.
    what_if = {"simulated_counters": simulated_ll.get("note", "").startswith("what-if"),
               "modelled_counters": model_ll.get("note", "").startswith("what-if")}
    for key, source in (("counters", "measured"), ("simulated_counters", "simulated"),
                        ("modelled_counters", "modelled")):
        if what_if.get(key):
            continue
        line = {"simulated_counters": simulated_ll, "modelled_counters": model_ll}.get(key, model_ll).get("line", 64)
        counters = record.get(key) or {}
        misses = (counters.get("llc-misses") or {}).get("per_inference")
        if misses is None:
            continue
        stores = (counters.get("llc-store-misses") or {}).get("per_inference") or 0
        if source == "simulated":
            source = f"simulated ({(record.get('simulation') or {}).get('isa', 'valgrind virtual CPU')})"
        return (misses + stores) * line, source
    return None


def roofline_point(record: dict, roof: dict) -> dict:
    """Arithmetic intensity and attained fraction of the roof for one profile record.

    Against a roof measured under contention (``roof["verdict"] != "ok"``) the fraction is kept
    apart (``attained_fraction_against_contended_roof``: too high, the roof being low) and
    ``attained_fraction`` stays None; a fraction above 1 is said in ``note``, with its causes."""
    verdict = roof.get("verdict", "unchecked")  # a roof from before fff checked contention
    trusted = verdict == "ok"
    point = {"fma_peak_gflops": roof["fma_peak_flops"] / 1e9, "gemm_peak_gflops": roof["gemm_peak_flops"] / 1e9,
             "triad_gbytes_per_s": roof["triad_bytes_per_s"] / 1e9, "roof_threads": roof["threads"],
             "roof_measured_at": roof["measured_at"], "roof_verdict": verdict,
             "roof_verdict_reason": roof.get("verdict_reason") or ("" if trusted else "measured without a contention check"),
             "arithmetic_intensity": None, "intensity_source": None, "ll_bytes_per_inference": None,
             "attainable_gflops": None, "attained_fraction": None, "attained_fraction_against_contended_roof": None,
             "attained_fraction_of_fma_peak": None, "note": None}
    notes = []
    if not trusted:
        notes.append(f"the roof is not trustworthy ({verdict}: {point['roof_verdict_reason']}); it comes out low on a "
                     "busy machine, so no attained fraction is given (fff.explain.roofline.machine_roofline(refresh=True) "
                     "measures it again)")
    gflops = record.get("gflops_per_s")
    if gflops and trusted:
        point["attained_fraction_of_fma_peak"] = gflops / point["fma_peak_gflops"]
    traffic = _traffic(record)
    if traffic and record.get("flops"):
        bytes_moved, source = traffic
        intensity = record["flops"] / max(bytes_moved, 1.0)  # no traffic at all: bounded by compute
        point["arithmetic_intensity"], point["intensity_source"] = intensity, source
        point["ll_bytes_per_inference"] = bytes_moved
        attainable = min(roof["fma_peak_flops"], intensity * roof["triad_bytes_per_s"]) / 1e9
        point["attainable_gflops"] = attainable
        if gflops:
            point["attained_fraction" if trusted else "attained_fraction_against_contended_roof"] = gflops / attainable
    elif (record.get("cache_model") or {}).keys() & {"not_modelled", "error"}:
        # No traffic from any source, and the model said why (a stack it cannot trace): say it here too.
        cache_model = record["cache_model"]
        notes.append("no arithmetic intensity: no LL traffic measured or simulated, and the cache model gave none "
                     f"({cache_model.get('not_modelled') or cache_model.get('error')})")
    if trusted and gflops and gflops > point["fma_peak_gflops"]:
        notes.append("above the measured FMA peak: the kernels do fewer FLOPs than 2 x multiply-adds (Winograd), "
                     f"or the roof was measured low (measured {roof['measured_at']}; "
                     "fff.explain.roofline.machine_roofline(refresh=True) measures it again)")
    elif trusted and (point["attained_fraction"] or 0) > 1:
        notes.append(f"above the measured roof ({point['attained_fraction']:.2f} of min(FMA peak, intensity x triad)): "
                     f"the {point['intensity_source']} LL traffic overstates the bytes this run moved from memory, "
                     "or the roof was measured low")
    point["note"] = "; ".join(notes) or None
    return point
