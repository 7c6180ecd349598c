"""What does counting cost the timed loop?

One IR, one runner, three modes measured side by side in interleaved rounds (the order rotates
every round so drift cancels):

  off            Runner.run without counters
  totals         counters summed over every thread around the loop (read before and after it)
  per-iteration  the same counters also read between iterations (outside the timed bracket)

Prints each mode's median latency and its ratio to "off" (target for totals: <= 1.01), the
spread of the per-round ratios, and the per-call cost outside the loop (opening the counters on
every thread and reading them), which is not in any latency.
Usage: python bench/bench_counters.py [--model resnet18] [--threads 2] [--rounds 9] [--iterations 100]
       [--counters task-clock,page-faults,...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import fff
from fff.measure.counters import validate_names

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_runner import convert_zoo_model  # noqa: E402  (same model preparation as the runner bench)

DEFAULT_COUNTERS = "task-clock,page-faults,context-switches,cpu-migrations,instructions,cycles,llc-loads,llc-misses"
MODES = ("off", "totals", "per-iteration")


def run_mode(runner: fff.Runner, mode: str, names: list[str], iterations: int) -> tuple[np.ndarray, float]:
    """(latencies, ns spent in run() outside the timed iterations)."""
    start = time.perf_counter_ns()
    if mode == "off":
        result = runner.run(iterations, warmup=0)
    else:
        result = runner.run(iterations, warmup=0, counters=names, per_iteration_counters=mode == "per-iteration")
    wall = time.perf_counter_ns() - start
    return result.latencies_ns, wall - result.latencies_ns.sum()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet18", help="torchvision model name, or a path to a static-shape .xml")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--counters", default=DEFAULT_COUNTERS)
    args = parser.parse_args()
    names = list(validate_names(args.counters.split(",")))

    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(args.model) if args.model.endswith(".xml") else convert_zoo_model(args.model, args.resolution, Path(tmp))
        runner = fff.Runner(xml, threads=args.threads)
        runner.run(10, warmup=10)

        probe = runner.run(1, warmup=0, counters=names).counters
        print(f"model {args.model}, {args.threads} threads, {args.rounds} rounds x {args.iterations} iterations")
        print("counters: " + ", ".join(f"{n} ({probe[n].status})" for n in names)
              + f"; opened on {probe.threads} threads")

        samples = {mode: [] for mode in MODES}
        outside = {mode: [] for mode in MODES}
        for round_index in range(args.rounds):
            shift = round_index % len(MODES)
            for mode in MODES[shift:] + MODES[:shift]:
                latencies, extra = run_mode(runner, mode, names, args.iterations)
                samples[mode].append(latencies)
                outside[mode].append(extra)

    off = np.median(np.concatenate(samples["off"]))
    print(f"\n{'mode':<14} {'median ms':>10} {'/ off':>8} {'per-round ratio min..max':>26} {'outside loop ms/call':>22}")
    for mode in MODES:
        median = np.median(np.concatenate(samples[mode]))
        per_round = [np.median(s) / np.median(o) for s, o in zip(samples[mode], samples["off"])]
        print(f"{mode:<14} {median / 1e6:>10.3f} {median / off:>8.4f} "
              f"{min(per_round):>12.4f} .. {max(per_round):<11.4f} {np.median(outside[mode]) / 1e6:>22.3f}")


if __name__ == "__main__":
    main()
