"""What the extra LL sizes of a cache axis cost, per cell: the cache model (and simulation, where asked)
at one LL size and at several, side by side.

    python bench/bench_ll_sizes.py [--targets T ...] [--sizes machine LL=12MiB,16way LL=2MiB,16way]
                                   [--simulate T ...] [--repeats 2]

The model: each target is built once in the builder child (fff.builder), then its cache model is
asked for at the first size alone and at all ``--sizes`` (the order alternating between repeats),
timing the builder call's wall time; the extra sizes reuse the one trace, so their cost is the LRU
streaming alone. The simulation (``--simulate``, small targets: minutes per target per size): the
target simulated under valgrind at each size in turn, as the study's simulation phase does
(fff.explain.simulation_phase, one server per size), each size's wall time printed.
Timing is never repeated: a cell's timed rounds run once whatever the number of sizes.
"""

from __future__ import annotations

import argparse
import sys
import time

from fff.backends import DEFAULT_BACKENDS, backend_class, class_path
from fff.builder import shared_builder
from fff.explain.cache_geometry import MACHINE, split_cache_sizes

TARGETS = ["plain:depth=2,width=0.5", "dw-bottleneck:depth=4,width=1.0", "dense:depth=8,width=1.0", "mobilenet_v2",
           "resnet18"]
SIZES = [MACHINE, "LL=12MiB,16way", "LL=2MiB,16way"]


def model_seconds(target: str, sizes: list[str]) -> tuple[float, dict]:
    backends = {name: class_path(backend_class(name)) for name in DEFAULT_BACKENDS}
    built = shared_builder().prepare(target, {}, backends)
    cache, extra = split_cache_sizes(sizes)
    start = time.monotonic()
    fields = shared_builder().model_caches(target, {}, backends, built.artifacts, "f32", cache, extra)
    return time.monotonic() - start, fields


def simulate_seconds(target: str, sizes: list[str]) -> list[tuple[str, float, dict]]:
    from fff.explain.simulation_phase import SimulationTarget, simulate_targets

    out = []
    for size in sizes:
        found = {}
        start = time.monotonic()
        simulate_targets([SimulationTarget(target, target, {"batch": None, "resolution": None, "input_shape": None},
                                           tuple(DEFAULT_BACKENDS), "f32")],
                         cache=None if size == MACHINE else size, isa_cap="avx",
                         on_done=lambda item, fields, errors: found.update(fields))
        misses = {b: ((f.get("simulated_counters") or {}).get("llc-misses") or {}).get("per_inference")
                  for b, f in found.items()}
        out.append((size, time.monotonic() - start, misses))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", nargs="+", default=TARGETS)
    parser.add_argument("--sizes", nargs="+", default=SIZES)
    parser.add_argument("--simulate", nargs="*", default=[], help="targets to simulate at each size (slow)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    one, every = args.sizes[:1], args.sizes
    totals = {1: 0.0, len(every): 0.0}
    print(f"model: {one[0]} alone against {len(every)} sizes ({', '.join(every)}); wall s of the builder call, "
          f"both stacks")
    print(f"{'target':<36} {'repeat':>6} {'1 size s':>9} {f'{len(every)} sizes s':>10} {'ratio':>6}  misses per size (torch)")
    for repeat in range(args.repeats):
        for target in args.targets:
            seconds, misses = {}, ""
            for sizes in ((one, every) if repeat % 2 == 0 else (every, one)):
                seconds[len(sizes)], fields = model_seconds(target, sizes)
                if len(sizes) > 1:
                    torch = fields.get("torch") or {}
                    per = [torch.get("modelled_counters", {}).get("llc-misses", {}).get("per_inference")]
                    per += [(torch.get("ll_sizes") or {}).get(s, {}).get("modelled_counters", {})
                            .get("llc-misses", {}).get("per_inference") for s in every[1:]]
                    misses = ", ".join("-" if m is None else f"{m:,.0f}" for m in per)
            for n in seconds:
                totals[n] += seconds[n]
            print(f"{target:<36} {repeat:>6} {seconds[1]:>9.2f} {seconds[len(every)]:>10.2f} "
                  f"{seconds[len(every)] / seconds[1]:>6.2f}  {misses}", flush=True)
    print(f"model total: 1 size {totals[1]:.1f} s, {len(every)} sizes {totals[len(every)]:.1f} s, "
          f"ratio {totals[len(every)] / totals[1]:.2f}")
    for target in args.simulate:
        for size, seconds, misses in simulate_seconds(target, every):
            print(f"simulated {target} at {size}: {seconds:.1f} s wall, LL misses "
                  + ", ".join(f"{b} {'-' if m is None else f'{m:,.0f}'}" for b, m in misses.items()), flush=True)
    shared_builder().close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
