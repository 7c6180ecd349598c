"""Does a roof measured on a busy machine say so? The machine's roofs (fff.explain.roofline) measured as
the machine is, then with busy processes on every core that this script starts and stops itself,
side by side: each roof's value, its ratio to the first measurement, and the verdict and reason
fff gives it. A loaded roof must come out "contended" (and so not cached), never "ok" and low.

    PYTHONPATH=. python bench/bench_roofline_contention.py [--threads N]

Nothing is cached by this script (fff.explain.roofline.measure_roofline, not machine_roofline). The
first row is only as quiet as the machine is: on a shared machine it may itself be contended.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_contention import start_load, stop_load  # noqa: E402

from fff.explain.roofline import measure_roofline  # noqa: E402

ROOFS = ("fma_peak_flops", "gemm_peak_flops", "triad_bytes_per_s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    threads = parser.parse_args().threads
    rows = [("as the machine is", measure_roofline(threads))]
    load = start_load("every", 1.0)
    try:
        rows.append(("every core busy", measure_roofline(threads)))
    finally:
        stop_load(load)
    first = rows[0][1]
    print(f"threads {threads}; values in G/s (FLOP/s or bytes/s), ratio to the first row")
    for name, roof in rows:
        values = "  ".join(f"{key.split('_')[0]} {roof[key] / 1e9:7.1f} ({roof[key] / first[key]:.2f}x)" for key in ROOFS)
        attempts = "/".join(str(roof["contention"][key]["attempts"]) for key in ROOFS)
        shares = "/".join(f"{roof['contention'][key]['cpu_share']:.2f}" for key in ROOFS)
        print(f"{name:18s} {values}  verdict {roof['verdict']:9s} attempts {attempts} CPU share {shares}")
        if roof["verdict_reason"]:
            print(f"{'':18s} reason: {roof['verdict_reason']}")


if __name__ == "__main__":
    main()
