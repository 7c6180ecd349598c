"""Do the two backends disturb each other when measured in interleaved rounds?

Measures TARGET three ways in one run: torch and openvino interleaved (fff-profile's way),
torch alone, openvino alone; repeats that REPEATS times in alternating order, and prints each
backend's interleaved / alone ratio per repeat and its median over repeats. A ratio near 1.00
means the worker-process isolation works: neither OpenMP's nor TBB's spinning threads steal the
other's cores.
Usage: python bench/bench_interleave.py [TARGET] [--threads 2] [--seconds 4] [--repeats 8]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from fff.profiling import ProfileOptions, profile_records


def medians(target: str, backends: tuple[str, ...], threads: int, seconds: float) -> dict[str, float]:
    options = ProfileOptions(backends=backends, threads=threads, max_seconds=seconds, min_rounds=3,
                             target_ci=0.002, keep_samples=False)
    return {r["backend"]: r["latency_ms"]["median"] for r in profile_records(target, options)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", nargs="?", default="mobilenet_v2")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=8)
    args = parser.parse_args()

    together = {"torch": [], "openvino": []}
    alone = {"torch": [], "openvino": []}
    for repeat in range(args.repeats):
        steps = [("together", ("torch", "openvino")), ("alone", ("torch",)), ("alone", ("openvino",))]
        for kind, backends in steps if repeat % 2 == 0 else steps[::-1]:
            for backend, ms in medians(args.target, backends, args.threads, args.seconds).items():
                (together if kind == "together" else alone)[backend].append(ms)
        print(f"repeat {repeat + 1}/{args.repeats}: together {together}, alone {alone}", file=sys.stderr)

    print(f"{args.target}, {args.threads} threads, {args.repeats} repeats of ~{args.seconds:.0f} s each")
    # This VM flips between speed states (OpenVINO 1.52 against 2.12 ms for minutes at a time), so
    # medians pooled across repeats compare states, not modes. Each repeat runs its three steps
    # back to back: the ratio within a repeat is the paired comparison, and its median over
    # repeats discards the repeats a state change fell into.
    for backend in ("torch", "openvino"):
        ratios = np.array(together[backend]) / np.array(alone[backend])
        shown = " ".join(f"{r:.3f}" for r in ratios)
        print(f"{backend:>9}: interleaved / alone, median over repeats = {np.median(ratios):.4f}  (per repeat: {shown}; "
              f"medians {min(together[backend]):.3f} .. {max(together[backend]):.3f} ms interleaved, "
              f"{min(alone[backend]):.3f} .. {max(alone[backend]):.3f} ms alone)")

if __name__ == "__main__":
    main()
