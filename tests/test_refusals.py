"""Bad input refused at the door: one line, exit code 2, nothing written or measured.

A typo in a target, a pattern's parameters, a numeric flag or a path is refused before torch or
openvino is imported and before any child process starts (those take seconds); the tests check
that by the modules the refusing process imported. How fast a refusal is lives in
bench/bench_refusals.py, not here. A user's own file is never appended to unless it is a study
fff-study wrote, and a model whose own output is not finite is the model's fault, not a parity
failure of the accelerated stack.
"""

import json
import os
import subprocess
import sys

import pytest

TINY = "plain:depth=1,width=0.25,resolution=32"
# What building or measuring would import or start: none of it may happen before a refusal. (fff._native
# may load: counter names, a flag, are checked against it, in a few tens of milliseconds.)
HEAVY = ("torch", "torchvision", "openvino", "fff.builder", "fff.measure.worker")

REFUSE = """
import json, sys
from importlib import import_module
prog, argv, heavy = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
try:
    code = import_module("fff.cli." + prog).main(argv)
except SystemExit as exit_:  # argparse's usage errors
    code = exit_.code
print(json.dumps({"code": code, "imported": sorted(m for m in heavy if m in sys.modules)}))
"""


def refuse(prog, argv, cwd, **popen):
    """Run ``fff-<prog> argv`` in a fresh interpreter: (exit code, heavy modules imported, stderr lines)."""
    done = subprocess.run([sys.executable, "-c", REFUSE, prog, json.dumps([str(a) for a in argv]), json.dumps(HEAVY)],
                          cwd=cwd, capture_output=True, text=True, timeout=300, **popen)
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    return outcome["code"], outcome["imported"], done.stderr.strip().splitlines()


@pytest.mark.parametrize("argv, message", [
    (["resnt50"], "unknown target 'resnt50' (did you mean resnet50 or resnet18 or resnext50_32x4d?)"),
    (["dw-botleneck"], "unknown target 'dw-botleneck' (did you mean dw-bottleneck or bottleneck?)"),
    (["dw-botleneck:depth=2"], "unknown pattern 'dw-botleneck' (did you mean dw-bottleneck?)"),
    (["residual:depth=0"], "spec 'residual:depth=0': depth must be a whole number >= 1, got 0"),
    (["residual:depht=2"], "unknown key 'depht'"),
    (["plain:width=-1"], "width must be a number > 0"),
    (["plain:depth=1", "--resolution", "16"], "resolution 16 is too small"),
    (["plain:depth=1", "--input-shape", "1,3,64,32"], "pattern networks take square RGB inputs (N,3,R,R)"),
    (["resnet18", "--input-shape", "1,3,64"], "resnet18: input_shape (1, 3, 64) has 3 dims, the model's input has 4"),
    (["missing.onnx"], "missing.onnx: no such model file"),
    (["weights_missing.xml"], "weights_missing.xml: the IR's weights file weights_missing.bin is missing beside it"),
    (["fff_no_such_module_anywhere:make"], "cannot import fff_no_such_module_anywhere"),
    (["missing_file.py:make"], "missing_file.py:make: no such file missing_file.py"),
    (["resnet18", "resnt50"], "unknown target 'resnt50'"),  # the last target's typo, before the first is built
    ([TINY, "--threads", "1000"], "1000 threads asked for, but this process may run on"),
    ([TINY, "--flamegraph", "f.png"], "flame graph f.png: py-spy writes .svg"),
    ([TINY, "--counters", "llc-mises"], "unknown counter 'llc-mises'"),
    ([TINY, "--cache", "LL=huge"], "bad cache spec 'LL=huge'"),
    ([TINY, "--backends", "torch,tensorrt"], "unknown backend 'tensorrt'"),
    ([TINY, "--precision", "f64"], "invalid precision 'f64'"),
])
def test_fff_profile_refuses_before_importing_a_framework(tmp_path, argv, message):
    (tmp_path / "weights_missing.xml").write_text("<net/>")
    code, imported, lines = refuse("profile", [*argv, "--json", "r.json"], tmp_path)
    assert code == 2 and imported == []
    assert len(lines) == 1 and lines[0].startswith("fff-profile: error: ") and message in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights_missing.xml"]  # no r.json, no f.png


def test_a_device_this_machine_lacks_is_one_line_before_anything_is_built(tmp_path):
    # The device list is OpenVINO's to give: openvino is imported, torch and the builder are not.
    code, imported, lines = refuse("profile", [TINY, "--device", "NPU.7"], tmp_path)
    assert code == 2 and "torch" not in imported and "fff.builder" not in imported
    assert len(lines) == 1 and lines[0].startswith("fff-profile: error: device 'NPU.7' is not available"), lines


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs to leave one out of the affinity mask")
def test_threads_are_counted_against_the_affinity_mask_not_the_host(tmp_path):
    first = min(os.sched_getaffinity(0))
    code, imported, lines = refuse("profile", [TINY, "--threads", "2"], tmp_path,
                                   preexec_fn=lambda: os.sched_setaffinity(0, {first}))
    assert code == 2 and imported == []
    assert lines == ["fff-profile: error: 2 threads asked for, but this process may run on 1 CPU (its affinity mask): "
                     "every round would be contended; ask for 1 or fewer"]


@pytest.mark.parametrize("argv, message", [
    (["--zoo", "resnt50"], "unknown zoo model 'resnt50' (did you mean resnet50?)"),
    (["--patterns", "plian"], "unknown design pattern 'plian' (did you mean plain?)"),
    (["--patterns", "plain", "--resolutions", "8"], "resolution 8 is too small"),
    (["--patterns", "plain", "--threads", "1000"], "1000 threads asked for, but this process may run on"),
    (["--patterns", "plain", "--precisions", "f64"], "invalid precision 'f64'"),
    (["--patterns", "plain", "--counters", "llc-mises"], "unknown counter 'llc-mises'"),
    (["missing.toml"], "study file missing.toml does not exist"),
])
def test_fff_study_refuses_before_importing_a_framework(tmp_path, argv, message):
    code, imported, lines = refuse("study", [*argv, "--out", "r.jsonl"], tmp_path)
    assert code == 2 and imported == []
    assert len(lines) == 1 and lines[0].startswith("fff-study: error: ") and message in lines[0], lines
    assert list(tmp_path.iterdir()) == []  # no results file, no lock file


def test_a_dry_run_refuses_a_typo_instead_of_listing_it(tmp_path, capsys):
    from fff.cli.study import main

    assert main(["--zoo", "resnet18,resnt50", "--dry-run", "--out", str(tmp_path / "r.jsonl")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("fff-study: error: unknown zoo model 'resnt50'")


# --- a file that is not a study is never appended to ---------------------------------------------------

NOT_A_STUDY = {
    "notes": ("my notes on the run\n", 1),
    "json from elsewhere": ('{"model": "resnet50", "latency_ms": 3.2}\n', 1),
    "notes then json": ('some text\n{"schema": "other/1"}\n', 1),
    "a list": ("[]\n", 1),
    "a study row, then text": ('{"schema":"fff.study/1","key":"a","status":"started"}\nhand-written note\n', 2),
}


@pytest.mark.parametrize("resume", [True, False])
@pytest.mark.parametrize("case", NOT_A_STUDY)
def test_a_file_that_is_not_a_study_is_neither_resumed_nor_touched(tmp_path, capsys, case, resume):
    from fff.cli.study import main

    text, line = NOT_A_STUDY[case]
    notes = tmp_path / "notes.jsonl"
    notes.write_text(text)
    code = main(["--patterns", "plain", "--depths", "1", "--out", str(notes), *(["--resume"] * resume)])
    err = capsys.readouterr().err
    assert code == 2
    assert err == (f"fff-study: error: {notes} is not an fff-study results file (line {line} is not an fff-study "
                   f"row); it is not {'resumed' if resume else 'overwritten'} and was left as it is: choose a new --out\n")
    assert notes.read_text() == text and [p.name for p in tmp_path.iterdir()] == ["notes.jsonl"]  # no lock file


def test_a_file_of_blank_lines_holds_no_rows_and_is_refused(tmp_path, capsys):
    from fff.cli.study import main

    empty = tmp_path / "blank.jsonl"
    empty.write_text("\n\n")
    assert main(["--patterns", "plain", "--out", str(empty), "--resume"]) == 2
    assert f"{empty} holds no fff-study rows; it is not resumed" in capsys.readouterr().err
    assert empty.read_text() == "\n\n"


def test_a_torn_row_of_fff_study_is_its_own_not_a_foreign_line(tmp_path):
    from fff.study.store import read_rows

    out = tmp_path / "r.jsonl"
    row = '{"schema":"fff.study/1","key":"a","status":"started"}\n'
    for torn in ('{"schema":"fff.study/1","cell_id":"to', '{"sch', '{"schema": "fff.study/1", "key": "b", "sta'):
        out.write_text(row + torn + "\n" + row)  # a kill cut a write short, then the study went on
        outcome = read_rows(out)
        assert len(outcome.rows) == 2 and outcome.foreign == [] and outcome.not_a_study(out) is None
    out.write_text(row + '{"schema":"fff.study/2"}\n')
    assert read_rows(out).foreign == [2]


# --- the user's model computes NaN: its fault, said before anything is compared -------------------------

NAN_MODEL = '''
import torch
from torch import nn


class LogOfConv(nn.Module):
    input_shape = (1, 3, 8, 8)

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return torch.log(self.conv(x))  # NaN wherever the convolution is negative


def make():
    return LogOfConv()
'''


def test_a_model_whose_own_output_is_nan_is_refused_not_blamed_on_the_accelerated_stack(tmp_path):
    (tmp_path / "nan_model.py").write_text(NAN_MODEL)
    result = subprocess.run([sys.executable, "-m", "fff.cli.profile", "nan_model:make", "--threads", "1",
                             "--max-time", "1", "--min-rounds", "2", "--quiet", "--json", "r.json"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("fff-profile: error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr and "parity" not in result.stderr
    assert errors[0].startswith("fff-profile: error: nan_model:make: the model's own output on PyTorch eager is not "
                                "finite (")
    assert " NaN of 144 values, on fff's fixed-seed input" in errors[0]  # 4 channels x 6 x 6
    assert not (tmp_path / "r.json").exists()


def test_non_finite_counts_what_is_not_finite():
    import numpy as np

    from fff.measure.parity import non_finite

    assert non_finite(np.ones(5)) is None
    assert non_finite(np.array([np.nan, np.inf, -np.inf, 1.0])) == "1 NaN and 2 infinite of 4 values"
    assert non_finite(np.array([[np.nan, 0.0]])) == "1 NaN of 2 values"
    # a model with several outputs (a list): the first one that is not finite, named by its place
    assert non_finite([np.ones(3), np.ones((2, 2))]) is None
    assert non_finite([np.ones(3), np.array([[np.inf, 0.0]])]) == "output 1: 1 infinite of 2 values"
