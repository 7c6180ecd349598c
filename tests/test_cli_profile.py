"""fff-profile end to end on a tiny pattern model, and every kind of bad input."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

TINY = "plain:depth=1,width=0.25,resolution=32"
QUICK = ["--threads", "1", "--max-time", "1", "--min-rounds", "2"]


def fff_profile(*args, cwd):
    # cwd is a temporary directory so that the installed fff is imported, not the source tree.
    return subprocess.run([sys.executable, "-m", "fff.cli.profile", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, errors="replace", timeout=600)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("profile")
    # A cap of 5 s rather than QUICK's 1 s: at load average 15 one round of each backend took over
    # half a second, and test_interleaving_is_recorded needs two.
    result = fff_profile(TINY, "--threads", "1", "--max-time", "5", "--min-rounds", "2",
                         "--json", out / "r.json", "--csv", out / "r.csv", cwd=out)
    return result, out


def test_help_is_instant_and_imports_no_framework(tmp_path):
    code = "import sys, fff.cli.profile as p; p.build_parser().format_help(); " \
           "print(sorted(m for m in ('torch', 'openvino', 'matplotlib', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_list_imports_no_framework(tmp_path):
    # Listing names reads static tables: no torch, no openvino (fff-profile --list stays instant).
    code = "import sys; from fff.cli.profile import main; code = main(['--list']); " \
           "print(sorted(m for m in ('torch', 'torchvision', 'openvino') if m in sys.modules), code)"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    *listing, imported = out.stdout.strip().splitlines()
    assert imported == "[] 0"
    assert "  dw-bottleneck " in "\n".join(listing) and "  darts " in "\n".join(listing)
    assert "  llc-misses " in "\n".join(listing)


def test_flags_work_only_spelled_out_and_resolution_in_both_spellings():
    from fff.cli import profile, study

    assert profile.build_parser().parse_args(["--resolutions", "64"]).resolution == 64
    assert profile.build_parser().parse_args(["--resolution", "64"]).resolution == 64
    assert study.build_parser().parse_args(["--resolution", "64,128", "--out", "r.jsonl"]).resolutions == [64, 128]
    for parser, args in ((profile.build_parser(), ["--res", "64"]), (study.build_parser(), ["--res", "64", "--out", "r"]),
                         (study.build_parser(), ["--resolutions", "64", "--ou", "r"])):
        with pytest.raises(SystemExit) as exit_:  # no prefix matching: --res is no flag at all
            parser.parse_args(args)
        assert exit_.value.code == 2


def test_study_help_names_patterns_and_models():
    from fff.cli import study

    text = study.build_parser().format_help()
    assert "dw-bottleneck" in text and "mobilenet_v2" in text and "fff-profile --list" in text


def test_end_to_end_json_has_the_documented_keys_and_types(tiny_run):
    result, out = tiny_run
    assert result.returncode == 0, result.stderr
    records = json.loads((out / "r.json").read_text())
    assert [r["backend"] for r in records] == ["torch", "openvino"]
    for r in records:
        for key in ("target", "backend", "device", "precision", "threads", "batch", "input_shape", "flops", "params",
                    "latency_ms", "first_inference_ms", "speedup", "speedup_ci95", "counters", "parity", "clock",
                    "config", "machine", "versions"):
            assert key in r, key
        assert r["target"] == TINY
        assert r["precision"] == "f32" and r["threads"] == 1 and r["batch"] == 1
        assert r["input_shape"] == [1, 3, 32, 32]
        assert isinstance(r["flops"], int) and r["flops"] > 0
        assert isinstance(r["params"], int) and r["params"] > 0
        assert "aten.relu_" in r["uncounted_ops"] and "torch.utils.flop_counter" in r["flops_convention"]
        lat = r["latency_ms"]
        assert set(lat) == {"median", "mean", "std", "min", "p90", "p99", "ci95_low", "ci95_high", "n"}
        assert 0 < lat["min"] <= lat["median"] <= lat["p90"] <= lat["p99"]
        assert lat["ci95_low"] <= lat["median"] <= lat["ci95_high"]
        assert lat["n"] == len(r["samples_ns"]) >= 6
        assert r["first_inference_ms"] > 0
        assert r["versions"]["torch"] and r["versions"]["openvino"]
        assert r["machine"]["cpus_available"] >= 1
    torch_row, ov_row = records
    assert torch_row["speedup"] is None and torch_row["parity"] is None
    assert ov_row["config"]["INFERENCE_PRECISION_HINT"] == "f32"
    assert ov_row["config"]["INFERENCE_NUM_THREADS"] == "1"
    assert torch_row["config"]["threads"] == 1
    assert ov_row["parity"]["ok"] is True and ov_row["parity"]["max_rel_err"] < 1e-3
    low, high = ov_row["speedup_ci95"]
    assert low <= ov_row["speedup"] <= high


def test_speedup_is_the_ratio_of_the_medians(tiny_run):
    _, out = tiny_run
    torch_row, ov_row = json.loads((out / "r.json").read_text())
    expected = np.median(torch_row["samples_ns"]) / np.median(ov_row["samples_ns"])
    assert ov_row["speedup"] == pytest.approx(expected, rel=1e-12)
    assert torch_row["latency_ms"]["median"] == pytest.approx(np.median(torch_row["samples_ns"]) / 1e6)


def test_interleaving_is_recorded(tiny_run):
    _, out = tiny_run
    record = json.loads((out / "r.json").read_text())[1]
    inter = record["interleaving"]
    assert inter["rounds"] >= 2
    # A B, then B A: each round alternates which backend goes first.
    assert inter["order"][:4] == ["torch", "openvino", "openvino", "torch"]
    assert set(inter["iterations_per_round"]) == {"torch", "openvino"}


def test_csv_and_table(tiny_run):
    import pandas as pd

    result, out = tiny_run
    table = pd.read_csv(out / "r.csv")
    assert list(table["backend"]) == ["torch", "openvino"]
    assert "latency_ms.median" in table.columns and "samples_ns" not in table.columns
    assert "speed-up" in result.stdout and "openvino" in result.stdout
    assert "\n+-CI: " in result.stdout and "first ms: " in result.stdout  # the legend under the table
    assert "[fff-profile] " in result.stderr  # progress lines, without --quiet


def test_counter_reasons_are_said_once(tiny_run):
    from fff.cli.profile import format_table

    _, out = tiny_run
    records = json.loads((out / "r.json").read_text())
    reason = "this machine exposes no hardware PMU " + "(a long explanation) " * 10
    for r in records:
        r["counters"] = {"llc-misses": {"per_inference": None, "total": None, "status": "not supported",
                                        "reason": reason, "scaled": False}}
    table = format_table(records)
    assert table.count(reason) == 1
    assert table.count("not counted (not supported)") == 2  # one short line per backend


@pytest.mark.parametrize("args, message", [
    (["nosuchmodel"], "nosuchmodel"),
    (["plain:depth=0"], "depth"),
    (["/nonexistent/model.xml"], "no such model file"),
    ([TINY, "--counters", "bogus-counter"], "bogus-counter"),
    ([TINY, "--device", "GPU"], "GPU"),
    ([TINY, "--precision", "f64"], "precision"),
    ([TINY, "--backends", "torch", "--precision", "int8"], "backend torch cannot compute in int8"),
    ([TINY, "--threads", "0"], "threads"),
    ([TINY, "--batch", "-1"], "batch"),
    ([TINY, "--max-time", "soon"], "max-time"),
    ([TINY, "--backends", "torch,tensorrt"], "tensorrt"),
])
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, args, message):
    result = fff_profile(*args, *QUICK, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    assert lines[-1].startswith("fff-profile: error:") and message in lines[-1]


@pytest.mark.slow
def test_corrupt_model_file(tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(os.urandom(256))
    result = fff_profile(bad, *QUICK, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("fff-profile: error:")
    assert result.stderr.strip().splitlines()[-1].endswith("broken.onnx: not an ONNX model")
    assert "Traceback" not in result.stderr and "tensorflow" not in result.stderr


@pytest.mark.slow
def test_input_shape_fills_a_model_files_dynamic_dims(tmp_path, relu_onnx):
    onnx = relu_onnx(tmp_path / "dynamic.onnx", ["N", 3, "H", "W"])
    missing = fff_profile(onnx, "--backends", "openvino", *QUICK, cwd=tmp_path)
    assert missing.returncode == 2 and "--input-shape" in missing.stderr.strip().splitlines()[-1]
    result = fff_profile(onnx, "--backends", "openvino", "--input-shape", "2,3,8,8", *QUICK,
                         "--json", tmp_path / "r.json", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "[fff-profile]" not in result.stderr and "speed-up" in result.stdout  # --quiet: no progress, the table
    [record] = json.loads((tmp_path / "r.json").read_text())
    assert record["input_shape"] == [2, 3, 8, 8] and record["batch"] == 2
    assert record["speedup"] is None and "no baseline" in result.stdout
    default_backends = fff_profile(onnx, "--input-shape", "2,3,8,8", *QUICK, cwd=tmp_path)
    assert default_backends.returncode == 0 and "no PyTorch baseline" in default_backends.stderr
    garbage = fff_profile(onnx, "--input-shape", "1,three,8,8", cwd=tmp_path)
    assert garbage.returncode == 2 and "--input-shape" in garbage.stderr and "Traceback" not in garbage.stderr


@pytest.mark.slow
def test_targets_measured_before_a_bad_one_are_kept(tmp_path):
    # A typo would be refused before anything is measured: this file is found bad only when it is read.
    (tmp_path / "broken.onnx").write_bytes(os.urandom(256))
    result = fff_profile(TINY, tmp_path / "broken.onnx", *QUICK, "--json", tmp_path / "r.json", cwd=tmp_path)
    assert result.returncode == 2 and "broken.onnx: not an ONNX model" in result.stderr
    records = json.loads((tmp_path / "r.json").read_text())
    assert [(r["target"], r["backend"]) for r in records] == [(TINY, "torch"), (TINY, "openvino")]


@pytest.mark.slow
def test_python_api_returns_the_same_fields_flattened():
    import fff

    frame = fff.profile(TINY, threads=1, max_seconds=0.5, min_rounds=2)
    assert list(frame["backend"]) == ["torch", "openvino"]
    for column in ("latency_ms.median", "latency_ms.ci95_high", "speedup", "parity.ok", "flops", "params",
                   "first_inference_ms", "machine.cpu_model", "versions.openvino"):
        assert column in frame.columns, column
    assert frame.loc[1, "speedup"] == pytest.approx(frame.loc[0, "latency_ms.median"] / frame.loc[1, "latency_ms.median"],
                                                    rel=1e-9)
