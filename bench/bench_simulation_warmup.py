"""The simulated first call as the warm-up: what it saves and what it changes, side by side.

    python bench/bench_simulation_warmup.py [--targets T ...] [--isa avx]

Each target is simulated twice through the simulation phase (fff.explain.simulation_phase, both
backends at once): with the first inference unsimulated and a simulated warm-up after it (three
emulated inferences per job), and with the first inference simulated as the warm-up (two). Prints
the simulated counts of the measured inference per backend, their ratio, and each job's seconds.
"""

from __future__ import annotations

import argparse
import sys

from fff.explain.simulation_phase import SimulationTarget, simulate_targets

TARGETS = ["dw-bottleneck:depth=1,width=0.5", "plain:depth=2,width=0.5", "mobilenet_v2", "resnet18"]
COUNTERS = ("llc-misses", "llc-store-misses", "l1d-misses", "instructions")


def simulated(target: str, isa: str | None, first_call_warms: bool) -> dict:
    out = {}
    simulate_targets([SimulationTarget(target, target, {"batch": None, "resolution": None, "input_shape": None},
                                       ("torch", "openvino"), "f32")],
                     isa_cap=isa, first_call_warms=first_call_warms,
                     on_done=lambda item, fields, errors: out.update(fields))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", nargs="+", default=TARGETS)
    parser.add_argument("--isa", default="avx")
    args = parser.parse_args(argv)
    print(f"{'target':<34} {'backend':<9} {'counter':<17} {'3 inferences':>14} {'first warms':>14} {'ratio':>7}")
    for target in args.targets:
        old, new = simulated(target, args.isa, False), simulated(target, args.isa, True)
        for backend in ("torch", "openvino"):
            for name in COUNTERS:
                a = old[backend]["simulated_counters"][name]["per_inference"]
                b = new[backend]["simulated_counters"][name]["per_inference"]
                ratio = b / a if a else float("nan")
                print(f"{target:<34} {backend:<9} {name:<17} {a:>14,.0f} {b:>14,.0f} {ratio:>7.3f}")
            print(f"{target:<34} {backend:<9} {'job seconds':<17} {old[backend]['simulation']['elapsed_s']:>14.1f} "
                  f"{new[backend]['simulation']['elapsed_s']:>14.1f} "
                  f"{new[backend]['simulation']['elapsed_s'] / old[backend]['simulation']['elapsed_s']:>7.3f}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
