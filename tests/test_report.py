"""fff-report: figures that are real images, a page with the tables, the paper comparison and every error."""

import sys
from pathlib import Path

import numpy as np
import pytest

from fff.study.config import StudyConfig
from fff.study.sweep import run_study

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIGURE_STEMS = ["speedup_per_pattern", "speedup_depth_width", "latency_vs_depth", "latency_vs_flops", "llc_vs_depth",
                "architectures", "roofline"]


fakes = sys.modules["study_fakes"]  # loaded by conftest.py


def run_cli(argv, capsys):
    from fff.cli.report import main

    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_real_png(path: Path, min_width: int = 300):
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_SIGNATURE, path
    pixels = matplotlib.image.imread(path)
    height, width = pixels.shape[:2]
    assert width >= min_width and height >= 150, (path, pixels.shape)
    assert pixels.std() > 0.01, f"{path} is a blank image"


@pytest.fixture(scope="module")
def results_files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("results")
    first, second = directory / "a.jsonl", directory / "b.jsonl"
    config = StudyConfig(name="synthetic", patterns=("plain", "dw-bottleneck", "residual", "grouped"),
                         depths=(1, 2, 4), widths=(0.5, 1.0), zoo=("darts", "mobilenet_v2", "resnet18", "explodes"))
    run_study(config, first, measure=fakes.fake_measure, fingerprint="aaaaaaaa11111111")
    run_study(StudyConfig(patterns=("plain",), depths=(1, 2)), second, measure=fakes.fake_measure,
              fingerprint="bbbbbbbb22222222")
    return first, second


def test_report_from_one_machine(results_files, tmp_path, capsys):
    out = tmp_path / "report"
    code, stdout, stderr = run_cli([str(results_files[0]), "--out", str(out)], capsys)
    assert (code, stderr) == (0, "")
    assert stdout.strip() == str(out / "index.html")
    for stem in FIGURE_STEMS:
        assert_real_png(out / f"{stem}.png")
    page = (out / "index.html").read_text()
    for expected in ["The paper's headline findings", "380%", "dw-bottleneck 550%", "darts 1200%",
                     "mobilenet_v2 about 2.4 ms", "3.8x", "as a gain of (ratio - 1) x 100",
                     "darts; darts: 12.00x (rank 1 of 3)", "Speed-up per design pattern",
                     "Correlation of latency with FLOPs", "no LLC-miss counts: llc-misses: not supported",
                     "Architectures", "Failed cells (7)", "CompileError", "RuntimeError",
                     "a bug deep inside a library", 'src="speedup_per_pattern.png"']:
        assert expected in page, expected
    records = (out / "records.csv").read_text().splitlines()
    assert len(records) == 1 + 2 * (3 * 6 + 3)  # header + (3 patterns x 6 cells + 3 zoo) x 2 backends


def test_page_says_each_heading_and_note_once(results_files, tmp_path, capsys):
    out = tmp_path / "report"
    assert run_cli([str(results_files[0]), "--out", str(out)], capsys)[0] == 0
    page = (out / "index.html").read_text()
    headings = [line for line in page.replace("<h", "\n<h").splitlines() if line.startswith(("<h2>", "<h3>"))]
    assert len(headings) == len(set(headings)), sorted(h for h in headings if headings.count(h) > 1)
    # the correlation table's reason for missing LLC counts: once under the table, not on every row
    assert page.count("no LLC-miss counts: llc-misses: not supported") == 1
    assert page.count("<td>note 1</td>") > 1
    assert "left out of the counts here: aten.add, aten.relu_." in page  # from the records' uncounted_ops
    assert "speedup_ci_low" not in page and "speedup ci low" in page  # headings break at spaces, not underscores


def test_figures_with_one_width_or_no_llc_counts_say_so(tmp_path, monkeypatch):
    import matplotlib.figure

    from fff.analysis import load_results
    from fff.report.figures import llc_misses_against_depth, speedup_against_depth_and_width

    results = tmp_path / "one_width.jsonl"
    run_study(StudyConfig(patterns=("residual",), depths=(1, 2), widths=(1.0,)), results, measure=fakes.fake_measure)
    records = load_results([results]).records
    drawn = []
    save = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda figure, *a, **k: (drawn.append(figure), save(figure, *a, **k)))
    for draw in (speedup_against_depth_and_width, llc_misses_against_depth):
        assert_real_png(draw(records, tmp_path / f"{draw.__name__}.png"))
    texts = [text.get_text() for figure in drawn for axes in figure.axes for text in axes.texts]
    assert "Every cell has width 1:\nnothing to plot against width." in texts
    [llc] = [text for text in texts if text.startswith("No LLC-miss counts")]
    assert "fff-study --counters llc-misses --simulate-cache" in llc and "not supported (no hardware PMU))" in llc


def test_report_from_two_machines_keeps_them_side_by_side(results_files, tmp_path, capsys):
    out = tmp_path / "report"
    code, _, stderr = run_cli([*map(str, results_files), "--out", str(out)], capsys)
    assert (code, stderr) == (0, "")
    for machine in ("aaaaaaaa", "bbbbbbbb"):
        for stem in FIGURE_STEMS:
            assert_real_png(out / f"{stem}.{machine}.png")
    page = (out / "index.html").read_text()
    assert page.count("<h2>Machine ") == 2
    assert "results come from 2 machines" in page
    assert "[aaaaaaaa]</th>" in page and "[bbbbbbbb]</th>" in page  # one headline column per machine
    assert "Geometric-mean speed-up per design pattern (ok cells), machines side by side" in page


def test_figures_with_nothing_to_show_say_so(tmp_path):
    from fff.analysis import load_results
    from fff.report.figures import draw_all

    results = tmp_path / "zoo_only.jsonl"
    run_study(StudyConfig(zoo=("darts",)), results, measure=fakes.fake_measure)
    figures = draw_all(load_results([results]).records, tmp_path / "figures")
    assert [path.stem for _, path in figures] == FIGURE_STEMS
    for _, path in figures:
        assert_real_png(path)


def test_bad_report_inputs_are_one_line_errors_with_exit_code_2(tmp_path, capsys, results_files):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    a_file = tmp_path / "file"
    a_file.write_text("x")
    cases = {
        (str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "r")): "does not exist",
        (str(empty), "--out", str(tmp_path / "r")): "no study results in",
        (str(results_files[0]), "--out", str(a_file)): "is not a directory",
        (str(results_files[0]),): "the following arguments are required: --out",
    }
    for argv, expected in cases.items():
        code, _, stderr = run_cli(list(argv), capsys)
        assert code == 2, argv
        assert stderr.count("\n") == 1 and stderr.startswith("fff-report: error: ") and expected in stderr, stderr


def _with_a_third_stack(target, options, progress=lambda _: None):
    """The fake's torch and openvino records, and an "onnxruntime" copy of openvino's at half its speed-up:
    a stack with no class here, so the report must take its name, label and colour from the registry's fallback."""
    import copy

    records = fakes.fake_measure(target, options, progress)
    base, fast = records
    third = copy.deepcopy(fast)
    speedup = fast["speedup"] / 2
    third.update(backend="onnxruntime", speedup=speedup, speedup_ci95=[speedup * 0.97, speedup * 1.03])
    third["latency_ms"]["median"] = base["latency_ms"]["median"] / speedup
    return records + [third]


def test_a_third_stack_gets_its_own_numbers_colour_and_label_everywhere(tmp_path, monkeypatch):
    import matplotlib.figure
    from matplotlib.colors import to_hex

    from fff.analysis import architecture_table, headline, load_results, speedup_by_pattern
    from fff.backends import backend_color, backend_label
    from fff.report import report

    results = tmp_path / "three.jsonl"
    run_study(StudyConfig(patterns=("plain", "dw-bottleneck"), depths=(1, 2), widths=(1.0,), zoo=("darts", "resnet18")),
              results, measure=_with_a_third_stack, fingerprint="dddddddd44444444")
    records = load_results([results]).records
    assert sorted(records["backend"].unique()) == ["onnxruntime", "openvino", "torch"]

    # each accelerated stack against the baseline, never pooled: openvino 2, 2.5 (plain) 5, 5.5 (dw), darts 12,
    # resnet18 3; onnxruntime half of each
    patterns = speedup_by_pattern(records).set_index(["backend", "pattern"])["geomean"]
    assert patterns[("onnxruntime", "plain")] == pytest.approx((1.0 * 1.25) ** 0.5)
    assert patterns[("openvino", "plain")] == pytest.approx((2.0 * 2.5) ** 0.5)
    table = headline(records).set_index(["backend", "finding"])
    openvino = [2.0, 2.5, 5.0, 5.5, 12.0, 3.0]
    for stack, speedups in (("openvino", openvino), ("onnxruntime", [s / 2 for s in openvino])):
        average = table.loc[(stack, "average speed-up over the native framework")]
        assert average["ratio"] == pytest.approx(float(np.exp(np.mean(np.log(speedups)))))
        assert average["this_machine"].startswith("geometric mean over 6 ok cells")
        assert table.loc[(stack, "architecture with the largest speed-up"), "ratio"] == pytest.approx(speedups[4])
    assert table.loc[("onnxruntime", "design pattern with the largest speed-up"), "ratio"] == \
        pytest.approx((2.5 * 2.75) ** 0.5)
    zoo = architecture_table(records).set_index(["backend", "model"])
    assert (zoo.loc[("onnxruntime", "darts"), "speedup"], zoo.loc[("onnxruntime", "darts"), "accelerated_ms"]) == \
        pytest.approx((6.0, 50 / 6))

    drawn = {}
    save = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig",
                        lambda figure, path, *a, **k: (drawn.setdefault(Path(path).stem, figure), save(figure, path, *a, **k)))
    page = report([results], tmp_path / "report").read_text()
    for stack in ("onnxruntime", "openvino"):  # a headline column per stack, named by its label
        assert f"[dddddddd]: {backend_label(stack)}</th>" in page
    assert page.count("<td>onnxruntime</td>") >= 2 + 2  # its rows in the per-pattern and architecture tables

    def bars(figure, label):  # bottom to top, left to right
        [container] = [c for c in figure.axes[0].containers if c.get_label() == label]
        return sorted(container, key=lambda bar: (bar.get_y(), bar.get_x()))

    per_pattern = bars(drawn["speedup_per_pattern"], "onnxruntime: geometric mean over its ok cells")
    assert {to_hex(bar.get_facecolor(), keep_alpha=False) for bar in per_pattern} == {backend_color("onnxruntime")}
    # patterns ordered by their best stack's speed-up: dw-bottleneck, then plain
    assert [bar.get_height() for bar in per_pattern] == pytest.approx([(2.5 * 2.75) ** 0.5, (1.0 * 1.25) ** 0.5])
    figure = drawn["architectures"]
    for stack in ("openvino", "onnxruntime"):
        assert backend_label(stack) in figure.axes[0].get_title()
        assert {to_hex(bar.get_facecolor()) for bar in bars(figure, stack)} == {backend_color(stack)}
    # models in order of their largest speed-up, resnet18 (3x) under darts (12x); one bar per stack each
    assert [bar.get_width() for bar in bars(figure, "onnxruntime")] == pytest.approx([60 / 1.5, 50 / 6])
    assert [bar.get_width() for bar in bars(figure, "torch")] == pytest.approx([60.0, 50.0])
    annotations = [text.get_text() for text in figure.axes[0].texts]
    assert sorted(annotations) == ["1.50x", "12.00x", "3.00x", "6.00x"]
    lines = {line.get_label(): to_hex(line.get_color()) for line in drawn["latency_vs_depth"].axes[0].lines}
    assert lines["onnxruntime w=1"] == backend_color("onnxruntime") and lines["openvino w=1"] == backend_color("openvino")
