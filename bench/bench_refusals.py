"""How long a typo costs: the wall time from typing fff-profile/fff-study with a bad input to its
one-line refusal (exit code 2), each run as a fresh process, as a user would.

Cases: unknown zoo name, misspelled pattern, bad pattern parameter, missing model file, missing
module of a module:function, flags (--threads past the affinity mask, --batch 0, a counter), a --flamegraph
format py-spy cannot write, the same typos to fff-study, and resuming into a file that is not a
study. The device check, which needs OpenVINO's device list (openvino is imported), is shown
apart. Target: every refusal under 1 s on a 2-core machine.

The cases run side by side: every round runs each case once, in an order rotated by one each
round, so that a change in the machine's load falls on all of them alike. One untimed pass first
caches the bytecode (as an installed fff has it) and warms the page cache. Each refusal is checked
(exit code 2, one line naming the problem), so a case that started measuring is reported, not timed.
``--before REF`` also runs every case against fff as of git commit REF (the tree extracted to a temp
directory, with this checkout's compiled fff/_native), in the same rounds.

Usage: python bench/bench_refusals.py [--rounds 7] [--before REF]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = "plain:depth=1,width=0.25,resolution=32"

# (label, command, arguments, what the one line must name)
CASES = [
    ("unknown zoo name", "profile", ["resnt50"], "resnt50"),
    ("misspelled pattern", "profile", ["dw-botleneck:depth=2"], "dw-botleneck"),
    ("pattern parameter", "profile", ["residual:depth=0"], "depth"),
    ("missing .onnx file", "profile", ["missing.onnx"], "missing.onnx"),
    ("missing module:function", "profile", ["no_such_module:make"], "no_such_module"),
    ("--threads 1000", "profile", [TINY, "--threads", "1000"], "1000"),
    ("--batch 0", "profile", [TINY, "--batch", "0"], "--batch"),
    ("--counters llc-mises", "profile", [TINY, "--counters", "llc-mises"], "llc-mises"),
    ("--flamegraph f.png", "profile", [TINY, "--flamegraph", "f.png"], "f.png"),
    ("study: unknown zoo name", "study", ["--zoo", "resnt50", "--out", "r.jsonl"], "resnt50"),
    ("study: pattern resolution", "study", ["--patterns", "plain", "--resolutions", "8", "--out", "r.jsonl"], "8"),
    ("study: resume a file not a study", "study", ["--patterns", "plain", "--resume", "--out", "notes.jsonl"],
     "notes.jsonl"),
    ("device GPU (imports openvino)", "profile", [TINY, "--device", "GPU"], "GPU"),
]


# Not refused before issue 19 at all (they measured, or appended to the user's file): not run against --before.
MEASURED_BEFORE = {"--threads 1000", "--flamegraph f.png", "study: resume a file not a study"}


def _command(prog: str) -> list[str]:
    return [sys.executable, "-m", f"fff.cli.{prog}"]


def _run_once(case, fff_root: Path, cwd: Path, pycache: Path) -> tuple[float, str | None]:
    """(seconds, None) for a proper refusal; (seconds, what was wrong) otherwise."""
    label, prog, args, names = case
    # Bytecode cached, as an installed fff has it (this environment sets PYTHONDONTWRITEBYTECODE,
    # which would compile every module of fff from source in every run).
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
           "PYTHONPATH": str(fff_root), "PYTHONPYCACHEPREFIX": str(pycache / fff_root.name)}
    started = time.perf_counter()
    done = subprocess.run([*_command(prog), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - started
    lines = done.stderr.strip().splitlines()
    errors = [line for line in lines if ": error: " in line]
    if done.returncode != 2 or len(errors) != 1 or names not in errors[0]:
        return seconds, f"exit {done.returncode}, {len(lines)} line(s): {(errors or lines or [''])[-1][:100]}"
    return seconds, None


def _tree_at(ref: str, into: Path) -> Path:
    """fff as of ``ref``, with this checkout's compiled extension (the C++ is not what is timed)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "fff"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    for native in (ROOT / "fff").glob("_native*.so"):
        shutil.copy2(native, into / "fff" / native.name)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--before", metavar="REF", help="also time fff as of this git commit, in the same rounds")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="fff-bench-refusals-") as tmp:
        tmp = Path(tmp)
        work = tmp / "cwd"
        work.mkdir()
        (work / "notes.jsonl").write_text('my notes\n{"model": "resnet50", "latency_ms": 3.2}\n')
        trees = {"now": ROOT}
        if args.before:
            (tmp / "before").mkdir()
            trees[f"at {args.before}"] = _tree_at(args.before, tmp / "before")
        runs = [(tree, case) for tree in trees for case in CASES if tree == "now" or case[0] not in MEASURED_BEFORE]
        seconds: dict[tuple[str, str], list[float]] = {(tree, case[0]): [] for tree, case in runs}
        problems: dict[tuple[str, str], str] = {}
        for tree, case in runs:  # untimed: writes the bytecode cache and warms the page cache
            _run_once(case, trees[tree], work, tmp / "pycache")
        load_before = os.getloadavg()[0]
        for round_ in range(args.rounds):
            shift = round_ % len(runs)
            for tree, case in runs[shift:] + runs[:shift]:  # rotated: load changes fall on every case alike
                took, problem = _run_once(case, trees[tree], work, tmp / "pycache")
                seconds[(tree, case[0])].append(took)
                if problem:
                    problems[(tree, case[0])] = problem
        load_after = os.getloadavg()[0]
        notes = sorted(p.name for p in work.iterdir())
        assert (work / "notes.jsonl").read_text().startswith("my notes\n"), "the user's file was changed"

    print(f"{args.rounds} rounds, {len(os.sched_getaffinity(0))} CPUs, load average {load_before:.1f} before, "
          f"{load_after:.1f} after; left in the working directory: {', '.join(notes)}")
    width = max(len(case[0]) for case in CASES)
    header = f"{'case':<{width}} " + " ".join(f"{tree + ' median s':>18} {'max s':>7}" for tree in trees)
    print(header + "\n" + "-" * len(header))
    for case in CASES:
        cells = []
        for tree in trees:
            times = seconds.get((tree, case[0]))
            cells.append(f"{statistics.median(times):>18.2f} {max(times):>7.2f}" if times else
                         f"{'not refused':>18} {'-':>7}")
        flags = [f"  [{tree}: {problems[(tree, case[0])]}]" for tree in trees if (tree, case[0]) in problems]
        print(f"{case[0]:<{width}} " + " ".join(cells) + "".join(flags))


if __name__ == "__main__":
    main()
