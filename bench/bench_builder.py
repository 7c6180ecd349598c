"""Where to build and convert: one reused builder child, a new child per target, or in-process.

    python bench/bench_builder.py [--targets 4]

Each way builds, counts and converts distinct tiny pattern targets (every target converted, none
from the cache). The reused child and the in-process way are warmed first (imports and one
target not counted) and then alternate target by target, so the machine's drift hits both
alike; a new child per target is timed whole (start, imports, one target). Prints the median
seconds per target of each, their ratios, and the main process's memory growth per target.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time


def _rss_mb() -> float:
    import os

    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=4)
    args = parser.parse_args()
    names = iter(f"plain:depth=1,width={0.25 + i / 64:g},resolution=32" for i in range(3 * args.targets + 2))

    from fff.builder import Builder
    from fff.backends.openvino.conversion import prepare_ir
    from fff.models import build

    with tempfile.TemporaryDirectory() as cache:
        builder = Builder()
        builder.prepare(next(names), {}, cache_dir=cache)  # warm: the child's imports
        prepare_ir(build(next(names)), cache_dir=cache)  # warm: this process's imports
        times = {"reused child": [], "in-process": [], "child per target": []}
        growth = {"reused child": 0.0, "in-process": 0.0}
        for _ in range(args.targets):
            before, start = _rss_mb(), time.perf_counter()
            builder.prepare(next(names), {}, cache_dir=cache)
            times["reused child"].append(time.perf_counter() - start)
            growth["reused child"] += _rss_mb() - before
            before, start = _rss_mb(), time.perf_counter()
            prepare_ir(build(next(names)), cache_dir=cache)
            times["in-process"].append(time.perf_counter() - start)
            growth["in-process"] += _rss_mb() - before
        builder.close()
        for _ in range(max(1, args.targets // 2)):
            start = time.perf_counter()
            fresh = Builder()
            fresh.prepare(next(names), {}, cache_dir=cache)
            fresh.close()
            times["child per target"].append(time.perf_counter() - start)

    median = {way: statistics.median(values) for way, values in times.items()}
    for way, seconds in median.items():
        grown = f"main process +{growth[way] / args.targets:5.1f} MB per target" if way in growth else ""
        print(f"{way:<17} {seconds:6.2f} s per target (median of {len(times[way])})  {grown}")
    print(f"child per target / reused child: {median['child per target'] / median['reused child']:.2f}x the time")
    print(f"reused child / in-process:       {median['reused child'] / median['in-process']:.2f}x the time")


if __name__ == "__main__":
    main()
