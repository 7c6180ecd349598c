"""The cache model calibrated by a study's simulated cells: the factor, its leave-one-out
validation per pattern, the labels every calibrated figure carries, and a failed simulation never
read as 0."""

import numpy as np
import pandas as pd
import pytest

from fff.cache_analysis import cache_columns, record_llc
from fff.cache_calibration import calibrate, calibration_factors, calibration_validation
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


# torch: three simulated cells, ratios simulated / modelled 1.2 and 1.5 (plain) and 2.0 (dw-bottleneck);
# openvino: none simulated.
STUDY = [row("torch", "plain", 10_000, 12_000), row("torch", "plain", 20_000, 30_000, depth=2),
         row("torch", "dw-bottleneck", 10_000, 20_000), row("torch", "dw-bottleneck", 1_000, depth=4),
         row("openvino", "plain", 8_000), row("openvino", "dw-bottleneck", 4_000)]


def test_the_factor_is_the_median_ratio_and_calibrated_figures_say_so():
    out = calibrate(frame(STUDY))
    factors = calibration_factors(frame(STUDY))
    assert list(factors["scope"]) == ["all patterns"] and list(factors["cells"]) == [3]
    assert factors["factor"].iloc[0] == pytest.approx(1.5)
    assert (factors["ratio_min"].iloc[0], factors["ratio_max"].iloc[0]) == pytest.approx((1.2, 2.0))
    modelled = out[(out["backend"] == "torch") & (out["depth"] == 4)].iloc[0]
    assert modelled["llc_misses"] == pytest.approx(1_500) and modelled["llc_calibrated"] == pytest.approx(1_500)
    assert modelled["llc_modelled"] == 1_000  # the raw value stays beside the calibrated one
    assert modelled["llc_source"] == "modelled, calibrated by 3 simulated torch cells (factor 1.50)"
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
    # each cell predicted by the median of the other two ratios: 1.75 for 1.2, 1.6 for 1.5, 1.35 for 2.0
    assert plain["calibrated_min_pct"] == pytest.approx(100 * (1.6 / 1.5 - 1))
    assert plain["calibrated_max_pct"] == pytest.approx(100 * (1.75 / 1.2 - 1))
    assert dw["calibrated_median_pct"] == pytest.approx(100 * (1.35 / 2.0 - 1))
    assert dw["raw_median_pct"] == pytest.approx(-50.0)
    assert plain["validation"] == "leave-one-out (2 of 2 predicted)"
    assert "openvino" not in set(table["backend"])


def test_a_pattern_with_enough_simulated_cells_gets_its_own_factor():
    rows = [row("torch", "dw-bottleneck", 10_000, s) for s in (20_000, 22_000, 24_000)]
    rows += [row("torch", "plain", 10_000, 11_000), row("torch", "dw-bottleneck", 5_000, depth=8),
             row("torch", "plain", 5_000, depth=8)]
    factors = calibration_factors(frame(rows)).set_index("scope")
    assert factors.loc["dw-bottleneck", "factor"] == pytest.approx(2.2) and factors.loc["dw-bottleneck", "cells"] == 3
    assert factors.loc["all patterns", "factor"] == pytest.approx(2.1)  # median of 1.1, 2.0, 2.2, 2.4
    out = calibrate(frame(rows)).set_index("pattern")
    deep = out[out["depth"] == 8]
    assert deep.loc["dw-bottleneck", "llc_misses"] == pytest.approx(11_000)
    assert deep.loc["dw-bottleneck", "llc_source"] == ("modelled, calibrated by 3 simulated torch dw-bottleneck "
                                                       "cells (factor 2.20)")
    assert deep.loc["plain", "llc_misses"] == pytest.approx(10_500)  # the pooled factor
    # leave-one-out: a dw-bottleneck cell's own factor would rest on 2 cells, so it falls back to the pooled
    # median of the other three ratios
    table = calibration_validation(frame(rows)).set_index("pattern")
    dw = table.loc["dw-bottleneck"]
    assert (dw["calibrated_min_pct"], dw["calibrated_max_pct"]) == pytest.approx((100 * (2.0 / 2.4 - 1), 100 * (2.2 / 2.0 - 1)))


def test_one_simulated_cell_calibrates_but_validates_nothing():
    rows = [row("openvino", "plain", 10_000, 11_000), row("openvino", "plain", 30_000, depth=2)]
    table = calibration_validation(frame(rows))
    assert table["cells"].tolist() == [1] and table["calibrated_median_pct"].isna().all()
    assert table["validation"].iloc[0].startswith("none")
    assert calibrate(frame(rows))["llc_misses"].tolist() == pytest.approx([11_000, 33_000])


def test_cells_below_the_floor_or_where_the_model_fits_do_not_set_the_factor():
    rows = [row("openvino", "plain", 0, 125), row("openvino", "plain", 10_000, 12_000, depth=2),
            row("openvino", "plain", 20_000, depth=4)]
    assert calibration_factors(frame(rows))["cells"].tolist() == [1]
    assert calibrate(frame(rows))["llc_misses"].tolist() == pytest.approx([125, 12_000, 24_000])
    table = calibration_validation(frame(rows))
    assert table["cells"].tolist() == [2]
    # 125 lines missed, against the 1,000-line floor, and -1/6; only the fitting cell had a factor to be predicted by
    assert (table["raw_min_pct"].iloc[0], table["raw_max_pct"].iloc[0]) == pytest.approx((-100 / 6, -12.5))
    assert table["calibrated_median_pct"].iloc[0] == pytest.approx(-12.5)
    assert table["validation"].iloc[0] == "leave-one-out (1 of 2 predicted)"


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
    assert calibration_factors(frame(rows))["cells"].tolist() == [1]
    assert calibration_validation(frame(rows))["cells"].tolist() == [1]
    assert calibrate(frame(rows))["llc_misses"].iloc[0] == pytest.approx(7_500)


def test_the_report_says_uncalibrated_and_the_bench_error_where_nothing_was_simulated():
    rows = [row("torch", "plain", 10_000), row("openvino", "plain", 8_000)]
    text = cache_section_html(calibrate(frame(rows)), _table)
    assert "Uncalibrated:" in text and "no cell of openvino, torch was simulated" in text
    assert "-19% to -46%" in text and "-5% to -20%" in text and "bench_cache_model.py" in text
    assert "no cell was both simulated and modelled" in text


def test_the_report_has_the_calibration_and_validation_tables():
    text = cache_section_html(calibrate(frame(STUDY)), _table)
    assert "leave-one-out (2 of 2 predicted)" in text and "calibrated median pct" in text.replace("_", " ")
    assert "raw median pct" in text and "all patterns" in text
    assert "Uncalibrated:</b> no cell of openvino was simulated" in text and "-5% to -20%" in text
    assert "-19% to -46%" not in text  # torch is calibrated here
