"""Faults around the measurement: result writes, the study file, the configuration fingerprint.

The builder child, the IR cache checksum and interrupts are in test_builder.py and
test_interrupts.py. A full disk is simulated with /dev/full or a failing os.write (mounting a
tiny tmpfs needs rights the test machines lack)."""

import errno
import json
import os
import stat
import sys
from pathlib import Path

import pytest

from fff.errors import UsageError
from fff.safe_write import check_writable, default_mode, write_text
from fff.study.config import StudyConfig
from fff.study.store import ResultsFile, ResultsWriteError, read_rows
from fff.study.sweep import run_study

fakes = sys.modules["study_fakes"]  # loaded by conftest.py
TINY = "plain:depth=1,width=0.25,resolution=32"


# --- paths checked by trying ------------------------------------------------------------------------

def test_paths_are_checked_by_writing_not_by_asking(tmp_path):
    unwritable = "/proc/fff-results.json"  # no file can be created under /proc, not even by root
    if os.geteuid() == 0:
        assert os.access("/proc", os.W_OK)  # why os.access is no check: it says yes to root
    with pytest.raises(UsageError, match=r"cannot write /proc/fff-results.json"):
        check_writable(unwritable)
    with pytest.raises(UsageError, match="does not exist"):
        check_writable(tmp_path / "missing" / "r.json")
    with pytest.raises(UsageError, match="is a directory"):
        check_writable(tmp_path)
    assert check_writable(tmp_path / "r.json") == tmp_path / "r.json"
    assert list(tmp_path.iterdir()) == []  # the probe is gone


def run_profile_cli(argv, capsys):
    from fff.cli.profile import main

    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_an_unwritable_output_fails_at_once_with_exit_code_2(capsys):
    code, _, err = run_profile_cli([TINY, "--json", "/proc/fff-results.json"], capsys)
    assert code == 2 and err.count("\n") == 1 and "cannot write /proc/fff-results.json" in err


def test_json_and_csv_to_one_file_is_a_usage_error(tmp_path, capsys, monkeypatch):
    measured = []
    monkeypatch.setattr("fff.profiling.profile_records", lambda *a, **k: measured.append(1))
    same = tmp_path / "r.out"
    code, _, err = run_profile_cli([TINY, "--json", same, "--csv", tmp_path / "." / "r.out"], capsys)
    assert code == 2 and measured == [] and not same.exists()
    assert err.strip() == f"fff-profile: error: --json and --csv name the same file {tmp_path / '.' / 'r.out'}; " \
                          f"give each its own path"


def _fake_profile_records(targets, options, *, progress, on_target):
    """Two targets measured (fake records), each handed to on_target as the real profiler does."""
    records = []
    for target in targets:
        records += fakes.fake_measure(target, options)
        on_target(records)
    return records


def test_a_write_that_fails_after_measuring_saves_to_a_named_fallback(tmp_path, capsys, monkeypatch):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system to stand in for a full disk")
    monkeypatch.setattr("fff.profiling.profile_records", _fake_profile_records)
    monkeypatch.chdir(tmp_path)
    targets = ["plain:depth=1,width=1", "plain:depth=2,width=1"]
    code, out, err = run_profile_cli([*targets, "--json", "/dev/full", "--csv", tmp_path / "r.csv"], capsys)
    assert code == 3
    assert "plain:depth=2,width=1" in out  # the table is printed anyway
    [line] = [line for line in err.splitlines() if "could not write" in line]
    fallback = Path(line.split("saved to ")[1].split(" instead")[0])
    assert line.startswith("fff-profile: could not write --json /dev/full (No space left on device)")
    assert fallback.parent == tmp_path and fallback.name.startswith("fff-profile-unsaved-")
    saved = json.loads(fallback.read_text())
    assert [(r["target"], r["backend"]) for r in saved] == [(t, b) for t in targets for b in ("torch", "openvino")]
    assert (tmp_path / "r.csv").read_text().count("\n") == 5  # the CSV, on a good disk, was written normally
    assert "Traceback" not in err


def test_the_fallback_goes_to_the_temp_dir_when_the_current_directory_fails_too(tmp_path, capsys, monkeypatch):
    import fff.safe_write

    monkeypatch.setattr("fff.profiling.profile_records", _fake_profile_records)
    monkeypatch.chdir(tmp_path)
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(fff.safe_write.tempfile, "tempdir", str(temp))
    real_write = fff.safe_write.write_text

    def full_except_temp(path, text):  # the disk of the output and of the cwd is full
        if Path(path).parent != temp:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write(path, text)

    monkeypatch.setattr("fff.cli.results_output.write_text", full_except_temp)
    monkeypatch.setattr(fff.safe_write, "write_text", full_except_temp)
    code, out, err = run_profile_cli(["plain:depth=1,width=1", "--csv", tmp_path / "r.csv"], capsys)
    assert code == 3 and "plain:depth=1,width=1" in out
    [saved] = list(temp.iterdir())
    assert saved.suffix == ".csv" and str(saved) in err and saved.read_text().count("\n") == 3


def test_files_follow_the_umask_and_keep_an_existing_files_mode(tmp_path):
    old = os.umask(0o027)
    try:
        assert default_mode() == 0o640
        write_text(tmp_path / "new.json", "{}")
        assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == 0o640
        (tmp_path / "kept.json").write_text("old")
        os.chmod(tmp_path / "kept.json", 0o604)
        write_text(tmp_path / "kept.json", "new")
        assert stat.S_IMODE((tmp_path / "kept.json").stat().st_mode) == 0o604
        assert (tmp_path / "kept.json").read_text() == "new"
    finally:
        os.umask(old)


# --- study appends: whole or absent -----------------------------------------------------------------

def small_study(**overrides) -> StudyConfig:
    fields = dict(name="small", patterns=("plain",), depths=(1, 2, 3), widths=(1.0,), max_seconds=1.0)
    return StudyConfig(**{**fields, **overrides})


def _fail_appends_to(monkeypatch, path: Path, *, after_rows: int, how: str):
    """os.write to ``path`` succeeds for ``after_rows`` rows, then writes part of the next row and
    fails (``how="enospc"``), or writes nothing (``how="zero"``)."""
    import fff.study.store as store

    real_write, calls = os.write, []

    def write(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}") != str(path):
            return real_write(fd, data)
        calls.append(len(data))
        if len(calls) <= after_rows:
            return real_write(fd, data)
        if how == "zero":
            return 0
        if len(calls) == after_rows + 1:
            return real_write(fd, bytes(data)[: len(data) // 2])  # a short write: half the row
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(store.os, "write", write)


@pytest.mark.parametrize("how", ["enospc", "zero"])
def test_a_failed_append_leaves_no_torn_line_and_saves_the_finished_row(tmp_path, monkeypatch, how):
    out = tmp_path / "results.jsonl"
    monkeypatch.chdir(tmp_path)
    _fail_appends_to(monkeypatch, out, after_rows=3, how=how)  # started, ok, started; then the 2nd ok row fails
    with pytest.raises(ResultsWriteError) as failure:
        run_study(small_study(), out, measure=fakes.fake_measure)
    message = str(failure.value)
    assert message.startswith(f"cannot append to {out} (No space left on device); nothing partial was left in it")
    assert message.endswith("continue the study with --resume")
    assert out.read_bytes().endswith(b"\n")
    assert read_rows(out).notes == []  # no torn line
    assert [row["status"] for row in read_rows(out).rows] == ["started", "ok", "started"]
    fallback = failure.value.fallback
    assert fallback is not None and fallback.parent == tmp_path and str(fallback) in message
    [saved] = read_rows(fallback).rows
    assert saved["status"] == "ok" and saved["cell"]["depth"] == 2

    monkeypatch.undo()  # the disk has room again: resume finishes the study
    run_study(small_study(), out, resume=True, measure=fakes.fake_measure)
    done = [row["cell"]["depth"] for row in read_rows(out).rows if row["status"] == "ok"]
    assert sorted(done) == [1, 2, 3]


def test_an_append_that_reads_back_differently_is_undone(tmp_path, monkeypatch):
    import fff.study.store as store

    out = tmp_path / "results.jsonl"
    ResultsFile(out).append({"schema": "fff.study/1", "status": "started", "key": "a"})
    before = out.read_bytes()
    monkeypatch.setattr(store.os, "pread", lambda fd, n, offset: b"x" * n)
    with pytest.raises(ResultsWriteError, match="read back differs"):
        ResultsFile(out).append({"schema": "fff.study/1", "status": "started", "key": "b"})
    assert out.read_bytes() == before


def test_fff_study_says_where_a_row_went_and_exits_3_when_appending_fails(tmp_path, capsys, monkeypatch):
    from fff.cli.study import main

    def fails(*args, **kwargs):
        raise ResultsWriteError(tmp_path / "r.jsonl", "No space left on device", tmp_path / "saved.jsonl")

    monkeypatch.setattr("fff.study.sweep.run_study", fails)
    assert main(["--patterns", "plain", "--out", str(tmp_path / "r.jsonl")]) == 3
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"fff-study: error: cannot append to {tmp_path / 'r.jsonl'} (No space left on device)")
    assert f"saved to {tmp_path / 'saved.jsonl'}" in line and line.endswith("--resume")


def test_an_unwritable_study_file_is_refused_before_anything_is_measured(capsys):
    from fff.cli.study import main

    code = main(["--patterns", "plain", "--depths", "1", "--out", "/proc/fff-study.jsonl"])
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == "fff-study: error: cannot write /proc/fff-study.jsonl: No such file or directory"


# --- a results file knows its study -----------------------------------------------------------------

def test_resume_under_another_configuration_says_what_differs_unless_extending(tmp_path):
    out = tmp_path / "results.jsonl"
    run_study(small_study(depths=(1,)), out, measure=fakes.fake_measure)
    rows = read_rows(out).rows
    assert all(row["config"]["counters"] == [] and len(row["config_fingerprint"]) == 12 for row in rows)

    other = small_study(depths=(1, 2), counters=("task-clock",), max_seconds=2.0)
    with pytest.raises(UsageError) as refused:
        run_study(other, out, resume=True, measure=fakes.fake_measure)
    assert 'counters: [] in the file, ["task-clock"] now; max_seconds: 1.0 in the file, 2.0 now' in str(refused.value)
    assert "--extend" in str(refused.value)
    assert len(read_rows(out).rows) == len(rows)  # nothing was appended

    run_study(small_study(depths=(1, 2)), out, resume=True, measure=fakes.fake_measure)  # more cells, same settings
    run_study(other, out, resume=True, extend=True, measure=fakes.fake_measure)
    assert len({row["config_fingerprint"] for row in read_rows(out).rows}) == 2


def test_resume_after_the_calibration_images_changed_is_refused_not_mixed(tmp_path):
    import numpy as np
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    for i in range(2):
        Image.fromarray(np.full((20, 20, 3), 40 * i, np.uint8)).save(images / f"image{i}.png")
    out = tmp_path / "results.jsonl"
    study = small_study(depths=(1,), precisions=("int8",), calibration=str(images))
    run_study(study, out, measure=fakes.fake_measure)
    rows = read_rows(out).rows
    assert len(rows[-1]["config"]["calibration_images"]) == 16
    run_study(study, out, resume=True, measure=fakes.fake_measure)  # the same images: resumes
    rows = read_rows(out).rows
    Image.fromarray(np.full((20, 20, 3), 200, np.uint8)).save(images / "image1.png")
    for extend in (False, True):  # --extend would keep the old int8 cells as measured: refused too
        with pytest.raises(UsageError, match=r"int8 cells were calibrated on other images than --calibration gives "
                                             r"now \(calibration_images: \"[0-9a-f]{16}\" in the file, "
                                             r"\"[0-9a-f]{16}\" now\); choose a new --out"):
            run_study(study, out, resume=True, extend=extend, measure=fakes.fake_measure)
    assert len(read_rows(out).rows) == len(rows)  # nothing was appended


def test_the_report_keeps_cells_of_different_configurations_apart(tmp_path):
    from fff.analysis import load_results, speedup_by_pattern

    out = tmp_path / "results.jsonl"
    run_study(small_study(depths=(1, 2)), out, measure=fakes.fake_measure)
    run_study(small_study(depths=(1, 2), counters=("task-clock",)), out, resume=True, extend=True,
              measure=fakes.fake_measure)
    loaded = load_results(out)
    assert len(loaded.machines) == 2  # one group per configuration, each labelled
    assert sorted(entry["config_label"][:7] for entry in loaded.machines.values()) == ["config ", "config "]
    table = speedup_by_pattern(loaded.records)
    assert list(table["cells"]) == [2, 2]  # never one row of 4 cells pooled
    [note] = [n for n in loaded.notes if "configurations" in n]
    assert note.startswith("results come from 2 study configurations (counters: [] in config ")
    assert not any("machines" in n for n in loaded.notes)  # still one machine


def test_cli_extend_needs_resume(capsys):
    from fff.cli.study import main

    assert main(["--patterns", "plain", "--out", "x.jsonl", "--extend"]) == 2
    assert "--extend continues an existing study: add --resume" in capsys.readouterr().err


# --- the same on real file systems, where this machine lets a test mount them -------------------------

@pytest.fixture
def mount_tmpfs(tmp_path):
    """mount(tmpfs options) -> a fresh mount point; skipped where mounting is not allowed."""
    import subprocess

    mounted = []

    def mount(options: str) -> Path:
        point = tmp_path / f"mnt{len(mounted)}"
        point.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True,
                                text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN): {result.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", str(point)], check=True)


def test_a_read_only_mount_is_refused_before_measuring(mount_tmpfs, capsys):
    read_only = mount_tmpfs("size=64k,ro")
    with pytest.raises(UsageError, match="Read-only file system"):
        check_writable(read_only / "r.json")
    with pytest.raises(UsageError, match="Read-only file system"):
        run_study(small_study(), read_only / "r.jsonl", measure=fakes.fake_measure)


def test_a_full_disk_stops_the_study_with_whole_rows_only(mount_tmpfs, tmp_path, monkeypatch):
    disk = mount_tmpfs("size=64k")
    # two pages left: one for the study's lock file beside the results (it holds the owner's pid),
    # one for a row or two of results, not three cells
    (disk / "filler").write_bytes(bytes(56 * 1024))
    out = disk / "results.jsonl"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ResultsWriteError, match="No space left on device") as failure:
        run_study(small_study(), out, measure=fakes.fake_measure)
    assert out.read_bytes().endswith(b"\n") and read_rows(out).notes == []  # whole rows only
    statuses = [row["status"] for row in read_rows(out).rows]
    assert 1 <= len(statuses) < 6 and statuses == ["started", "ok", "started", "ok", "started"][:len(statuses)]
    if statuses[-1] == "started":  # the failing row was a finished cell's: it went to the fallback
        assert read_rows(failure.value.fallback).rows[0]["status"] == "ok"
    else:
        assert failure.value.fallback is None  # a "started" row failed: nothing measured was lost
