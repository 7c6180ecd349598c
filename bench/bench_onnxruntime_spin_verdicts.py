"""Does onnxruntime's spinning pool cost the stack timed after it, in fff's own rounds? Both policies, side by side.

fff runs onnxruntime at its default wait policy, spinning on (fff.backends.ort.session). After its
round the pool spins on for a while (bench_onnxruntime_spin.py measures that tail), right when the
next stack's round starts. This script runs fff's real measurement (fff.profiling, interleaved
isolated rounds with their contention checks) on PyTorch, OpenVINO and onnxruntime, once with
onnxruntime spinning (``onnxruntime``) and once with it not (``OnnxRuntimeSpinOff`` below, a
``module:Class`` stack), alternating on, off, on, off, with a built-in study's settings.

Per run and stack it prints the median latency, the verdict, the rounds left out, the median CPU
share and, split by which stack's round came just before, the median CPU other processes took
(``others``, what the contention check charges; a round is left out when its share is under 0.85
while others took 0.25 CPUs or more) and the rounds' median latency. The spinning tail shows, if
at all, as a higher ``others`` and a slower round after onnxruntime's rounds than after the other
stacks', and as rounds left out.

Usage: python bench/bench_onnxruntime_spin_verdicts.py [--targets T ...] [--repeats 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import sys
from statistics import median

from fff.backends.ort.backend import OnnxRuntimeBackend

TARGETS = ["mobilenet_v2", "dw-bottleneck:depth=1,width=1.0,resolution=224", "plain:depth=1,width=1.0,resolution=224"]
SPIN_OFF = "bench_onnxruntime_spin_verdicts:OnnxRuntimeSpinOff"


class OnnxRuntimeSpinOff(OnnxRuntimeBackend):
    """fff's onnxruntime stack with its pool's spinning off: only the wait policy differs."""

    name = "onnxruntime-spin-off"
    label = "ONNX Runtime (spinning off)"
    spinning = False


def _after(order: list[str], name: str) -> dict[str, list[int]]:
    """For each of ``name``'s rounds (by index), the stack whose round came just before it."""
    before, index, seen = {}, 0, None
    for stack in order:
        if stack == name:
            before.setdefault(seen or "start", []).append(index)
            index += 1
        seen = stack
    return before


def _round_medians(record: dict) -> list[float] | None:
    """Each round's median latency (ms), or None where the kept samples do not split into whole rounds
    (PyTorch stops a round at the time cap; a round was left out)."""
    rounds = record["contention"]["rounds"]
    per_round = record["interleaving"]["iterations_per_round"][record["backend"]]
    samples = record["samples_ns"] or []
    if record["contention"]["rounds_dropped"] or len(samples) != per_round * len(rounds):
        return None
    return [median(samples[i * per_round:(i + 1) * per_round]) / 1e6 for i in range(len(rounds))]


def _line(record: dict, ort_name: str) -> str:
    contention = record["contention"]
    rounds = contention["rounds"]
    latencies = _round_medians(record)
    split = []
    for previous, indices in sorted(_after(record["interleaving"]["order"], record["backend"]).items()):
        others = [rounds[i]["others_cpus"] for i in indices if rounds[i]["others_cpus"] is not None]
        label = "onnxruntime" if previous == ort_name else previous.split(":")[-1]
        if others:
            split.append(f"after {label} {median(others):.3f}"
                         + (f" {median(latencies[i] for i in indices):.3f} ms" if latencies else "")
                         + f" (n={len(others)})")
    name = "onnxruntime" if record["backend"] == ort_name else record["backend"]
    return (f"    {name:12s} {record['latency_ms']['median']:8.3f} ms  {record['verdict']:9s} "
            f"left out {contention['rounds_dropped']}/{len(rounds)}  share {contention['cpu_share_median']:.3f}  "
            f"others, round median: {', '.join(split)}")


def main() -> None:
    from fff.profiling import ProfileOptions, profile_records

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", nargs="+", default=TARGETS)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the workers import OnnxRuntimeSpinOff from here
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    for target in args.targets:
        print(target)
        for _ in range(args.repeats):
            for ort_name in ("onnxruntime", SPIN_OFF):
                # the stacks study's settings (fff/study/stacks.toml), without its breakdown and cache model;
                # in this order each neighbour follows onnxruntime in half its rounds (V O T, T O V, ...)
                # and itself in the others, the control
                options = ProfileOptions(backends=("openvino", ort_name, "torch"), threads=args.threads,
                                         max_seconds=10.0, fit_cap=True, min_rounds=3, target_ci=0.02, warmup=3,
                                         keep_samples=True, cache_model=False, roofline=False)
                records = profile_records([target], options)
                print(f"  onnxruntime spinning {'on ' if ort_name == 'onnxruntime' else 'off'} "
                      f"(load average {os.getloadavg()[0]:.2f})")
                for record in records:
                    print(_line(record, ort_name))
                ort = next(r for r in records if r["backend"] == ort_name)
                spin = {k: v for k, v in ort["config"].items() if "allow_spinning" in k}
                print(f"    read back: {spin}, onnxruntime speed-up {ort['speedup']:.2f}x", flush=True)


if __name__ == "__main__":
    main()
