"""Where to build and convert: one reused builder child, a new child per target, or in-process.

    python bench/bench_builder.py [--targets 6]

Each way builds, counts and converts the same distinct tiny pattern targets (a fresh IR cache
each, so every target is converted) and the script prints seconds per target and the main
process's memory growth, side by side, plus the ratios fff's choice rests on. Run the three in
one go: the machine's load changes between runs.
"""

from __future__ import annotations

import argparse
import tempfile
import time


def _rss_mb() -> float:
    import os

    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=6)
    args = parser.parse_args()
    targets = [f"plain:depth=1,width={0.25 + i / 64:g},resolution=32" for i in range(args.targets)]

    from fff.builder import Builder

    results = {}

    # A reused child: one start (imports torch and openvino), then one call per target.
    with tempfile.TemporaryDirectory() as cache:
        before, start = _rss_mb(), time.perf_counter()
        builder = Builder()
        for target in targets:
            builder.prepare(target, {}, cache_dir=cache)
        builder.close()
        results["reused child"] = ((time.perf_counter() - start) / len(targets), _rss_mb() - before)

    # A new child per target: every target pays the imports.
    with tempfile.TemporaryDirectory() as cache:
        before, start = _rss_mb(), time.perf_counter()
        for target in targets:
            builder = Builder()
            builder.prepare(target, {}, cache_dir=cache)
            builder.close()
        results["child per target"] = ((time.perf_counter() - start) / len(targets), _rss_mb() - before)

    # In-process, as before the builder: warmed (imports and one conversion not counted), then
    # whatever convert_model keeps per target.
    with tempfile.TemporaryDirectory() as cache:
        from fff.conversion import prepare_ir
        from fff.models import build

        prepare_ir(build("plain:depth=1,width=0.125,resolution=32"), cache_dir=cache)
        before, start = _rss_mb(), time.perf_counter()
        for target in targets:
            prepare_ir(build(target), cache_dir=cache)
        results["in-process"] = ((time.perf_counter() - start) / len(targets), _rss_mb() - before)

    for way, (seconds, growth) in results.items():
        print(f"{way:<18} {seconds:6.2f} s per target   main process +{growth:6.0f} MB over {len(targets)} targets")
    reused = results["reused child"][0]
    print(f"child per target / reused child:  {results['child per target'][0] / reused:.2f}x the time")
    print(f"reused child / in-process (warm): {reused / results['in-process'][0]:.2f}x the time")


if __name__ == "__main__":
    main()
