"""What the cache figures cost a study: cells profiled with and without the cache model, side by side.

    python bench/bench_cache_cost.py [--targets T ...] [--repeats 2]

Each target is profiled as a default-study cell (3 s of timed rounds at most, +-2%, 3 warm-ups)
with ``cache_model`` off and on, the order alternating between repeats, and the wall time of
each profile printed with the ratio on / off over all of them. The roofline is measured (and
cached) before the first cell so neither side pays for it. Target (issue #13): the study with
cache figures for every cell within 1.5x of the study without.
"""

from __future__ import annotations

import argparse
import sys
import time

from fff.profiling import ProfileOptions, profile_target
from fff.explain.roofline import machine_roofline

TARGETS = ["mobilenet_v2", "resnet18", "dw-bottleneck:depth=4,width=1.0,resolution=224",
           "plain:depth=2,width=0.5,resolution=224"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", nargs="+", default=TARGETS)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    base = ProfileOptions(max_seconds=3.0, target_ci=0.02, min_rounds=3, warmup=3, keep_samples=False).validated()
    machine_roofline(base.threads)
    totals = {False: 0.0, True: 0.0}
    print(f"{'target':<48} {'repeat':>6} {'off s':>7} {'on s':>7} {'on/off':>7} {'model s (torch, openvino)':>26}")
    for repeat in range(args.repeats):
        for target in args.targets:
            seconds, model_s = {}, ""
            for on in ((False, True) if repeat % 2 == 0 else (True, False)):
                start = time.monotonic()
                records = profile_target(target, ProfileOptions(**{**base.__dict__, "cache_model": on}))
                seconds[on] = time.monotonic() - start
                if on:
                    model_s = ", ".join(f"{r['cache_model']['elapsed_s']:.1f}" for r in records if r.get("cache_model"))
            totals[False] += seconds[False]
            totals[True] += seconds[True]
            print(f"{target:<48} {repeat:>6} {seconds[False]:>7.1f} {seconds[True]:>7.1f} "
                  f"{seconds[True] / seconds[False]:>7.2f} {model_s:>26}", flush=True)
    print(f"total: off {totals[False]:.1f} s, on {totals[True]:.1f} s, on / off {totals[True] / totals[False]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
