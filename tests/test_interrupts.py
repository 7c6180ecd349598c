"""Ctrl-C, SIGTERM and a killed parent while workers run: no traceback, one line saying what was kept."""

import json
import os
import signal
import subprocess
import sys
import time

from pathlib import Path

import pytest

import fff

pytestmark = pytest.mark.slow  # minutes on 2 cores: left out of the quick tier (pytest -m 'not slow')

# The directory holding the fff under test (site-packages when installed, the checkout in a dev
# build): children given it on PYTHONPATH import the same fff, never a checkout without _native.
ROOT = Path(fff.__file__).resolve().parents[1]
TINY = "plain:depth=1,width=0.25,resolution=32"
OTHER = "plain:depth=1,width=0.5,resolution=32"
LONG = ["--threads", "1", "--max-time", "120", "--min-rounds", "1", "--target-ci", "0.0001"]


def start_profile(args, cwd):
    """fff-profile in a process group of its own, as a terminal's foreground job is."""
    # SIGINT as a terminal gives it: a test run started in the background by a non-interactive shell
    # inherits SIGINT ignored, and Python then leaves it ignored in every child (a CI run launched with
    # `&` failed the Ctrl-C test that way, with the profile never interrupted).
    return subprocess.Popen([sys.executable, "-m", "fff.cli.profile", *map(str, args)], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
                            start_new_session=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for_line(process, needle: str, timeout: float = 300) -> list[str]:
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return seen
    try:
        os.killpg(process.pid, signal.SIGKILL)  # the whole group: no worker left behind a failed test
    except ProcessLookupError:
        pass
    process.communicate()  # and its pipes closed
    pytest.fail(f"never saw {needle!r}; stderr so far:\n{''.join(seen)}")


def group_ends(pgid: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_to_the_group_ends_everything_quietly(tmp_path, stop):
    out = tmp_path / "r.json"
    process = start_profile([TINY, OTHER, *LONG[:2], "--max-time", "1", "--json", out], tmp_path)
    seen = wait_for_line(process, f"{OTHER}: round 1")  # the first target is done and saved
    os.killpg(process.pid, stop)  # what Ctrl-C in a terminal, or a scheduler's time limit, does
    rest_out, rest_err = process.communicate(timeout=120)
    err = "".join(seen) + rest_err
    assert process.returncode == 130
    assert "Traceback" not in err and "KeyboardInterrupt" not in err and "BrokenPipe" not in err
    assert err.strip().splitlines()[-1] == (f"fff-profile: interrupted; 1 of 2 targets finished, their records are in "
                                            f"{out}; to measure the rest, run again with: {OTHER}")
    assert [r["target"] for r in json.loads(out.read_text())] == [TINY, TINY]
    assert group_ends(process.pid), "a worker outlived fff-profile"


def test_workers_of_a_killed_parent_leave_without_a_traceback(tmp_path):
    process = start_profile([TINY, *LONG], tmp_path)
    seen = wait_for_line(process, "round 1")
    process.kill()  # the parent alone, as the out-of-memory killer would
    process.wait()
    _, rest_err = process.communicate(timeout=120)  # EOF only once every worker has closed stderr
    err = "".join(seen) + rest_err
    assert "Traceback" not in err and "BrokenPipe" not in err
    assert group_ends(process.pid)
