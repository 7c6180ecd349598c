"""fff-study: cells from TOML and flags, crash-safe results, resume, shards, failing cells, the CLI."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fff
from fff.errors import UsageError
from fff.study.config import StudyConfig, default_study, parse_study
from fff.study.progress import ProgressBar, format_duration
from fff.study.store import ResultsFile, read_rows
from fff.study.sweep import FINISHED, check_targets, parse_shard, row_key, run_study, select_shard

# The directory holding the fff under test (site-packages when installed, the checkout in a dev
# build): children given it on PYTHONPATH import the same fff, never a checkout without _native
# (and run with -P, so that "-c" does not put the working directory, a checkout in CI, first).
ROOT = Path(fff.__file__).resolve().parents[1]
FAKES_PATH = Path(__file__).with_name("study_fakes.py")


fakes = sys.modules["study_fakes"]  # loaded by conftest.py


def small_study(**overrides) -> StudyConfig:
    fields = dict(name="small", patterns=("plain", "dw-bottleneck"), depths=(1, 2), widths=(1.0,),
                  zoo=("darts",), max_seconds=1.0)
    return StudyConfig(**{**fields, **overrides})


def results(path) -> list[dict]:
    """The result rows of a file, without the sweep's started/interrupted bookkeeping."""
    return [row for row in read_rows(path).rows if row["status"] in FINISHED]


def run_cli(argv, capsys):
    from fff.cli.study import main

    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse usage errors
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- cells ----------------------------------------------------------------------------------------

def test_cells_cross_every_axis_and_ids_name_what_is_measured():
    config = small_study(widths=(0.5, 1.0), pattern_resolutions=(32, 64), threads=(1, 2))
    cells = config.cells()
    assert len(cells) == 2 * (2 * 2 * 2 * 2 + 1)  # threads x (patterns x depths x widths x resolutions + zoo)
    assert len({c.cell_id for c in cells}) == len(cells)
    first = cells[0]
    assert (first.target, first.resolution, first.threads) == ("plain:depth=1,width=0.5", 32, 1)
    # how long a cell is measured is not what it measures: a longer time cap keeps the identities
    assert [c.cell_id for c in small_study(max_seconds=9.0).cells()] == [c.cell_id for c in small_study().cells()]
    assert small_study(precisions=("bf16",)).cells()[0].cell_id != small_study().cells()[0].cell_id


def test_naming_only_patterns_or_only_zoo_runs_only_that_kind():
    config = small_study()
    assert {c.kind for c in config.with_overrides(patterns=["plain"]).cells()} == {"pattern"}
    assert [c.target for c in config.with_overrides(zoo=["resnet18"]).cells()] == ["resnet18"]
    deeper = config.with_overrides(depths=[3])
    assert [c.target for c in deeper.cells()] == ["plain:depth=3,width=1", "dw-bottleneck:depth=3,width=1", "darts"]


def test_study_toml_is_parsed_and_its_errors_name_the_key():
    config = parse_study("""
        [study]
        name = "mine"
        [measure]
        threads = [1, 2]
        max_seconds = 2
        counters = ["llc-misses"]
        [patterns]
        names = ["plain"]
        depths = [1, 8]
        widths = [0.25]
        resolutions = [32]
        [zoo]
        models = ["darts"]
    """, "mine.toml")
    assert (config.name, config.threads, config.max_seconds, config.depths, config.widths) == ("mine", (1, 2), 2, (1, 8), (0.25,))
    assert len(config.cells()) == 2 * (2 + 1)

    cases = {
        "[patterns]\ndepht = [1]\n": "unknown key 'patterns.depht'",
        "[patterns]\ndepths = [1, \"2\"]\n": "'patterns.depths' must be a non-empty list of whole numbers >= 1",
        "[measure]\nthreads = 2\n": "'measure.threads' must be a non-empty list of whole numbers >= 1, got 2",
        "[measure]\nsimulate_cache = \"yes\"\n": "'measure.simulate_cache' must be true or false",
        "[measure]\ntarget_ci = 5\n": "'measure.target_ci' must be a fraction between 0 and 1",
        "[sweep]\nx = 1\n": "unknown table [sweep]",
        "[patterns\n": "not valid TOML",
        "patterns = 3\n": "'patterns' must be a table",
    }
    for text, expected in cases.items():
        with pytest.raises(UsageError, match="bad.toml: ") as error:
            parse_study(text, "bad.toml")
        assert expected in str(error.value), text
        assert "\n" not in str(error.value)


def test_default_study_ships_as_package_data_and_fits_its_budget():
    config = default_study()
    cells = config.cells()
    patterns = {c.pattern for c in cells if c.kind == "pattern"}
    assert patterns == {"plain", "residual", "bottleneck", "dw-separable", "dw-bottleneck", "grouped", "inception",
                        "dense", "se-mbconv", "shuffle"}
    assert {"darts", "mobilenet_v2"} <= {c.model for c in cells if c.kind == "zoo"}
    # the cap must hold 3 rounds of 5 inferences of vgg16 per backend (~7 s here); cells that
    # converge stop early, so the whole study stays near 20 minutes on 2 cores
    assert config.precisions == ("f32",) and config.max_seconds <= 10
    assert 60 <= len(cells) <= 100


# --- shards ---------------------------------------------------------------------------------------

def test_shards_partition_the_cells_evenly_and_the_same_way_in_every_process():
    cells = default_study().cells()
    shards = [select_shard(cells, (k, 4)) for k in range(1, 5)]
    ids = [c.cell_id for shard in shards for c in shard]
    assert sorted(ids) == sorted(c.cell_id for c in cells)  # every cell in exactly one shard
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    script = ("from fff.study.config import default_study; from fff.study.sweep import select_shard;"
              "print(','.join(c.cell_id for c in select_shard(default_study().cells(), (2, 4))))")
    other_process = subprocess.run([sys.executable, "-P", "-c", script], capture_output=True, text=True, check=True,
                                   env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "123"})
    assert other_process.stdout.strip().split(",") == [c.cell_id for c in shards[1]]


def test_shard_text_is_checked():
    assert parse_shard("2/8") == (2, 8)
    for bad in ("0/4", "5/4", "2", "a/b", "1/0", "-1/2"):
        with pytest.raises(UsageError, match="--shard"):
            parse_shard(bad)


# --- results that survive faults ------------------------------------------------------------------

def test_a_study_writes_one_line_per_cell_and_resume_skips_finished_cells(tmp_path):
    out = tmp_path / "results.jsonl"
    summary = run_study(small_study(), out, measure=fakes.fake_measure)
    assert (summary.cells, summary.measured, summary.failed, summary.already_done) == (5, 5, 0, 0)
    rows = results(out)
    assert [row["status"] for row in read_rows(out).rows] == ["started", "ok"] * 5
    assert [row["status"] for row in rows] == ["ok"] * 5
    darts = next(row for row in rows if row["cell"]["target"] == "darts")
    assert [r["backend"] for r in darts["records"]] == ["torch", "openvino"]
    assert darts["records"][1]["speedup"] == 12.0
    assert darts["key"] == row_key(darts["cell_id"], summary.machine_fingerprint)

    calls = []
    more = small_study(depths=(1, 2, 3))
    summary = run_study(more, out, resume=True, measure=lambda t, o, p: calls.append(t) or fakes.fake_measure(t, o, p))
    assert calls == ["plain:depth=3,width=1", "dw-bottleneck:depth=3,width=1"]
    assert (summary.already_done, summary.measured) == (5, 2)
    assert len(results(out)) == 7


def test_an_existing_results_file_is_never_mixed_into_without_resume(tmp_path):
    out = tmp_path / "results.jsonl"
    run_study(small_study(zoo=(), patterns=("plain",), depths=(1,)), out, measure=fakes.fake_measure)
    before = out.read_bytes()
    with pytest.raises(UsageError, match="already holds results; add --resume"):
        run_study(small_study(), out, measure=fakes.fake_measure)
    assert out.read_bytes() == before


def test_failing_cells_become_error_rows_and_the_study_goes_on(tmp_path):
    out = tmp_path / "results.jsonl"
    config = small_study(patterns=("plain", "grouped", "inception"), depths=(1,), zoo=("explodes", "darts"))
    summary = run_study(config, out, measure=fakes.fake_measure)
    assert (summary.measured, summary.failed) == (2, 3)
    rows = {row["cell"]["target"]: row for row in results(out)}
    assert rows["plain:depth=1,width=1"]["status"] == rows["darts"]["status"] == "ok"
    compile_error = rows["grouped:depth=1,width=1"]
    assert compile_error["status"] == "error" and compile_error["records"] == []
    assert compile_error["error"] == {"type": "CompileError",
                                      "message": "grouped:depth=1,width=1: unsupported operation GroupedConvolution"}
    crash = rows["explodes"]["error"]
    assert (crash["type"], crash["message"]) == ("RuntimeError", "a bug deep inside a library")
    assert "fake_measure" in crash["traceback"]  # not the user's fault: where it happened is kept
    parity = rows["inception:depth=1,width=1"]
    assert parity["status"] == "error" and parity["error"]["type"] == "ParityError"
    assert "openvino max rel err 0.5" in parity["error"]["message"] and len(parity["records"]) == 2

    # error cells count as finished on resume, unless asked to retry them
    calls = []
    run_study(config, out, resume=True, measure=lambda t, o, p: calls.append(t) or fakes.fake_measure(t, o, p))
    assert calls == []
    run_study(config, out, resume=True, retry_errors=True,
              measure=lambda t, o, p: calls.append(t) or fakes.fake_measure(t, o, p))
    assert sorted(calls) == ["explodes", "grouped:depth=1,width=1", "inception:depth=1,width=1"]


def test_a_torn_last_line_is_skipped_on_read_and_closed_before_the_next_append(tmp_path):
    out = tmp_path / "results.jsonl"
    store = ResultsFile(out)
    store.append({"schema": "fff.study/1", "key": "a", "status": "ok"})
    with open(out, "a") as f:
        f.write('{"schema": "fff.study/1", "key": "b", "sta')  # what a kill during a write leaves
    outcome = read_rows(out)
    assert [row["key"] for row in outcome.rows] == ["a"]
    assert outcome.notes == [f"{out}: line 2 is incomplete (a write cut short by a kill); skipped"]
    store.append({"schema": "fff.study/1", "key": "c", "status": "ok"})
    outcome = read_rows(out)
    assert [row["key"] for row in outcome.rows] == ["a", "c"]
    assert outcome.notes == [f"{out}: line 2 is not valid JSON; skipped"]


KILLABLE_STUDY = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("study_fakes", sys.argv[2])
fakes = importlib.util.module_from_spec(spec); spec.loader.exec_module(fakes)
from fff.study.config import StudyConfig
from fff.study.sweep import run_study
config = StudyConfig(patterns=("plain", "residual", "dw-bottleneck"), depths=(1, 2, 3, 4, 5), widths=(1.0,))
run_study(config, sys.argv[1], resume=True, measure=fakes.slow_fake_measure)
"""


def _finished_count(path: Path) -> int:
    return len(results(path)) if path.exists() else 0


def test_sigkill_mid_study_then_resume_finishes_every_cell_exactly_once(tmp_path):
    out = tmp_path / "results.jsonl"
    command = [sys.executable, "-P", "-c", KILLABLE_STUDY, str(out), str(FAKES_PATH)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while _finished_count(out) < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    finished_before = _finished_count(out)
    assert 4 <= finished_before < 15, "the kill must land mid-study"
    with open(out, "ab") as f:  # and as if the kill had cut a write short
        f.write(b'{"schema":"fff.study/1","cell_id":"torn')

    subprocess.run(command, env=env, check=True, stderr=subprocess.DEVNULL, timeout=120)
    outcome = read_rows(out)
    finished = results(out)
    cell_ids = [row["cell_id"] for row in finished]
    assert len(cell_ids) == len(set(cell_ids)) == 15
    assert all(row["status"] == "ok" for row in finished)
    assert len(outcome.notes) == 1 and "not valid JSON" in outcome.notes[0]


DEADLY_STUDY = KILLABLE_STUDY.replace('depths=(1, 2, 3, 4, 5), widths=(1.0,))', 'depths=(1,), widths=(1.0,), '
                                      'zoo=("kills-the-process", "darts"))').replace("slow_fake_measure", "fake_measure")


def test_a_cell_that_kills_the_study_process_twice_becomes_an_error_row(tmp_path):
    out = tmp_path / "results.jsonl"
    command = [sys.executable, "-P", "-c", DEADLY_STUDY, str(out), str(FAKES_PATH)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for attempt in (1, 2):  # the cell kills the process each time it is measured
        died = subprocess.run(command, env=env, stderr=subprocess.DEVNULL, timeout=60)
        assert died.returncode == -signal.SIGKILL
    subprocess.run(command, env=env, check=True, stderr=subprocess.DEVNULL, timeout=60)
    rows = {row["cell"]["target"]: row for row in results(out)}
    assert len(rows) == 5 and [row["status"] for row in rows.values()].count("ok") == 4
    deadly = rows["kills-the-process"]["error"]
    assert deadly["type"] == "StudyProcessDied" and "died 2 times" in deadly["message"]


def test_ctrl_c_is_an_interruption_not_a_death(tmp_path):
    out = tmp_path / "results.jsonl"
    config = small_study(patterns=("plain",), depths=(1,), zoo=("ctrl-c",))
    for _ in range(3):
        with pytest.raises(KeyboardInterrupt):
            run_study(config, out, resume=True, measure=fakes.fake_measure)
    statuses = [row["status"] for row in read_rows(out).rows]
    assert statuses == ["started", "ok"] + ["started", "interrupted"] * 3
    calls = []
    run_study(config, out, resume=True, measure=lambda t, o, p: calls.append(t) or [])
    assert calls == ["ctrl-c"]  # still measured: interruptions never give up on a cell


CONCURRENT_WRITER = """
import sys
from fff.study.store import ResultsFile
writer, rows, size = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
store = ResultsFile(sys.argv[1])
for i in range(rows):
    store.append({"schema": "fff.study/1", "writer": writer, "i": i, "payload": writer * size})
"""


def test_two_writers_appending_to_one_file_never_interleave_lines(tmp_path):
    out = tmp_path / "shared.jsonl"
    rows, size = 40, 300_000  # lines far beyond a pipe buffer or a page, where unlocked writes tear
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writers = [subprocess.Popen([sys.executable, "-P", "-c", CONCURRENT_WRITER, str(out), name, str(rows), str(size)], env=env)
               for name in ("a", "b")]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    outcome = read_rows(out)
    assert outcome.notes == []
    for name in ("a", "b"):
        mine = [row for row in outcome.rows if row["writer"] == name]
        assert [row["i"] for row in mine] == list(range(rows))
        assert all(row["payload"] == name * size for row in mine)


# --- progress -------------------------------------------------------------------------------------

def test_progress_shows_cells_done_and_the_time_left():
    import io

    now = [100.0]
    stream = io.StringIO()
    bar = ProgressBar(4, stream=stream, clock=lambda: now[0])
    bar.start("plain:depth=1")
    assert bar.eta_seconds() is None
    now[0] += 30
    bar.finish("ok plain:depth=1")
    now[0] += 30
    bar.finish("ok plain:depth=2")
    assert bar.eta_seconds() == 60.0
    lines = stream.getvalue().splitlines()
    assert lines[-1] == "[fff-study] 2/4 [##########..........]  50% ETA 1m00s | ok plain:depth=2"
    assert format_duration(3725) == "1h02m" and format_duration(42) == "42s"


# --- the command line -----------------------------------------------------------------------------

def test_a_quiet_study_prints_no_progress(tmp_path, capsys):
    run_study(StudyConfig(name="q", patterns=("plain",), depths=(1, 2)), tmp_path / "r.jsonl",
              measure=fakes.fake_measure, quiet=True)
    assert capsys.readouterr().err == ""
    assert [row["status"] for row in read_rows(tmp_path / "r.jsonl").rows] == ["started", "ok"] * 2


def test_cli_bad_inputs_are_one_line_errors_with_exit_code_2(tmp_path, capsys):
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("[patterns]\nnames = [\"plain\"]\ndepths = \"deep\"\n")
    existing = tmp_path / "existing.jsonl"
    existing.write_text('{"schema":"fff.study/1"}\n')
    out = str(tmp_path / "r.jsonl")
    cases = {
        (str(bad_toml), "--out", out): "'patterns.depths' must be a non-empty list",
        (str(tmp_path / "missing.toml"), "--out", out): "does not exist",
        ("--patterns", "plain", "--shard", "3/2", "--out", out): "--shard K/N needs 1 <= K <= N",
        ("--patterns", "plain", "--shard", "two", "--out", out): "--shard must look like K/N",
        ("--depths", "1,x", "--out", out): "expected a comma-separated list of whole numbers",
        ("--patterns", "plain", "--retry-errors", "--out", out): "add --resume",
        ("--patterns", "plain", "--out", str(existing)): "already holds results",
        ("--patterns", "plain",): "the following arguments are required: --out",
    }
    for argv, expected in cases.items():
        code, stdout, stderr = run_cli(list(argv), capsys)
        assert code == 2, argv
        assert stderr.count("\n") == 1 and stderr.startswith("fff-study: error: ") and expected in stderr, stderr
    assert not Path(out).exists()


def test_cli_dry_run_lists_the_shard_cells(capsys, tmp_path):
    code, stdout, stderr = run_cli(["--patterns", "plain,residual", "--depths", "1,2", "--widths", "0.5",
                                    "--shard", "1/2", "--dry-run", "--out", str(tmp_path / "r.jsonl")], capsys)
    assert code == 0
    assert len(stdout.splitlines()) == 2
    assert "2 cells; about" in stderr


# --- the real profiler on tiny models ----------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.slow
def test_a_tiny_real_study_completes(tmp_path):
    out = tmp_path / "tiny.jsonl"
    config = StudyConfig(name="tiny", patterns=("plain", "residual"), depths=(1, 2), widths=(0.25,),
                         pattern_resolutions=(32,), threads=(1,), max_seconds=1.0, min_rounds=2, warmup=1,
                         target_ci=0.05)
    summary = run_study(config, out)
    rows = list({row["cell_id"]: row for row in results(out)}.values())  # a contended cell's newer row wins
    assert [row["error"] for row in rows] == [None] * 4, [row["error"] for row in rows]
    assert summary.measured == 4
    assert summary.remeasured == len(results(out)) - 4  # contended cells (a busy machine) ran once more
    for row in rows:
        torch_record, openvino_record = row["records"]
        assert (torch_record["backend"], openvino_record["backend"]) == ("torch", "openvino")
        assert openvino_record["parity"]["ok"] is True
        assert openvino_record["speedup"] > 0 and torch_record["latency_ms"]["median"] > 0
        assert openvino_record["input_shape"] == [1, 3, 32, 32] and openvino_record["threads"] == 1
        assert openvino_record["verdict"] in ("ok", "noisy", "contended")
        assert json.dumps(row)  # a row is plain JSON


def test_fff_study_and_fff_report_are_callable(tmp_path):
    import fff.report
    import fff.study

    frame = fff.study(patterns=["plain"], depths=[1, 2], widths=[0.5], counters=[], out=tmp_path / "r.jsonl",
                      measure=fakes.fake_measure)
    assert sorted(frame["target"].unique()) == ["plain:depth=1,width=0.5", "plain:depth=2,width=0.5"]
    assert sorted(frame["backend"]) == ["openvino", "openvino", "torch", "torch"]
    assert frame.loc[frame["backend"] == "openvino", "speedup"].tolist() == [2.0, 2.5]
    page = fff.report([tmp_path / "r.jsonl"], tmp_path / "report")
    assert page == tmp_path / "report" / "index.html" and page.stat().st_size > 1000


def test_unknown_names_and_bad_specs_are_refused_before_anything_runs(tmp_path, capsys):
    check_targets(default_study().cells())  # the built-in study names only real targets
    cases = {
        small_study(patterns=("plian",)): "unknown design pattern 'plian'",
        small_study(zoo=("resnet5O",)): "unknown zoo model 'resnet5O'",
        small_study(pattern_resolutions=(8,)): "resolution 8 is too small",
    }
    for config, expected in cases.items():
        with pytest.raises(UsageError, match=expected):
            check_targets(config.cells())
    code, _, stderr = run_cli(["--patterns", "plian", "--out", str(tmp_path / "r.jsonl")], capsys)
    assert code == 2 and "unknown design pattern 'plian'" in stderr and stderr.count("\n") == 1
    assert not (tmp_path / "r.jsonl").exists()
