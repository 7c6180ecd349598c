"""Does fff tell a contended result from a good one? Quiet against loaded, side by side in one run.

For each target: fff-profile's measurement on the machine as it is ("quiet"), then under a load
this script starts and stops itself: busy processes on one core or on every core, busy part of
the time (a duty cycle) or all of the time. For each target and condition it prints the quiet
speed-up, the loaded speed-up, their ratio, the loaded verdict and the rounds left out.
Target: every loaded result marked ``ok`` lies within +-10% of its quiet speed-up; a loaded result
outside +-10% is marked ``contended`` or ``noisy`` (no silent bad number). A row breaking that
is marked SILENT. The quiet reference is only as quiet as the machine: its own verdict is shown,
and a quiet result that is not ``ok`` makes its row's comparison "n/a".

A second table, with --first-iteration, answers "is the first inference of a round slower?":
rounds interleaved as fff does, with no per-round warm-up, first sample / median of the rest.

Usage: python bench/bench_contention.py [--targets T ...] [--threads 2] [--seconds 6]
                                       [--conditions "1 core, all time" ...] [--first-iteration]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

from fff.measure.contention import preflight
from fff.errors import FffError
from fff.profiling import ProfileOptions, profile_records

TARGETS = ["plain:depth=2,width=0.5,resolution=112", "dw-bottleneck:depth=2,width=0.5,resolution=112",
           "inception:depth=1,width=0.5,resolution=112", "mobilenet_v2"]
CONDITIONS = {  # name: (busy processes: "one" or "every" core, fraction of each second they are busy)
    "1 core, part time": ("one", 0.5),
    "1 core, all time": ("one", 1.0),
    "every core, part time": ("every", 0.5),
    "every core, all time": ("every", 1.0),
}
TOLERANCE = 0.10

# A busy loop that computes for DUTY of every 100 ms and sleeps the rest: load that comes and goes,
# like a neighbour's build.
LOAD = """
import sys, time
duty = float(sys.argv[1])
while True:
    start = time.monotonic()
    while time.monotonic() - start < 0.1 * duty:
        pass
    if duty < 1:
        time.sleep(0.1 * (1 - duty))
"""


def start_load(cores: str, duty: float) -> list[subprocess.Popen]:
    count = 1 if cores == "one" else len(os.sched_getaffinity(0))
    return [subprocess.Popen([sys.executable, "-c", LOAD, str(duty)]) for _ in range(count)]


def stop_load(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.kill()
        process.wait()


def measure(target: str, threads: int, seconds: float) -> dict:
    options = ProfileOptions(threads=threads, max_seconds=seconds, min_rounds=3, target_ci=0.01, keep_samples=False)
    try:
        records = profile_records(target, options)
    except FffError as error:  # e.g. a cap too small for this target: shown in the table, the run goes on
        return {"speedup": float("nan"), "verdict": "error", "reason": str(error).splitlines()[0],
                "dropped": {}, "share": {}, "others": None}
    accelerated = next(r for r in records if r["speedup"] is not None)
    baseline = next(r for r in records if r["backend"] == "torch")
    return {"speedup": accelerated["speedup"], "verdict": accelerated["verdict"],
            "reason": accelerated["verdict_reason"],
            "dropped": {r["backend"]: "{rounds_dropped} of {total}".format(
                total=r["contention"]["rounds_dropped"] + r["contention"]["rounds_clean"], **r["contention"])
                        for r in records},
            "share": {r["backend"]: r["contention"]["cpu_share_median"] for r in records},
            "others": baseline["contention"]["others_cpus_median"]}


def first_iteration(targets: list[str], threads: int, rounds: int = 12) -> None:
    from fff.backends import backend_class, class_path
    from fff.backends.base import fixed_seed_input
    from fff.backends.openvino.conversion import convert
    from fff.measure.worker import Worker
    from fff.models import build

    print(f"\nfirst inference of a round / median of the rest of the round (no per-round warm-up, "
          f"{rounds} interleaved rounds of ~0.2 s, medians over rounds)")
    for target in targets:
        model = build(target)
        common = dict(target=target, build_options={"batch": None, "resolution": None, "input_shape": None},
                      artifact={"xml": str(convert(model))}, input_shape=list(model.input_shape), device="CPU",
                      threads=threads, precision="f32")
        classes = {b: backend_class(b) for b in ("torch", "openvino")}
        workers = {b: Worker(b, served=class_path(cls), env=cls.environment(threads), **common)
                   for b, cls in classes.items()}
        try:
            iterations = {}
            for name, worker in workers.items():
                worker.call("prepare", inputs=[fixed_seed_input(model.input_shape)], warmup=5)
                probe = worker.call("round", iterations=3)["samples_ns"]
                iterations[name] = int(np.clip(0.2 / (np.median(probe) / 1e9), 5, 2000))
            ratios = {name: [] for name in workers}
            for r in range(rounds):
                for name, worker in (list(workers.items()) if r % 2 == 0 else list(workers.items())[::-1]):
                    samples = worker.call("round", iterations=iterations[name])["samples_ns"]
                    ratios[name].append(samples[0] / np.median(samples[1:]))
        finally:
            for worker in workers.values():
                worker.close()
        print(f"  {target:<48} " + "  ".join(f"{name} {np.median(v):.3f} (p25 {np.percentile(v, 25):.3f}, "
                                              f"p75 {np.percentile(v, 75):.3f})" for name, v in ratios.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", nargs="+", default=TARGETS, metavar="TARGET")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=6.0, help="fff's time cap per target and condition")
    parser.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=list(CONDITIONS),
                        metavar="CONDITION", help=f"which loaded conditions (default: all of {', '.join(CONDITIONS)})")
    parser.add_argument("--first-iteration", action="store_true", help="also measure the first inference of a round")
    args = parser.parse_args()
    targets, conditions = args.targets, args.conditions

    print(f"load average at start {os.getloadavg()[0]:.2f}; pre-flight: {preflight() or 'other processes idle'}")
    rows, silent = [], 0
    for target in targets:
        quiet = measure(target, args.threads, args.seconds)
        print(f"{target} quiet: {quiet['speedup']:.2f}x {quiet['verdict']} {quiet['reason']}", file=sys.stderr)
        for condition in conditions:
            cores, duty = CONDITIONS[condition]
            load = start_load(cores, duty)
            try:
                time.sleep(0.3)
                loaded = measure(target, args.threads, args.seconds)
            finally:
                stop_load(load)
            ratio = loaded["speedup"] / quiet["speedup"]
            inside = abs(ratio - 1) <= TOLERANCE
            if "error" in (quiet["verdict"], loaded["verdict"]):
                judged = "n/a (error: " + (quiet["reason"] or loaded["reason"])[:60] + ")"
            elif quiet["verdict"] != "ok":
                judged = "n/a (quiet not ok)"
            elif loaded["verdict"] == "ok" and not inside:
                judged, silent = "SILENT", silent + 1
            else:
                judged = "fine"
            rows.append((target, condition, quiet, loaded, ratio, judged))
            print(f"  {condition}: {loaded['speedup']:.2f}x {loaded['verdict']} ({judged})", file=sys.stderr)

    print(f"\n{args.threads} threads, time cap {args.seconds:g} s per target and condition, "
          f"load average at the end {os.getloadavg()[0]:.2f}")
    header = (f"{'target':<48} {'condition':<22} {'quiet':>8} {'q.verdict':<10} {'loaded':>8} {'ratio':>6} "
              f"{'verdict':<10} {'rounds left out: torch, ov':<27} {'share torch/ov':<15} {'others':>6}  check")
    print(header)
    print("-" * len(header))
    for target, condition, quiet, loaded, ratio, judged in rows:
        share = "/".join("-" if v is None else f"{v:.2f}" for v in loaded["share"].values())
        others = "-" if loaded["others"] is None else f"{loaded['others']:.2f}"
        print(f"{target[:48]:<48} {condition:<22} {quiet['speedup']:>7.2f}x {quiet['verdict']:<10} "
              f"{loaded['speedup']:>7.2f}x {ratio:>6.3f} {loaded['verdict']:<10} "
              f"{', '.join(loaded['dropped'].values()):<27} {share:<15} {others:>6}  {judged}")
    print(f"\nloaded results marked ok but outside +-{100 * TOLERANCE:.0f}% of quiet: {silent}")
    if args.first_iteration:
        first_iteration(targets, args.threads)


if __name__ == "__main__":
    main()
