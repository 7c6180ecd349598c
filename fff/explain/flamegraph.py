"""Where the native baseline's time goes: py-spy samples of the PyTorch worker.

The share of samples whose innermost frame is Python code is the framework overhead that a
hardware-specific runtime removes by running a compiled graph; the rest is native kernels
(and the parallel runtime's waits). Sampling happens after the timed rounds, so it never
touches a measured number. Native frames need py-spy to pause the process at each sample,
which is harmless here for the same reason.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from fff.errors import FffError, UsageError

__all__ = ["record_baseline", "python_share", "FORMATS", "check_output_path"]

# What py-spy writes, by the file's suffix: anything else is refused before measuring.
FORMATS = {".svg": "an SVG flame graph", ".json": "a speedscope profile"}


def check_output_path(path) -> None:
    """A UsageError for a path whose suffix names a format py-spy cannot write (f.png)."""
    if Path(path).suffix.lower() not in FORMATS:
        raise UsageError(f"flame graph {path}: py-spy writes "
                         + " or ".join(f"{suffix} ({what})" for suffix, what in FORMATS.items())
                         + "; name the file with one of those suffixes")

RATE_HZ = 100  # modest: keeps the pauses of native unwinding from dominating the run


def _py_spy() -> str:
    beside_python = Path(sys.executable).parent / "py-spy"
    found = str(beside_python) if beside_python.exists() else shutil.which("py-spy")
    if not found:
        raise FffError("py-spy is not installed (pip install py-spy); it records the flame graph")
    return found


def python_share(speedscope: dict) -> dict:
    """Classify each sample by its innermost frame: Python source, or native code by library.
    Shares are weighted as py-spy weights them (seconds in speedscope files)."""
    frames = speedscope["shared"]["frames"]
    by_library: Counter = Counter()
    python = total = 0.0
    stacks = 0
    for profile in speedscope["profiles"]:
        weights = profile.get("weights") or [1] * len(profile["samples"])
        for stack, weight in zip(profile["samples"], weights):
            if not stack:
                continue
            leaf_file = frames[stack[-1]].get("file") or ""
            stacks += 1
            total += weight
            if leaf_file.endswith(".py"):
                python += weight
            else:
                by_library[os.path.basename(leaf_file) or "unknown"] += weight
    if total == 0:
        return {"samples": 0, "python_share": None, "native_share": None, "native_by_library": {}}
    return {
        "samples": stacks,
        "python_share": python / total,
        "native_share": 1 - python / total,
        "native_by_library": {lib: n / total for lib, n in by_library.most_common(8)},
    }


def _record(pid: int, fmt: str, out: Path, work, native: bool) -> None:
    command = [_py_spy(), "record", "--pid", str(pid), "--rate", str(RATE_HZ), "--format", fmt, "-o", str(out)]
    command += ["--native"] if native else ["--nonblocking"]
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)  # let py-spy attach before the work starts
    if spy.poll() is not None:
        message = spy.stderr.read().strip().splitlines()
        reason = message[-1] if message else f"exit code {spy.returncode}"
        hint = " (ptrace is not permitted here: run as root, grant CAP_SYS_PTRACE, or set " \
               "kernel.yama.ptrace_scope=0)" if "ermission" in reason or "ptrace" in reason.lower() else ""
        raise FffError(f"py-spy could not attach to the PyTorch worker: {reason}{hint}")
    try:
        work()
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file when interrupted
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()
    if not out.exists():
        raise FffError(f"py-spy wrote no profile: {spy.stderr.read().strip()[-300:]}")


def retitle(svg: Path, title: str) -> None:
    """Give py-spy's flame graph a title for people: py-spy titles it with its own command line
    (a PID and a temporary path) and has no option to change it."""
    text = svg.read_text()
    retitled = re.sub(r'(<text id="title"[^>]*>)[^<]*(</text>)', lambda m: m[1] + html.escape(title) + m[2], text,
                      count=1)
    svg.write_text(retitled)


def record_baseline(worker, path: str | os.PathLike, iterations: int, *, native: bool = True,
                    title: str = "") -> dict:
    """Sample ``iterations`` inferences of the PyTorch worker; write ``path`` (.svg flame graph
    titled ``title``, otherwise speedscope JSON) and return the Python-versus-native split."""
    path = Path(path)
    run = lambda: worker.call("round", iterations=iterations)  # noqa: E731 - a thunk for _record
    with tempfile.TemporaryDirectory() as tmp:
        speedscope = Path(tmp) / "profile.speedscope.json"
        _record(worker.pid, "speedscope", speedscope, run, native)
        share = python_share(json.loads(speedscope.read_text()))
        if path.suffix.lower() == ".svg":  # py-spy renders one format per recording: record again for the picture
            _record(worker.pid, "flamegraph", path, run, native)
            if title:
                retitle(path, title)
        else:
            shutil.copyfile(speedscope, path)
    return {"path": str(path), "native_frames": native, "rate_hz": RATE_HZ, **share}
