"""The cache model calibrated by a study's simulated cells: the factor, its leave-one-out
validation per pattern, the labels every calibrated figure carries, and a failed simulation never
read as 0."""

import numpy as np
import pandas as pd
import pytest

from fff.explain.cache_analysis import cache_columns, record_llc
from fff.explain.cache_calibration import calibrate, calibration_factors, calibration_status, calibration_validation
from fff.report.cache_section import cache_section_html
from fff.report.html import _table


def row(backend, pattern, modelled, simulated=None, depth=1):
    return {"machine": "m", "backend": backend, "kind": "pattern", "pattern": pattern, "depth": depth,
            "llc_modelled": modelled, "llc_simulated": np.nan if simulated is None else simulated,
            "llc_misses": modelled if simulated is None else simulated,
            "llc_source": "modelled" if simulated is None else "simulated", "intensity_source": "modelled",
            "attained_fraction": np.nan}


def frame(rows):
    return pd.DataFrame(rows)


# torch: three simulated cells, ratios simulated / modelled 1.2 and 1.5 (plain) and 2.0 (dw-bottleneck),
# three modelled only; openvino: none simulated.
STUDY = [row("torch", "plain", 10_000, 12_000), row("torch", "plain", 20_000, 30_000, depth=2),
         row("torch", "dw-bottleneck", 10_000, 20_000), row("torch", "dw-bottleneck", 1_000, depth=4),
         row("torch", "plain", 1_000, depth=4), row("torch", "residual", 1_000, depth=4),
         row("openvino", "plain", 8_000), row("openvino", "dw-bottleneck", 4_000)]


def test_factors_per_pattern_and_pooled_and_calibrated_figures_say_so():
    out = calibrate(frame(STUDY))
    factors = calibration_factors(frame(STUDY)).set_index("scope")
    assert factors["cells"].to_dict() == {"all patterns": 3, "dw-bottleneck": 1, "plain": 2}
    assert factors["factor"].to_dict() == pytest.approx({"all patterns": 1.5, "dw-bottleneck": 2.0, "plain": 1.35})
    assert (factors.loc["all patterns", "ratio_min"], factors.loc["all patterns", "ratio_max"]) == pytest.approx((1.2, 2.0))
    deep = out[(out["backend"] == "torch") & (out["depth"] == 4)].set_index("pattern")
    assert deep["llc_misses"].to_dict() == pytest.approx({"dw-bottleneck": 2_000, "plain": 1_350, "residual": 1_500})
    assert deep["llc_calibrated"].to_dict() == pytest.approx(deep["llc_misses"].to_dict())
    assert (deep["llc_modelled"] == 1_000).all()  # the raw value stays beside the calibrated one
    assert deep["llc_source"].to_dict() == {
        "dw-bottleneck": "modelled, calibrated by 1 simulated torch dw-bottleneck cell (factor 2.00)",
        "plain": "modelled, calibrated by 2 simulated torch plain cells (factor 1.35)",
        "residual": "modelled, calibrated by 3 simulated torch cells (factor 1.50)"}
    simulated = out[(out["backend"] == "torch") & out["llc_simulated"].notna()]
    assert set(simulated["llc_source"]) == {"simulated"} and list(simulated["llc_misses"]) == [12_000, 30_000, 20_000]
    openvino = out[out["backend"] == "openvino"]
    assert set(openvino["llc_source"]) == {"modelled"} and openvino["llc_calibrated"].isna().all()
    assert list(openvino["llc_misses"]) == [8_000, 4_000]


def test_leave_one_out_error_per_pattern():
    table = calibration_validation(frame(STUDY)).set_index("pattern")
    plain, dw = table.loc["plain"], table.loc["dw-bottleneck"]
    assert plain["cells"] == 2 and dw["cells"] == 1
    # raw: 1/1.2 - 1 and 1/1.5 - 1
    assert (plain["raw_median_pct"], plain["raw_min_pct"], plain["raw_max_pct"]) == pytest.approx((-25.0, -100 / 3, -100 / 6))
    # each plain cell predicted by the other plain cell's ratio: 1.5 for 1.2, 1.2 for 1.5
    assert (plain["calibrated_min_pct"], plain["calibrated_max_pct"]) == pytest.approx((-20.0, 25.0))
    assert plain["calibrated_median_pct"] == pytest.approx(2.5)
    # the only dw-bottleneck cell: by the pooled median of the others (1.35), as an unsimulated pattern would be
    assert dw["calibrated_median_pct"] == pytest.approx(100 * (1.35 / 2.0 - 1))
    assert dw["raw_median_pct"] == pytest.approx(-50.0)
    assert plain["validation"] == "leave-one-out: 2 by own pattern" and dw["validation"] == "leave-one-out: 1 by pooled"
    assert "openvino" not in set(table["backend"])


def test_the_pooled_factor_is_a_median_robust_to_one_odd_cell():
    rows = [row("torch", "dw-bottleneck", 10_000, s) for s in (20_000, 22_000, 24_000)]
    rows += [row("torch", "plain", 10_000, 110_000), row("torch", "residual", 5_000, depth=8)]
    factors = calibration_factors(frame(rows)).set_index("scope")
    assert factors.loc["all patterns", "factor"] == pytest.approx(2.3)  # median of 2.0, 2.2, 2.4, 11: not the mean 4.4
    assert calibrate(frame(rows)).set_index("pattern").loc["residual", "llc_misses"] == pytest.approx(11_500)
    table = calibration_validation(frame(rows)).set_index("pattern")
    dw = table.loc["dw-bottleneck"]  # each predicted by the other two dw-bottleneck cells
    assert (dw["calibrated_min_pct"], dw["calibrated_max_pct"]) == pytest.approx((100 * (2.1 / 2.4 - 1), 100 * (2.3 / 2.0 - 1)))
    assert table.loc["plain", "calibrated_median_pct"] == pytest.approx(100 * (2.2 / 11 - 1))


def test_one_simulated_cell_calibrates_but_validates_nothing():
    rows = [row("openvino", "plain", 10_000, 11_000), row("openvino", "plain", 30_000, depth=2)]
    table = calibration_validation(frame(rows))
    assert table["cells"].tolist() == [1] and table["calibrated_median_pct"].isna().all()
    assert table["validation"].iloc[0].startswith("none")
    assert calibrate(frame(rows))["llc_misses"].tolist() == pytest.approx([11_000, 33_000])
    rows[1]["llc_source"] = "modelled (what-if LL)"  # fff.explain.cache_analysis.record_llc's mark stays
    assert calibrate(frame(rows))["llc_source"].iloc[1] == ("modelled (what-if LL), calibrated by 1 simulated openvino "
                                                            "plain cell (factor 1.10)")


def test_cells_below_the_floor_or_where_the_model_fits_do_not_set_the_factor():
    rows = [row("openvino", "plain", 0, 125), row("openvino", "plain", 10_000, 12_000, depth=2),
            row("openvino", "plain", 20_000, depth=4)]
    assert calibration_factors(frame(rows))["cells"].tolist() == [1, 1]  # pooled, and plain's own
    assert calibrate(frame(rows))["llc_misses"].tolist() == pytest.approx([125, 12_000, 24_000])
    table = calibration_validation(frame(rows))
    assert table["cells"].tolist() == [2]
    # 125 lines missed, against the 1,000-line floor, and -1/6; only the fitting cell had a factor to be predicted by
    assert (table["raw_min_pct"].iloc[0], table["raw_max_pct"].iloc[0]) == pytest.approx((-100 / 6, -12.5))
    assert table["calibrated_median_pct"].iloc[0] == pytest.approx(-12.5)
    assert table["validation"].iloc[0] == "leave-one-out: 1 by own pattern (1 not predicted)"


@pytest.mark.parametrize("simulation", [
    {"simulated_counters": {"llc-misses": {"per_inference": None, "status": "error", "reason": "valgrind died"}}},
    {"simulated_counters": {"llc-misses": {"per_inference": 0.0, "status": "error"}}},
    {"simulated_counters": {"llc-misses": {"per_inference": 0.0, "status": "simulated"}},
     "simulation": {"status": "error", "error": "timed out"}},
])
def test_a_failed_simulation_is_no_cell_never_zero(simulation):
    record = {"modelled_counters": {"llc-misses": {"per_inference": 5_000.0, "status": "modelled"}}, **simulation}
    assert np.isnan(cache_columns(record)["llc_simulated"])
    value, source, _ = record_llc(record, (np.nan, None, "no PMU"))
    assert (value, source) == (5_000.0, "modelled")
    rows = [{**row("torch", "plain", 5_000), "llc_simulated": cache_columns(record)["llc_simulated"]},
            row("torch", "plain", 10_000, 15_000, depth=2)]
    assert calibration_factors(frame(rows))["cells"].tolist() == [1, 1]  # pooled, and plain's own
    assert calibration_validation(frame(rows))["cells"].tolist() == [1]
    assert calibrate(frame(rows))["llc_misses"].iloc[0] == pytest.approx(7_500)


def test_the_report_says_uncalibrated_and_the_bench_error_where_nothing_was_simulated():
    rows = [row("torch", "plain", 10_000), row("openvino", "plain", 8_000)]
    text = cache_section_html(calibrate(frame(rows)), _table)
    assert "Uncalibrated</b>" in text and "no cell of openvino was simulated" in text
    assert "no cell of torch was simulated" in text
    assert "-19% to -46%" in text and "-5% to -20%" in text and "bench_cache_model.py" in text
    assert "No cell was both simulated and modelled" in text and "leave-one-out" not in text


def test_the_report_has_the_calibration_and_validation_tables():
    text = cache_section_html(calibrate(frame(STUDY)), _table)
    assert "leave-one-out: 2 by own pattern" in text and "calibrated median pct" in text.replace("_", " ")
    assert "raw median pct" in text and "all patterns" in text
    assert "modelled, calibrated by 2 simulated torch plain cells (factor 1.35)" in text  # the sources table
    assert "no cell of openvino was simulated: its 2 modelled figures are the raw model" in text
    assert "3 cell(s) of torch simulated, 3 fitted on" in text and "-5% to -20%" in text
    assert "-19% to -46%" not in text  # torch is calibrated here
    assert "where that is modelled it is the raw model, not calibrated" in text  # the roofline's intensity


def test_simulated_cells_none_of_which_can_be_fitted_are_said_with_the_counts_and_the_floor():
    """The study on a 260 MiB LL: every calibration cell fits, the model says 0, the simulation sees the
    runtime's and the interpreter's own lines (about 125 for OpenVINO, 1,000 for PyTorch)."""
    rows = ([row("openvino", "plain", 0, 120 + d, depth=d) for d in (1, 2, 3)]
            + [row("torch", "plain", 0, 980 + 10 * d, depth=d) for d in (1, 2, 3)]
            + [row(b, "plain", 0, depth=4) for b in ("openvino", "torch")])
    status = calibration_status(frame(rows)).set_index("backend")
    assert status.loc["openvino", ["modelled", "simulated", "fitted", "model_zero", "under_floor"]].tolist() == [4, 3, 0, 3, 3]
    assert status.loc["torch", ["simulated", "fitted", "model_zero", "under_floor"]].tolist() == [3, 0, 3, 1]
    assert not status["calibrated"].any()
    text = cache_section_html(calibrate(frame(rows)), _table)
    assert "was simulated" not in text.replace("were simulated", "")  # never "no cell was simulated"
    assert ("3 cell(s) of torch were simulated, none could be fitted: the model is 0 in 3 (their working sets fit "
            "the LL), the simulation saw fewer than 1,000 lines in 1 (simulated 990 to 1,010 lines") in text
    assert "The model&#x27;s floor" in text or "The model's floor" in text
    assert "openvino: median 122 lines (121 to 123, 3 cell(s))" in text
    validation = calibration_validation(frame(rows)).set_index("backend")
    # -100%: the model's 0 against what the simulation saw (990 lines against the 1,000-line floor: -99%)
    assert (validation.loc["torch", "raw_min_pct"], validation.loc["torch", "raw_max_pct"]) == pytest.approx((-100, -99))
    assert validation.loc["torch", "reading"] == (
        "1 of 3: model 0 (the working set fits the LL) where the simulation saw under 1,000 lines: cold, instruction "
        "and interpreter misses only, which the tensor model does not count; not comparable; 2 of 3: model 0 (the "
        "working set fits the LL) where the simulation saw more: misses the tensor model does not count (code, the "
        "runtime's and the interpreter's data, first touches)")
    assert validation.loc["openvino", "reading"].startswith("3 of 3: model 0")
    assert "reading 1:" in text
