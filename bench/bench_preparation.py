"""Preparation seconds per stack, first run and cached, as the records' ``phases`` give them.

    python bench/bench_preparation.py [TARGET ...]   (default: mobilenet_v2 dw-bottleneck:depth=1,width=0.5)

Each target is profiled twice through fff's own pipeline (builder child, workers) with
torch, openvino, onnxruntime and torch-compile at f32, then twice with torch and openvino at
int8, against caches that start empty (FFF_CACHE_DIR and TORCHINDUCTOR_CACHE_DIR in a temporary
directory): the first run prepares afresh, the second finds what the caches kept. For each stack
it prints ``phases.prepare_s`` with ``prepared`` (fresh or cached, as the cache knows it) and the
worker's start (process, imports, the runtime loading the artifact), from the records. PyTorch
eager prepares nothing (no prepare_s). The timed rounds are kept short (1 round, 1 s): their
figures are not the point here.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

STACKS = {"f32": ("torch", "openvino", "onnxruntime", "torch-compile"), "int8": ("torch", "openvino")}


def _profile(targets, precision):
    from fff.profiling import ProfileOptions, profile_records

    options = ProfileOptions(backends=STACKS[precision], precision=precision, max_seconds=1.0, min_rounds=1,
                             warmup=1, cache_model=False, roofline=False)
    return profile_records(targets, options)


def _cell(phases: dict, name: str) -> str:
    if name not in phases:
        return "-"
    return f"{phases[name]:.2f}" + (f" {phases.get('prepared', '?')}" if name == "prepare_s" else "")


def main() -> None:
    targets = sys.argv[1:] or ["mobilenet_v2", "dw-bottleneck:depth=1,width=0.5"]
    work = tempfile.mkdtemp(prefix="fff-bench-prepare-")
    os.environ["FFF_CACHE_DIR"] = os.path.join(work, "fff")  # before the builder child and the workers start
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(work, "inductor")
    runs = {}
    for precision in STACKS:
        for run in ("first", "cached"):
            started = time.monotonic()
            runs[precision, run] = {(r["target"], r["backend"]): r["phases"] for r in _profile(targets, precision)}
            print(f"[{precision}, {run} run: {time.monotonic() - started:.0f} s]", file=sys.stderr, flush=True)
    print(f"load average before the table: {os.getloadavg()[0]:.1f} (1 min), CPUs: {os.cpu_count()}")
    print(f"{'target':<34} {'stack':<14} {'prec':<5} {'prepare, first':>16} {'prepare, again':>16} "
          f"{'start, first':>12} {'start, again':>12}")
    for precision in STACKS:
        for key in runs[precision, "first"]:
            if precision == "int8" and key[1] == "torch":
                continue  # the baseline beside int8 runs f32, measured above
            first, again = runs[precision, "first"][key], runs[precision, "cached"].get(key, {})
            print(f"{key[0]:<34} {key[1]:<14} {precision:<5} {_cell(first, 'prepare_s'):>16} "
                  f"{_cell(again, 'prepare_s'):>16} {_cell(first, 'worker_start_s'):>12} "
                  f"{_cell(again, 'worker_start_s'):>12}")


if __name__ == "__main__":
    main()
