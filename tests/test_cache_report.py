"""The report's cache section on a PMU-less study: LLC figures from simulation where a cell was
simulated and from the model elsewhere, the model's error per pattern, working-set correlations
with n, and the roofline figure."""

import sys

import pytest

from fff.study.config import StudyConfig
from fff.study.sweep import run_study

fakes = sys.modules["study_fakes"]  # loaded by conftest.py
ROOF = {"fma_peak_gflops": 200.0, "gemm_peak_gflops": 150.0, "triad_gbytes_per_s": 20.0, "roof_threads": 2,
        "roof_measured_at": "now"}


def with_cache_fields(target, options, progress=lambda _: None):
    """fake_measure's records plus what fff.profiling adds on a machine without a PMU."""
    records = fakes.fake_measure(target, options, progress)
    for record in records:
        depth = int(target.split("depth=")[1].split(",")[0]) if "depth=" in target else 1
        modelled = 1000.0 * depth
        record["counters"] = {"llc-misses": {"per_inference": None, "status": "not supported", "reason": "no PMU"}}
        record["modelled_counters"] = {"llc-misses": {"per_inference": modelled, "status": "modelled"},
                                       "llc-store-misses": {"per_inference": 0.0, "status": "modelled"}}
        if depth == 1:  # the calibration subset: simulated too, 10% above the model
            record["simulated_counters"] = {"llc-misses": {"per_inference": modelled * 1.1, "status": "simulated"}}
        record["cache_model"] = {"source": "modelled", "ll": {"line": 64, "note": "sysfs"},
                                 "working_set": {"weight_bytes": 1e6 * depth, "working_set_bytes": 1.5e6 * depth}}
        intensity = record["flops"] / (modelled * 64)
        record["roofline"] = {**ROOF, "arithmetic_intensity": intensity, "intensity_source": "modelled",
                              "attained_fraction": record["gflops_per_s"] / min(200.0, intensity * 20.0)}
    return records


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    from fff.report import report

    out = tmp_path_factory.mktemp("cache-report")
    results = out / "results.jsonl"
    run_study(StudyConfig(patterns=("plain", "residual"), depths=(1, 2, 4)), results, measure=with_cache_fields)
    return report([results], out / "report"), results


def test_every_cell_has_an_llc_figure_with_its_source(page):
    from fff.analysis import load_results

    _, results = page
    records = load_results([results]).records
    assert records["llc_misses"].notna().all()
    simulated = records[records["depth"] == 1]
    assert set(simulated["llc_source"]) == {"simulated"}
    # the rest are modelled, scaled by their pattern's simulated cell (1.1x its model)
    modelled = records[records["depth"] > 1]
    assert set(modelled["llc_source"]) == {f"modelled, calibrated by 1 simulated {b} {p} cell (factor 1.10)"
                                           for b in ("torch", "openvino") for p in ("plain", "residual")}
    assert list(modelled["llc_misses"]) == pytest.approx(list(1.1 * modelled["llc_modelled"]))
    assert list(modelled["llc_modelled"]) == pytest.approx(list(1000.0 * modelled["depth"]))


def test_model_error_and_correlations_with_working_set(page):
    from fff.analysis import correlations, load_results
    from fff.cache_analysis import model_error
    from fff.cache_calibration import calibration_validation

    _, results = page
    records = load_results([results]).records
    errors = model_error(records)
    assert set(errors["pattern"]) == {"plain", "residual"} and (errors["cells"] == 1).all()
    assert errors["median_error_pct"].to_numpy() == pytest.approx(100 * (1 / 1.1 - 1))
    checked = calibration_validation(records)
    assert checked["raw_median_pct"].to_numpy() == pytest.approx(100 * (1 / 1.1 - 1))
    assert checked["calibrated_median_pct"].to_numpy() == pytest.approx(0.0, abs=1e-9)  # both patterns 1.1x: exact
    table = correlations(records)
    working = table[(table["against"] == "working_set_bytes") & (table["scope"] == "plain")]
    assert list(working["cells"]) == [3, 3] and list(working["spearman"]) == pytest.approx([1.0, 1.0])


def test_report_has_the_cache_section_and_a_drawn_roofline(page):
    path, _ = page
    text = path.read_text()
    assert "Where the cache figures come from" in text and "The cache model against simulation" in text
    assert "How close each backend comes to the roof" in text
    # calibration and its leave-one-out validation: each depth-1 cell predicted by the other pattern's 1.1
    assert "leave-one-out: 1 by pooled" in text and "Uncalibrated" not in text
    assert "calibrated by 1 simulated torch plain cell (factor 1.10)" in text
    roofline = path.parent / "roofline.png"
    assert roofline.stat().st_size > 20_000  # points and roofs drawn, not the "nothing to show" panel
