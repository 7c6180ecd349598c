"""Do the two backends disturb each other when measured in interleaved rounds?

Measures TARGET three ways in one run: torch and openvino interleaved (fff-profile's way),
torch alone, openvino alone; repeats that REPEATS times in alternating order, and prints each
backend's median interleaved / alone. A ratio near 1.00 means the worker-process isolation
works: neither OpenMP's nor TBB's spinning threads steal the other's cores.
Usage: python bench/bench_interleave.py [TARGET] [--threads 2] [--seconds 5] [--repeats 3]
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
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
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
    for backend in ("torch", "openvino"):
        t, a = np.median(together[backend]), np.median(alone[backend])
        print(f"{backend:>9}: interleaved {t:8.3f} ms, alone {a:8.3f} ms, interleaved / alone = {t / a:.4f}")


if __name__ == "__main__":
    main()
