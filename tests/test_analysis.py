"""Analysis numbers against a synthetic study whose answers are known (see study_fakes.py)."""

import math
import sys

import numpy as np
import pytest

from fff.analysis import (architecture_table, correlations, gflops_by_pattern, headline, load_results, pearson,
                          spearman, speedup_by_pattern, speedup_trend)
from fff.errors import UsageError
from fff.study.config import StudyConfig
from fff.study.sweep import run_study


fakes = sys.modules["study_fakes"]  # loaded by conftest.py

SYNTHETIC = StudyConfig(name="synthetic", patterns=("plain", "dw-bottleneck", "grouped"), depths=(1, 2, 4),
                        widths=(0.5, 1.0), zoo=("darts", "mobilenet_v2", "resnet18"))


@pytest.fixture(scope="module")
def two_machines(tmp_path_factory):
    directory = tmp_path_factory.mktemp("results")
    first, second = directory / "a.jsonl", directory / "b.jsonl"
    run_study(SYNTHETIC, first, measure=fakes.fake_measure, fingerprint="machine-a")
    other = StudyConfig(name="synthetic", patterns=("plain",), depths=(1,), widths=(1.0,))
    run_study(other, second, measure=fakes.fake_measure, fingerprint="machine-b")
    return first, second


@pytest.fixture(scope="module")
def results(two_machines):
    return load_results(two_machines)


def only(frame, **where):
    for column, value in where.items():
        frame = frame[frame[column] == value]
    assert len(frame) == 1, where
    return frame.iloc[0]


def test_results_from_several_files_are_merged_and_machines_kept_apart(results):
    assert set(results.machines) == {"machine-a", "machine-b"}
    assert (results.machines["machine-a"]["cells"], results.machines["machine-a"]["failed"]) == (21, 6)
    # 21 cells on machine a: 6 ok plain, 6 ok dw-bottleneck, 6 grouped failed, 3 zoo; 1 cell on machine b
    assert len(results.records) == 2 * (12 + 3) + 2
    assert results.errors["target"].str.startswith("grouped:").all() and len(results.errors) == 6
    assert set(results.errors["error_type"]) == {"CompileError"}
    assert any("2 machines" in note for note in results.notes)


def test_speed_up_per_pattern(results):
    table = speedup_by_pattern(results.records)
    plain = only(table, machine="machine-a", pattern="plain")
    # speed-up = 2 + 0.5 (depth - 1) at depths 1, 2, 4, two widths each
    geomean = (2.0 * 2.5 * 3.5) ** (1 / 3)  # each depth's speed-up at two widths
    assert (plain["geomean"], plain["median"], plain["min"], plain["max"], plain["cells"], plain["left_out"]) == \
           pytest.approx((geomean, 2.5, 2.0, 3.5, 6, 0))
    assert plain["geomean_ratio_pct"] == pytest.approx(100 * geomean)
    assert plain["geomean_gain_pct"] == pytest.approx(100 * (geomean - 1))
    best = table[table["machine"] == "machine-a"].iloc[0]
    assert (best["pattern"], best["geomean"]) == ("dw-bottleneck", pytest.approx((5.0 * 5.5 * 6.5) ** (1 / 3)))
    assert only(table, machine="machine-b", pattern="plain")["geomean"] == 2.0  # never pooled with machine a


def test_speed_up_against_depth_and_width(results):
    depth = speedup_trend(results.records, "depth")
    plain = depth[(depth["machine"] == "machine-a") & (depth["pattern"] == "plain")]
    assert plain["depth"].tolist() == [1, 2, 4]
    assert plain["median"].tolist() == [2.0, 2.5, 3.5] and plain["cells"].tolist() == [2, 2, 2]
    width = speedup_trend(results.records, "width")
    dw = width[(width["machine"] == "machine-a") & (width["pattern"] == "dw-bottleneck")]
    assert dw["width"].tolist() == [0.5, 1.0] and dw["median"].tolist() == [5.5, 5.5]
    with pytest.raises(ValueError):
        speedup_trend(results.records, "height")


def test_correlations_with_flops_and_llc_misses_never_read_missing_as_zero(results):
    table = correlations(results.records)
    table = table[table["machine"] == "machine-a"]
    flops = only(table, backend="torch", scope="plain", against="flops")
    assert (flops["cells"], flops["pearson"], flops["spearman"]) == (6, pytest.approx(1.0), pytest.approx(1.0))
    llc = only(table, backend="torch", scope="plain", against="llc_misses")
    assert (llc["pearson"], llc["spearman"], llc["source"]) == (pytest.approx(1.0), pytest.approx(1.0), "simulated")
    missing = only(table, backend="torch", scope="dw-bottleneck", against="llc_misses")
    assert missing["cells"] == 0 and math.isnan(missing["pearson"]) and math.isnan(missing["spearman"])
    assert missing["note"] == "no LLC-miss counts: llc-misses: not supported (no hardware PMU)"
    pooled = only(table, backend="torch", scope="all patterns", against="llc_misses")
    assert pooled["cells"] == 6  # the plain cells only: dw-bottleneck's missing counts are left out
    accelerated = only(table, backend="openvino", scope="plain", against="flops")
    assert 0 < accelerated["pearson"] < 1  # openvino latency = flops / speed-up, which grows with depth
    small = only(correlations(results.records[results.records["machine"] == "machine-b"]),
                 backend="torch", scope="plain", against="flops")
    assert small["cells"] == 1 and math.isnan(small["pearson"]) and "too few" in small["note"]


def test_rank_correlation_matches_its_definition():
    assert spearman([1, 2, 3, 4], [1, 4, 9, 16]) == pytest.approx(1.0)
    assert pearson([1, 2, 3, 4], [1, 4, 9, 16]) == pytest.approx(0.984374, abs=1e-6)
    assert spearman([1, 2, 2, 3], [3, 2, 2, 1]) == pytest.approx(-1.0)  # ties take average ranks
    assert math.isnan(pearson([1, 1, 1], [1, 2, 3]))


def test_achieved_gflops_per_pattern(results):
    table = gflops_by_pattern(results.records)
    assert only(table, machine="machine-a", backend="torch", pattern="plain")["median"] == pytest.approx(1.0)
    assert only(table, machine="machine-a", backend="openvino", pattern="plain")["median"] == pytest.approx(2.5)


def test_architecture_table(results):
    table = architecture_table(results.records)
    assert table["model"].tolist() == ["darts", "mobilenet_v2", "resnet18"]
    darts = table.iloc[0]
    assert (darts["baseline_ms"], darts["accelerated_ms"], darts["speedup"]) == pytest.approx((50.0, 50 / 12, 12.0))
    assert (darts["speedup_ratio_pct"], darts["speedup_gain_pct"]) == pytest.approx((1200.0, 1100.0))
    assert (darts["gflops"], darts["mparams"]) == pytest.approx((0.5, 5.0))
    assert (darts["speedup_ci_low"], darts["speedup_ci_high"]) == pytest.approx((12 * 0.97, 12 * 1.03))


def test_headline_numbers_beside_the_papers(results):
    table = headline(results.records)
    mine = table[table["machine"] == "machine-a"].set_index("finding")
    average = mine.loc["average speed-up over the native framework"]
    # geometric mean of the 15 accelerated cells: plain 2, 2.5, 3.5 and dw-bottleneck 5, 5.5, 6.5 at two
    # widths each, zoo 12, 5, 3
    speedups = [2.0, 2.5, 3.5] * 2 + [5.0, 5.5, 6.5] * 2 + [12.0, 5.0, 3.0]
    geomean = float(np.exp(np.mean(np.log(speedups))))
    assert average["ratio"] == pytest.approx(geomean)
    assert (average["ratio_ratio_pct"], average["ratio_gain_pct"]) == \
        pytest.approx((100 * geomean, 100 * (geomean - 1)))
    assert (average["paper"], average["paper_ratio"]) == ("380%", 3.8)
    assert average["this_machine"] == (f"geometric mean over 15 ok cells (patterns and zoo), median "
                                       f"{np.median(speedups):.2f}x; arithmetic mean of the ratios 4.67x")
    pattern = mine.loc["design pattern with the largest speed-up"]
    assert pattern["ratio"] == pytest.approx((5.0 * 5.5 * 6.5) ** (1 / 3))
    assert pattern["this_machine"] == ("dw-bottleneck (geometric mean over its ok cells); dw-bottleneck: 5.63x "
                                       "(rank 1 of 2)")
    architecture = mine.loc["architecture with the largest speed-up"]
    assert (architecture["ratio"], architecture["this_machine"]) == (12.0, "darts; darts: 12.00x (rank 1 of 3)")
    fastest = mine.loc["lowest inference time (accelerated)"]
    assert fastest["ms"] == pytest.approx(2.4) and fastest["this_machine"].startswith("mobilenet_v2 2.40 ms")
    other = table[table["machine"] == "machine-b"].set_index("finding")
    assert other.loc["average speed-up over the native framework", "ratio"] == 2.0
    assert other.loc["architecture with the largest speed-up", "this_machine"] == "no ok zoo models"
    assert np.isnan(other.loc["architecture with the largest speed-up", "ratio"])


def test_a_file_read_twice_counts_each_cell_once(two_machines):
    first, _ = two_machines
    twice = load_results([first, first])
    assert len(twice.records) == len(load_results([first]).records)
    assert any("repeat a cell" in note for note in twice.notes)


def test_a_missing_results_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load_results([tmp_path / "nothing.jsonl"])


def test_llc_misses_prefer_a_hardware_count_and_ignore_derived_ratios():
    from fff.analysis import _llc

    no_pmu = {"per_inference": None, "status": "not supported", "reason": "no PMU"}
    simulated = {"per_inference": 5.0, "status": "simulated"}
    assert _llc({"llc-misses": no_pmu, "sim:llc-misses": simulated, "llc-miss-ratio": {"per_inference": 0.1}}) == \
        (5.0, "simulated", None)
    assert _llc({"llc-misses": {"per_inference": 7.0, "status": "ok"}, "sim:llc-misses": simulated}) == \
        (7.0, "measured", None)
    value, source, note = _llc({"llc-misses": no_pmu})
    assert math.isnan(value) and source is None and note == "llc-misses: not supported (no PMU)"


def test_speed_ups_far_from_the_machine_median_are_flagged_not_dropped(results):
    from fff.analysis import suspect_cells

    assert suspect_cells(results.records).empty  # the synthetic speed-ups span 2x to 12x around a median of 5x
    records = results.records.copy()
    hit = (records["target"] == "plain:depth=1,width=0.5") & (records["machine"] == "machine-a")
    records.loc[hit & (records["backend"] == "openvino"), "speedup"] = 500.0
    suspects = suspect_cells(records)
    assert suspects["target"].tolist() == ["plain:depth=1,width=0.5"]
    assert (suspects.iloc[0]["baseline_ms"], suspects.iloc[0]["machine_median"]) == (0.5, 5.0)
    average = headline(records).set_index(["machine", "finding"]).loc[
        ("machine-a", "average speed-up over the native framework")]
    speedups = [500.0, 2.5, 3.5, 2.0, 2.5, 3.5] + [5.0, 5.5, 6.5] * 2 + [12.0, 5.0, 3.0]
    assert average["ratio"] == pytest.approx(float(np.exp(np.mean(np.log(speedups)))))  # still in the mean...
    without = float(np.exp(np.mean(np.log(speedups[1:]))))
    assert f"1 suspect cell(s) among them, geometric mean without them {without:.2f}x" in average["this_machine"]


def test_contended_noisy_and_unchecked_speed_ups_are_left_out_of_every_average_and_counted(results):
    records = results.records.copy()
    machine_a = records["machine"] == "machine-a"
    fast = records["backend"] == "openvino"
    deepest_dw = machine_a & fast & (records["pattern"] == "dw-bottleneck") & (records["depth"] == 4)
    records.loc[deepest_dw & (records["width"] == 1.0), "verdict"] = "contended"
    records.loc[deepest_dw & (records["width"] == 0.5), "verdict"] = "noisy"
    records.loc[machine_a & fast & (records["model"] == "darts"), ["verdict", "speedup"]] = ["unchecked", 3000.0]
    table = speedup_by_pattern(records)
    dw = only(table, machine="machine-a", pattern="dw-bottleneck")
    assert (dw["geomean"], dw["cells"], dw["left_out"], dw["max"]) == pytest.approx(((5.0 * 5.5) ** 0.5, 4, 2, 5.5))
    mine = headline(records)
    mine = mine[mine["machine"] == "machine-a"].set_index("finding")
    kept = [2.0, 2.5, 3.5] * 2 + [5.0, 5.5] * 2 + [5.0, 3.0]
    average = mine.loc["average speed-up over the native framework"]
    assert average["ratio"] == pytest.approx(float(np.exp(np.mean(np.log(kept)))))  # 3000x darts is not in it
    assert "over 12 ok cells" in average["this_machine"]
    assert "left out: 1 contended, 1 noisy, 1 unchecked" in average["this_machine"]
    assert mine.loc["architecture with the largest speed-up", "this_machine"].startswith("mobilenet_v2; darts: not")
