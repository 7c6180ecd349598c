"""The report's cache section on a PMU-less study: LLC figures from simulation where a cell was
simulated and from the model elsewhere, the model's error per pattern, working-set correlations
with n, and the roofline figure."""

import sys

import pytest

from fff.study.config import StudyConfig
from fff.study.sweep import run_study

fakes = sys.modules["study_fakes"]  # loaded by conftest.py
ROOF = {"fma_peak_gflops": 200.0, "gemm_peak_gflops": 150.0, "triad_gbytes_per_s": 20.0, "roof_threads": 2,
        "roof_measured_at": "now", "roof_verdict": "ok"}


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
    from fff.explain.cache_analysis import model_error
    from fff.explain.cache_calibration import calibration_validation

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


def _roof_rows(verdict: str, openvino_bytes: float):
    """Two cells, PyTorch and OpenVINO each, under a 180 GFLOP/s, 12 GB/s roof (ridge 15 FLOPs/byte);
    the second cell's OpenVINO side moves ``openvino_bytes`` per inference."""
    import pandas as pd

    rows = []
    for cell, (flops, torch_bytes, openvino) in enumerate([(3e8, 2e7, 1e7), (6e8, 3e7, openvino_bytes)]):
        for backend, moved, gflops in (("torch", torch_bytes, 10.0), ("openvino", openvino, 60.0)):
            rows.append({"cell_id": f"c{cell}", "backend": backend, "flops": flops, "gflops_per_s": gflops,
                         "arithmetic_intensity": flops / max(moved, 1.0), "intensity_source": "modelled",
                         "attained_fraction": gflops / min(180.0, 12.0 * flops / max(moved, 1.0)),
                         "fma_peak_gflops": 180.0, "gemm_peak_gflops": 120.0, "triad_gbytes_per_s": 12.0,
                         "roof_verdict": verdict})
    return pd.DataFrame(rows)


def test_an_ll_resident_point_does_not_stretch_the_roofline_axis(tmp_path):
    from fff.report.cache_section import intensity_axis, roofline_figure

    rows = _roof_rows("ok", openvino_bytes=0.0)  # the model fits the LL: 6e8 FLOPs per byte
    left, right = intensity_axis(rows["arithmetic_intensity"], ridge=180.0 / 12.0)
    assert right == pytest.approx(1500.0) and left == pytest.approx(1.5)  # two decades past the ridge, not 1e8
    assert (rows["arithmetic_intensity"] > right).sum() == 1
    quiet = _roof_rows("ok", openvino_bytes=3e6)  # 200 FLOPs/byte: everything fits, three times the largest
    assert intensity_axis(quiet["arithmetic_intensity"], 15.0)[1] == pytest.approx(600.0)
    assert roofline_figure(rows, tmp_path / "roofline.png").stat().st_size > 20_000


def test_the_cache_section_withholds_fractions_under_an_untrusted_roof_and_counts_points_above_it():
    from fff.report.cache_section import cache_section_html
    from fff.report.html import _table

    records = _roof_rows("contended", openvino_bytes=3e6).assign(llc_source="modelled", llc_simulated=float("nan"),
                                                                 llc_modelled=1e5, machine="m", pattern="plain")
    records.loc[records["roof_verdict"] == "contended", "attained_fraction"] = float("nan")  # as fff.explain.roofline leaves it
    text = cache_section_html(records, _table)
    assert "The roof of 4 record(s) is not trustworthy" in text and "above roof" not in text
    assert "modelled" in text and "Points per backend and source" in text
    # under a trusted roof every fraction is below 1 (the largest: OpenVINO, 60 of 180 GFLOP/s) until one is not
    trusted = _roof_rows("ok", openvino_bytes=3e6).assign(llc_source="modelled", llc_simulated=float("nan"),
                                                          llc_modelled=1e5, machine="m", pattern="plain")
    assert trusted["attained_fraction"].max() == pytest.approx(1 / 3)
    text = cache_section_html(trusted, _table)
    assert "not trustworthy" not in text and "above roof" in text and "points whose GFLOP/s exceed" not in text
    trusted.loc[0, "attained_fraction"] = 1.4
    assert "points whose GFLOP/s exceed the roof" in cache_section_html(trusted, _table)


def test_the_roofline_title_names_each_traffic_source_briefly():
    import pandas as pd

    from fff.report.cache_section import _source_counts

    rows = pd.DataFrame({"intensity_source": [
        "simulated (valgrind's virtual CPU (AVX2, no AVX-512), kernels capped at SSE41)",
        "simulated (valgrind's virtual CPU (AVX2, no AVX-512), kernels capped at SSE41)",
        "simulated (valgrind's virtual CPU (AVX2, no AVX-512))", "modelled", None]})
    assert _source_counts(rows) == "modelled 1, simulated 1, simulated (SSE41 cap) 2, unknown 1"
