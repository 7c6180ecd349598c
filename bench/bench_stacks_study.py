"""A study's wall time split by stack and phase, run twice: what the second run prepares afresh.

    python bench/bench_stacks_study.py [STUDY] [fff-study filters ...] [--work DIR] [--keep-caches]
    python bench/bench_stacks_study.py --read RESULTS.jsonl [RESULTS.jsonl ...]

STUDY is a built-in study's name or a TOML file (default: ``stacks``, the built-in stacks study);
anything after it goes to fff-study as it is (``--patterns dw-bottleneck --depths 1 --zoo
mobilenet_v2`` for a small subset). The study runs twice, each time into a fresh results file
(DIR/run1.jsonl, DIR/run2.jsonl) and against the same caches, which start empty unless
``--keep-caches`` (FFF_CACHE_DIR and TORCHINDUCTOR_CACHE_DIR under DIR): the first run prepares
every artifact, the second should find them all (issue #18's target: it compiles and quantizes
nothing afresh).

For each run it prints, from the records' ``phases`` (fff.measure.phases), the seconds per stack
and phase summed over the cells, what each cell spent once for all its stacks (``target``: building
the model and counting its FLOPs, the machine's roofline), the rest of the cells' time (``other``:
closing workers, the records, messages), the simulation phase after the cells where it ran, and
the study's wall time; for the second run, how many preparations per
stack were fresh. ``--read`` prints the same split for results files already written.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from fff.measure.phases import PHASES as STACK_PHASES

PHASES = (*STACK_PHASES, "build_s", "roofline_s")  # and what a cell costs once for all its stacks (phases.target)


def split(path: Path) -> dict:
    """Seconds per stack and phase over every finished cell row (a contended cell measured again
    counts twice: it cost twice), the cells' own seconds, the simulation phase's, fresh preparations."""
    from fff.study.store import read_rows

    seconds = defaultdict(lambda: defaultdict(float))
    prepared = defaultdict(lambda: defaultdict(int))  # stack -> fresh/cached/unknown -> count
    cells = errors = 0
    cell_seconds = 0.0
    simulation_phases = {}
    for row in read_rows(path).rows:
        if row.get("status") == "simulated":  # one per cell; each carries its whole phase's seconds
            phase = row.get("phase_started")
            simulation_phases[phase] = max(simulation_phases.get(phase, 0.0), row.get("phase_seconds") or 0.0)
            continue
        if row.get("status") not in ("ok", "error"):
            continue
        cells += 1
        errors += row["status"] == "error"
        cell_seconds += row.get("seconds") or 0.0
        shared = next((r["phases"]["target"] for r in row.get("records") or () if (r.get("phases") or {}).get("target")),
                      {})
        for name, value in shared.items():  # once per cell: the same in each of its records
            seconds["target (once per cell)"][name] += value
        for record in row.get("records") or ():
            phases = record.get("phases") or {}
            for name in PHASES:
                if name in phases:
                    seconds[record["backend"]][name] += phases[name]
            if "prepare_s" in phases:
                prepared[record["backend"]][phases.get("prepared", "unknown")] += 1
    simulation = sum(simulation_phases.values())
    return {"seconds": seconds, "prepared": prepared, "cells": cells, "errors": errors,
            "cell_seconds": cell_seconds, "simulation_seconds": simulation}


def table(result: dict, wall: float | None) -> str:
    seconds = result["seconds"]
    used = [p for p in PHASES if any(p in by_phase for by_phase in seconds.values())]
    width = max([len("other (records, closing, messages)"), *map(len, seconds)]) + 2
    lines = [f"{'stack':<{width}}" + "".join(f"{p[:-2]:>13}" for p in used) + f"{'total':>10}"]
    in_phases = 0.0
    for stack, by_phase in seconds.items():
        total = sum(by_phase.values())
        in_phases += total
        lines.append(f"{stack:<{width}}" + "".join(f"{by_phase[p]:>13.1f}" if p in by_phase else f"{'-':>13}"
                                                   for p in used) + f"{total:>10.1f}")
    lines.append(f"{'other (records, closing, messages)':<{width}}{'':>{13 * len(used)}}"
                 f"{result['cell_seconds'] - in_phases:>10.1f}")
    if result["simulation_seconds"]:
        lines.append(f"{'simulation phase (after the cells)':<{width}}{'':>{13 * len(used)}}"
                     f"{result['simulation_seconds']:>10.1f}")
    lines.append(f"{result['cells']} cell rows ({result['errors']} errors), cells {result['cell_seconds']:.1f} s"
                 + (f", study wall time {wall:.1f} s" if wall is not None else ""))
    lines.append("preparations: " + "; ".join(
        f"{stack} " + ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
        for stack, counts in result["prepared"].items()))
    return "\n".join(lines)


def run_twice(study: str, extra: list[str], work: Path, keep_caches: bool) -> None:
    env = dict(os.environ)
    if not keep_caches:
        env["FFF_CACHE_DIR"] = str(work / "fff-cache")
        env["TORCHINDUCTOR_CACHE_DIR"] = str(work / "inductor-cache")
    print(f"work directory {work}; caches: {'as they are' if keep_caches else 'empty at the start'}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the start", flush=True)
    for run in (1, 2):
        out = work / f"run{run}.jsonl"
        command = ["fff-study", study, *extra, "--out", str(out), "--quiet"]
        started = time.monotonic()
        finished = subprocess.run(command, env=env)
        wall = time.monotonic() - started
        if finished.returncode not in (0, 1):
            sys.exit(f"{' '.join(command)} exited with {finished.returncode}")
        print(f"\nrun {run} ({' '.join(command)}), load average {os.getloadavg()[0]:.1f} after it:")
        result = split(out)
        print(table(result, wall))
        if run == 2:
            print("second run, fresh preparations per stack (target: none): " + ", ".join(
                f"{stack} {counts.get('fresh', 0)}" + (f" ({counts['unknown']} not known: the stack's cache does not "
                                                       f"say)" if counts.get("unknown") else "")
                for stack, counts in result["prepared"].items()))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--read", nargs="+", type=Path, help="results files to split, without running anything")
    parser.add_argument("--work", type=Path, help="where the results and caches go (default: a new temporary directory)")
    parser.add_argument("--keep-caches", action="store_true", help="use the caches as they are (FFF_CACHE_DIR, ...)")
    args, rest = parser.parse_known_args(argv)
    if args.read:
        for path in args.read:
            print(f"{path}:\n{table(split(path), None)}")
        return
    study, extra = (rest[0], rest[1:]) if rest and not rest[0].startswith("-") else ("stacks", rest)
    work = args.work or Path(tempfile.mkdtemp(prefix="fff-bench-stacks-"))
    work.mkdir(parents=True, exist_ok=True)
    run_twice(study, extra, work, args.keep_caches)


if __name__ == "__main__":
    main()
