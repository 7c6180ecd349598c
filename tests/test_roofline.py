"""The machine's roofs: positive, physically bounded, cached per machine; each record's point."""

import json

import pytest

from fff import roofline


@pytest.fixture(scope="module")
def roof(tmp_path_factory):
    import os

    os.environ["FFF_CACHE_DIR"] = str(tmp_path_factory.mktemp("roof-cache"))
    try:
        measured = roofline.machine_roofline(1)
        cached = roofline.machine_roofline(1)
    finally:
        del os.environ["FFF_CACHE_DIR"]
    return measured, cached


def test_peaks_are_positive_and_below_the_stated_bound(roof):
    measured, _ = roof
    assert measured["fma_peak_flops"] > 0 and measured["gemm_peak_flops"] > 0 and measured["triad_bytes_per_s"] > 0
    bound = measured["threads"] * measured["fma_lanes"] * 2 * roofline.FMA_PIPES_BOUND * roofline.FREQUENCY_BOUND_HZ
    assert measured["fma_peak_flops"] <= bound
    assert measured["fma_isa"] in ("avx512f", "avx2+fma", "scalar")
    assert all(text.startswith("measured") for text in measured["sources"].values())


def test_roof_is_cached_with_the_machine_fingerprint(roof):
    from fff.machine import machine_fingerprint

    measured, cached = roof
    assert cached == measured and cached["fingerprint"] == machine_fingerprint()


def test_fma_peak_is_not_below_what_a_gemm_attains():
    # Measured side by side, best of five each: a real kernel
    # (OpenVINO's GEMM: 2 n^3 FLOPs, no Winograd) cannot beat FMAs that never touch memory.
    from fff import _native

    gemm, fma = [], []
    for _ in range(5):  # interleaved, so a busy spell on the shared machine hits both sides alike
        gemm.append(roofline.gemm_peak(1, n=1024, iterations=3)["per_second"])
        fma.append(_native.fma_peak(1, 0.2)["per_second"])
    assert max(fma) >= max(gemm)


def test_record_point_uses_the_best_traffic_source_and_skips_what_if_caches():
    roof = {"fma_peak_flops": 100e9, "gemm_peak_flops": 80e9, "triad_bytes_per_s": 10e9, "threads": 2,
            "measured_at": "now"}
    modelled = {"llc-misses": {"per_inference": 1000.0}, "llc-store-misses": {"per_inference": 0.0}}
    record = {"flops": 64e6, "gflops_per_s": 20.0, "counters": {"llc-misses": {"per_inference": None}},
              "modelled_counters": modelled, "cache_model": {"ll": {"line": 64, "note": "sysfs"}}}
    point = roofline.roofline_point(record, roof)
    assert point["intensity_source"] == "modelled"
    assert point["arithmetic_intensity"] == pytest.approx(64e6 / 64000)  # 1000 FLOPs per byte: compute bound
    assert point["attainable_gflops"] == pytest.approx(100.0) and point["attained_fraction"] == pytest.approx(0.2)
    record["counters"] = {"llc-misses": {"per_inference": 1e6}, "llc-store-misses": {"per_inference": 0.0}}
    point = roofline.roofline_point(record, roof)  # a PMU count wins over the model
    assert point["intensity_source"] == "measured" and point["attainable_gflops"] == pytest.approx(10.0)
    record["counters"] = {}
    record["cache_model"]["ll"]["note"] = "what-if LL from 'LL=1MiB'"
    point = roofline.roofline_point(record, roof)
    assert point["arithmetic_intensity"] is None and point["attained_fraction"] is None
    assert point["attained_fraction_of_fma_peak"] == pytest.approx(0.2)
    assert point["note"] is None
    record["gflops_per_s"] = 150.0  # above the 100 GFLOP/s roof: said, not hidden
    assert "above the measured FMA peak" in roofline.roofline_point(record, roof)["note"]
    json.dumps(point)
