"""Backends and precisions as study axes, and the report per stack (a backend at a precision)."""

import json
import math
import sys

import pytest

from fff.analysis import headline, load_results, speedup_matrix
from fff.backends import BASELINE, backend_class
from fff.study.config import BUILTIN_STUDIES, Cell, StudyConfig, load_study
from fff.study.sweep import run_study

fakes = sys.modules["study_fakes"]  # loaded by conftest.py

FOUR = ("torch", "openvino", "onnxruntime", "torch-compile")


def _computes(precision):
    """The stacks the registry's classes say compute in ``precision`` (read, not assumed: ONNX Runtime
    gains int8 on another branch)."""
    return tuple(n for n in FOUR if n == BASELINE or precision in backend_class(n).precisions)


def test_each_precision_times_the_stacks_that_compute_in_it_and_says_which_it_leaves_out():
    study = StudyConfig(backends=FOUR, precisions=("f32", "int8"), patterns=("plain",), depths=(1,))
    cells = study.cells()
    assert [(c.precision, c.backends) for c in cells] == [("f32", FOUR), ("int8", _computes("int8"))]
    assert "torch-compile" not in cells[1].backends and BASELINE in cells[1].backends
    assert study.left_out()["int8"]["torch-compile"] == "no int8 kernels (it computes in f32, bf16)"
    assert "f32" not in study.left_out()
    # a precision at which nothing but the baseline computes has no cells, rather than a refused cell each
    lonely = StudyConfig(backends=("torch", "torch-compile"), precisions=("f32", "int8"), patterns=("plain",), depths=(1,))
    assert [c.precision for c in lonely.cells()] == ["f32"] and lonely.precisions_without_stacks() == ("int8",)


def test_cell_ids_of_studies_whose_stacks_all_compute_in_their_precisions_do_not_change():
    study = load_study("default")
    first = study.cells()[0]
    # the cell as the study built it before precisions filtered stacks: every backend of the study
    old = Cell("pattern", first.target, first.pattern, first.depth, first.width, None, first.resolution, "f32",
               None, None, ("torch", "openvino"), "CPU", ("llc-misses",), False, first.cache, first.extra_caches)
    assert first.cell_id == old.cell_id
    assert [c.backends for c in study.cells()] == [("torch", "openvino")] * len(study.cells())


def test_rows_say_which_stacks_a_precision_left_out(tmp_path):
    out = tmp_path / "r.jsonl"
    study = StudyConfig(backends=FOUR, precisions=("f32", "int8"), patterns=("plain",), depths=(1,))
    run_study(study, out, measure=fakes.fake_measure, fingerprint="dddddddd44444444", quiet=True)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    done = [r for r in rows if r["status"] == "ok"]
    assert {r["cell"]["precision"]: r.get("stacks_left_out") for r in done} == {
        "f32": None, "int8": {"torch-compile": "no int8 kernels (it computes in f32, bf16)",
                              **({} if "int8" in backend_class("onnxruntime").precisions else
                                 {"onnxruntime": "no int8 kernels (it computes in f32)"})}}
    assert "int8 cells: torch-compile not timed: no int8 kernels (it computes in f32, bf16)" in load_results(out).notes


def test_the_stacks_study_parses_and_its_dry_run_lists_the_stacks_per_precision(tmp_path, monkeypatch, capsys):
    from fff.cli.study import main

    monkeypatch.chdir(tmp_path)
    study = load_study("stacks")
    assert "stacks" in BUILTIN_STUDIES and study.name == "stacks" and "(built-in)" in study.source
    assert set(study.backends) == {*FOUR, "aot-inductor"} and study.precisions == ("f32", "int8")
    assert len(study.patterns) == 10 and {"mobilenet_v2", "resnet18", "darts"} <= set(study.zoo)
    assert not study.simulate_cache and not study.calibrate_every  # torch-compile cannot be simulated
    assert main(["stacks", "--dry-run", "--out", "x.jsonl"]) == 0
    out, err = capsys.readouterr()
    assert "f32: torch, openvino, onnxruntime, torch-compile" in err
    assert f"int8: {', '.join(_computes('int8'))}; " in err and "torch-compile left out: no int8 kernels" in err
    assert len(out.splitlines()) == len(study.cells())
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "stacks" in capsys.readouterr().out


# --- the report per stack, from rows written by hand ---------------------------------------------

def _record(backend, precision, asked, ms, speedup, verdict="ok", target="plain:depth=1,width=1"):
    return {"target": target, "backend": backend, "precision": precision, "precision_asked": asked,
            "threads": 1, "batch": 1, "input_shape": [1, 3, 32, 32], "flops": 1e6, "params": 10,
            "latency_ms": {"median": ms}, "speedup": speedup,
            "speedup_ci95": None if speedup is None else [speedup, speedup], "verdict": verdict}


def _row(n, precision, kind, name, depth, records):
    cell = {"kind": kind, "target": records[0]["target"], "pattern": name if kind == "pattern" else None,
            "depth": depth, "width": 1.0 if kind == "pattern" else None, "model": name if kind == "zoo" else None,
            "resolution": 32, "precision": precision}
    return {"schema": "fff.study/1", "study": "hand", "cell_id": f"c{n}", "key": f"k{n}",
            "machine_fingerprint": "m1", "config_fingerprint": "f1", "cell": cell, "status": "ok", "records": records}


def _hand_results(tmp_path):
    """plain at depths 1, 2, 3 and mobilenet_v2, through openvino at f32 and int8 and onnxruntime at f32."""
    rows, n = [], 0
    speedups = {("plain", 1): (2.0, 4.0, 1.5), ("plain", 2): (8.0, 16.0, 3.0),
                ("plain", 3): (3.0, 99.0, 2.0)}  # the int8 cell at depth 3 is contended: left out
    for (name, depth), (ov, ov8, ort) in speedups.items():
        target = f"{name}:depth={depth},width=1"
        n += 1
        rows.append(_row(n, "f32", "pattern", name, depth, [
            _record("torch", "f32", "f32", 10.0, None, target=target),
            _record("openvino", "f32", "f32", 10 / ov, ov, target=target),
            _record("onnxruntime", "f32", "f32", 10 / ort, ort, target=target)]))
        n += 1
        rows.append(_row(n, "int8", "pattern", name, depth, [
            _record("torch", "f32", "int8", 10.0, None, target=target),
            _record("openvino", "int8", "int8", 10 / ov8, ov8, "contended" if depth == 3 else "ok", target=target)]))
    n += 1
    rows.append(_row(n, "f32", "zoo", "mobilenet_v2", None, [
        _record("torch", "f32", "f32", 12.0, None, target="mobilenet_v2"),
        _record("openvino", "f32", "f32", 2.0, 6.0, target="mobilenet_v2")]))
    path = tmp_path / "hand.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return load_results(path)


def test_the_matrix_holds_geometric_means_over_ok_cells_per_stack(tmp_path):
    results = _hand_results(tmp_path)
    assert set(results.records["stack"]) == {"torch", "openvino", "openvino int8", "onnxruntime"}
    matrix = speedup_matrix(results.records).set_index(["row", "stack"])
    assert matrix.loc[("plain", "openvino"), "geomean"] == pytest.approx((2.0 * 8.0 * 3.0) ** (1 / 3))
    assert matrix.loc[("plain", "openvino int8"), "geomean"] == pytest.approx(math.sqrt(4.0 * 16.0))  # not 99
    assert matrix.loc[("plain", "openvino int8"), ["cells", "left_out"]].tolist() == [2, 1]
    assert matrix.loc[("plain", "onnxruntime"), "geomean"] == pytest.approx((1.5 * 3.0 * 2.0) ** (1 / 3))
    assert matrix.loc[("mobilenet_v2", "openvino"), ["geomean", "cells"]].tolist() == [6.0, 1]
    assert matrix.loc[("mobilenet_v2", "openvino"), "kind"] == "zoo"
    assert ("mobilenet_v2", "onnxruntime") not in matrix.index  # never measured: a blank, not a 0


def test_f32_and_int8_rows_of_one_backend_are_separate_stacks_in_the_headline(tmp_path):
    table = headline(_hand_results(tmp_path).records)
    average = table[table["finding"] == "average speed-up over the native framework"].set_index("backend")["ratio"]
    assert average["openvino"] == pytest.approx((2.0 * 8.0 * 3.0 * 6.0) ** (1 / 4))
    assert average["openvino int8"] == pytest.approx(8.0)
    best = table[table["finding"] == "design pattern with the largest speed-up"].set_index("backend")["ratio"]
    assert best["openvino int8"] == pytest.approx(8.0)


def test_the_report_draws_the_stacks_and_a_single_stack_report_has_no_stack_section(tmp_path):
    from fff.report import report
    from fff.report.stacks_section import matrix_table

    _hand_results(tmp_path)
    page = report(tmp_path / "hand.jsonl", tmp_path / "out").read_text()
    assert "Speed-up per design pattern and stack (heat map)" in page and "OpenVINO int8" in page
    assert (tmp_path / "out" / "stacks_speedup_matrix.png").stat().st_size > 1000
    table = matrix_table(load_results(tmp_path / "hand.jsonl").records).set_index("pattern or model")
    assert table.loc["plain", "OpenVINO int8"] == "8.00x (n=2, 1 left out)"
    assert table.loc["mobilenet_v2", "ONNX Runtime"] == ""

    single = tmp_path / "single.jsonl"
    run_study(StudyConfig(patterns=("plain",), depths=(1, 2)), single, measure=fakes.fake_measure,
              fingerprint="eeeeeeee55555555", quiet=True)
    page = report(single, tmp_path / "single").read_text()
    assert "and stack" not in page and not (tmp_path / "single" / "stacks_speedup_matrix.png").exists()
