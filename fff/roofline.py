"""The machine's own limits, and how close each record comes to them (the roofline).

Three figures, measured once per machine and thread count and cached with the machine's
fingerprint (fff.machine) next to the conversion cache:

- ``fma_peak``: f32 FLOP/s of independent FMA chains in registers on every thread (the native
  kernel in cpp/roofline.cpp, the widest ISA the CPU has): the compute roof no code can pass;
- ``gemm_peak``: f32 FLOP/s of a large MatMul through OpenVINO (fff.Runner, same threads): the
  compute roof a real kernel reaches;
- ``triad``: bytes/s of a STREAM triad over arrays 4x the LL (native, same threads): the memory
  roof.

A record's arithmetic intensity is its FLOPs per byte of LL traffic ((read + write misses) x
line), from the best source it has: measured (PMU), simulated (valgrind) or modelled
(fff.cache_model); the record says which. Its attainable FLOP/s is min(compute roof, intensity x
bandwidth), and its attained fraction is its GFLOP/s over that.

Frequency bound used by the sanity check (tests): no x86 core sustains FMAs above 6 GHz, so the
FMA peak cannot exceed threads x lanes x 2 FLOPs x 2 FMA pipes x 6 GHz.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone

__all__ = ["machine_roofline", "measure_roofline", "gemm_peak", "roofline_point", "FREQUENCY_BOUND_HZ",
           "FMA_PIPES_BOUND"]

FREQUENCY_BOUND_HZ = 6.0e9
FMA_PIPES_BOUND = 2
SCHEMA = "fff.roofline/1"
GEMM_SIZE = 2048  # 17 GFLOP per inference: tens of ms on any CPU, weights 16 MiB


def gemm_peak(threads: int, n: int = GEMM_SIZE, iterations: int = 5) -> dict:
    """Best f32 FLOP/s of an n x n by n x n MatMul through OpenVINO's CPU plugin."""
    import numpy as np
    import openvino as ov
    from openvino import opset13 as ops

    from fff.runner import Runner

    weights = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    x = ops.parameter([n, n], ov.Type.f32, name="x")
    model = ov.Model([ops.matmul(x, ops.constant(weights), False, False)], [x], "fff_gemm")
    with tempfile.TemporaryDirectory(prefix="fff-gemm-") as tmp:
        xml = os.path.join(tmp, "gemm.xml")
        ov.save_model(model, xml, compress_to_fp16=False)
        runner = Runner(xml, [n, n], precision="f32", threads=threads)
        result = runner.run(iterations, warmup=2)
    best_s = float(np.min(result.latencies_ns)) / 1e9
    return {"per_second": 2.0 * n ** 3 / best_s, "seconds": best_s, "threads": threads, "n": n,
            "source": f"measured: {n}x{n} f32 MatMul through OpenVINO CPU, best of {iterations}"}


def measure_roofline(threads: int, ll_bytes: int | None = None) -> dict:
    """Measure the three roofs now (a few seconds)."""
    from fff import _native
    from fff.machine import machine_fingerprint, sysfs_caches

    if ll_bytes is None:
        sizes = [c["size_bytes"] for c in sysfs_caches(0).values() if c["size_bytes"]]
        ll_bytes = max(sizes) if sizes else 32 << 20
    fma = max((_native.fma_peak(threads, 0.3) for _ in range(5)), key=lambda m: m["per_second"])
    triad = _native.triad_bandwidth(threads, max(4 * ll_bytes, 64 << 20), 5)
    gemm = gemm_peak(threads)
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
        "sources": {
            "fma_peak_flops": f"measured: native FMA chains ({fma['isa']}, {fma['lanes']} f32 lanes), "
                              f"{threads} threads, best of 5 x 0.3 s",
            "gemm_peak_flops": gemm["source"],
            "triad_bytes_per_s": f"measured: native triad, {threads} threads, 3 arrays of "
                                 f"{max(4 * ll_bytes, 64 << 20) >> 20} MiB, best of 5 (STREAM's 24 B per element)",
        },
        "caveat": "measured once per machine and thread count; on a busy machine the roofs come out low",
    }


def _cache_path(threads: int):
    from fff.conversion import default_cache_dir
    from fff.machine import machine_fingerprint

    return default_cache_dir() / f"roofline-{machine_fingerprint()}-{threads}t.json"


def machine_roofline(threads: int | None = None, *, refresh: bool = False) -> dict:
    """The roofs for ``threads`` (default: every available CPU), measured once and cached."""
    threads = threads or len(os.sched_getaffinity(0))
    path = _cache_path(threads)
    if not refresh and path.exists():
        try:
            cached = json.loads(path.read_text())
            if cached.get("schema") == SCHEMA:
                return cached
        except (OSError, ValueError):
            pass  # unreadable: measure again
    roof = measure_roofline(threads)
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
    """Arithmetic intensity and attained fraction of the roof for one profile record."""
    point = {"fma_peak_gflops": roof["fma_peak_flops"] / 1e9, "gemm_peak_gflops": roof["gemm_peak_flops"] / 1e9,
             "triad_gbytes_per_s": roof["triad_bytes_per_s"] / 1e9, "roof_threads": roof["threads"],
             "roof_measured_at": roof["measured_at"], "arithmetic_intensity": None, "intensity_source": None,
             "attainable_gflops": None, "attained_fraction": None,
             "attained_fraction_of_fma_peak": None, "note": None}
    gflops = record.get("gflops_per_s")
    if gflops:
        point["attained_fraction_of_fma_peak"] = gflops / point["fma_peak_gflops"]
    traffic = _traffic(record)
    if traffic and record.get("flops"):
        bytes_moved, source = traffic
        intensity = record["flops"] / max(bytes_moved, 1.0)  # no traffic at all: bounded by compute
        point["arithmetic_intensity"], point["intensity_source"] = intensity, source
        attainable = min(roof["fma_peak_flops"], intensity * roof["triad_bytes_per_s"]) / 1e9
        point["attainable_gflops"] = attainable
        if gflops:
            point["attained_fraction"] = gflops / attainable
    if gflops and gflops > point["fma_peak_gflops"]:
        point["note"] = ("above the measured FMA peak: the kernels do fewer FLOPs than 2 x multiply-adds (Winograd), "
                         "or the roof was measured on a busy machine (fff.roofline.machine_roofline(refresh=True) "
                         f"measures it again; measured {roof['measured_at']})")
    return point
