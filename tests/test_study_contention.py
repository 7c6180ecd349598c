"""fff-study on a busy machine: contended cells measured once more at the end, one study per results file."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import fff
from fff.errors import UsageError
from fff.study.config import StudyConfig
from fff.study.lock import lock_path, study_lock
from fff.study.store import read_rows
from fff.study.sweep import run_study

fakes = sys.modules["study_fakes"]  # loaded by conftest.py
# The directory holding the fff under test (site-packages when installed, the checkout in a dev
# build): children given it on PYTHONPATH import the same fff, never a checkout without _native.
ROOT = Path(fff.__file__).resolve().parents[1]

STUDY = StudyConfig(name="busy", patterns=("plain", "dw-bottleneck"), depths=(1, 2), widths=(1.0,), max_seconds=1.0)


def contended_measure(calls):
    """The fake profiler, but plain:depth=1 comes back contended the first time and dw-bottleneck:depth=2
    every time."""
    def measure(target, options, progress=lambda _: None):
        calls.append(target)
        records = fakes.fake_measure(target, options, progress)
        first_plain = target.startswith("plain:depth=1") and calls.count(target) == 1
        if first_plain or target.startswith("dw-bottleneck:depth=2"):
            records[1] = {**records[1], "verdict": "contended", "verdict_reason": "0 clean round(s) of the 3 needed"}
        return records
    return measure


def test_contended_cells_are_measured_once_more_at_the_end_and_the_newer_row_wins(tmp_path, capsys):
    from fff.analysis import load_results

    out, calls = tmp_path / "r.jsonl", []
    summary = run_study(STUDY, out, measure=contended_measure(calls))
    plain1, plain2, dw1, dw2 = [cell.target for cell in STUDY.cells()]
    assert calls == [plain1, plain2, dw1, dw2, plain1, dw2]  # the contended ones once more, at the end
    assert (summary.measured, summary.remeasured, summary.still_contended) == (4, 2, 1)
    assert "2 contended cell(s) measured again, 1 still contended" in summary.describe()
    verdicts = load_results([out]).records.query("backend == 'openvino'").set_index("target")["verdict"]
    assert verdicts.to_dict() == {plain1: "ok", plain2: "ok", dw1: "ok", dw2: "contended"}
    progress = capsys.readouterr().err
    assert "openvino 2.00x contended" in progress and "will be measured again at the end" in progress


def test_a_second_study_on_the_same_results_file_is_refused(tmp_path):
    out = tmp_path / "r.jsonl"
    with study_lock(out):  # a study in progress
        with pytest.raises(UsageError, match=r"another fff-study \(pid \d+\) is measuring into .*r\.jsonl"):
            run_study(STUDY, out, measure=fakes.fake_measure)
        with pytest.raises(UsageError, match="another fff-study"):
            run_study(STUDY, out, measure=fakes.fake_measure, resume=True, shard=(1, 2))
    assert not out.exists() or not [r for r in read_rows(out).rows if r["status"] != "started"]
    run_study(STUDY, out, measure=fakes.fake_measure)  # the lock goes with the process that held it
    assert lock_path(out).exists() and lock_path(out).parent == out.parent


def test_the_cli_refuses_a_concurrent_study_with_one_line_and_exit_code_2(tmp_path):
    out = tmp_path / "r.jsonl"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from fff.study.lock import study_lock
        with study_lock({str(out)!r}):
            print("locked", flush=True)
            time.sleep(120)
        """)], stdout=subprocess.PIPE, text=True, cwd=tmp_path, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = subprocess.run([sys.executable, "-m", "fff.cli.study", "--patterns", "plain", "--depths", "1",
                                 "--widths", "0.25", "--resolutions", "32", "--out", str(out)],
                                capture_output=True, text=True, cwd=tmp_path, timeout=300,
                                env={"PYTHONPATH": str(ROOT), "PATH": ""})
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fff-study: error: another fff-study") and str(out) in lines[0]
