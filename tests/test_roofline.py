"""The machine's roofs: positive, physically bounded, cached per machine; each record's point."""

import json

import pytest

from fff.explain import roofline


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
    # every roof was measured in metered rounds: how many, and what share of the CPU the kept one got
    assert set(measured["contention"]) == {"fma_peak_flops", "gemm_peak_flops", "triad_bytes_per_s"}
    for account in measured["contention"].values():
        assert 1 <= account["attempts"] <= roofline.ATTEMPTS and account["cpu_share"] > 0
    assert measured["verdict"] == ("contended" if measured["verdict_reason"] else "ok")


def test_roof_is_cached_with_the_machine_fingerprint(roof):
    from fff.measure.machine import machine_fingerprint

    measured, cached = roof
    assert cached == measured and cached["fingerprint"] == machine_fingerprint()


def test_fma_peak_is_not_below_what_a_gemm_attains():
    # A real kernel (OpenVINO's GEMM: 2 n^3 FLOPs, no Winograd) cannot beat FMAs that never touch
    # memory. Short turns of each, alternated, so both see the same spells of a shared machine (a
    # busy SMT sibling halves both; 5 long turns each let one side have the only quiet spell).
    from fff import _native

    gemm_once = roofline.gemm_kernel(1, n=1024, iterations=1)
    gemm, fma = [], []
    for _ in range(20):
        gemm.append(gemm_once()["per_second"])
        fma.append(_native.fma_peak(1, 0.03)["per_second"])
    assert max(fma) >= max(gemm)


def test_record_point_uses_the_best_traffic_source_and_skips_what_if_caches():
    roof = {"fma_peak_flops": 100e9, "gemm_peak_flops": 80e9, "triad_bytes_per_s": 10e9, "threads": 2,
            "measured_at": "now", "verdict": "ok"}
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


def _meter_reading(shares: list[float]):
    """A RoundMeter stand-in whose rounds got ``shares`` of the CPU they asked for, in turn, while
    other processes took a whole CPU (the reading fff.measure.contention would make under load)."""
    from fff.measure.contention import RoundUsage

    readings = iter(shares)

    class Meter:
        def __init__(self, threads):
            self.threads = threads

        def stop(self, inferences):
            share = next(readings)
            return RoundUsage(wall_s=1.0, cpu_s=share * self.threads, threads=self.threads, involuntary_switches=0,
                              inferences=inferences, others_cpus=1.0, steal_cpus=0.0)
    return Meter


@pytest.fixture
def fast_kernels(monkeypatch, tmp_path):
    """Roof kernels that return at once (the rounds' contention is what is under test), a fresh cache."""
    runs = []

    def kernels(threads, ll_bytes):
        def kernel(value):
            def run():
                runs.append(value)
                return {"per_second": value * (1 + len(runs) / 100), "isa": "avx2+fma", "lanes": 8, "source": "fake"}
            return run
        return {"fma_peak_flops": kernel(100e9), "triad_bytes_per_s": kernel(10e9),
                "gemm_peak_flops": kernel(80e9)}

    monkeypatch.setattr(roofline, "_kernels", kernels)
    monkeypatch.setattr(roofline, "RETRY_PAUSE_S", 0.0)
    monkeypatch.setattr(roofline, "_contended", {})
    monkeypatch.setenv("FFF_CACHE_DIR", str(tmp_path))
    return runs


def test_a_contended_round_is_measured_again_and_a_clean_retry_is_cached(fast_kernels):
    # fma: contended once, then clean; triad and gemm clean at once
    meter = _meter_reading([0.4, 0.97, 0.95, 0.99])
    roof = roofline.machine_roofline(2, measure=lambda t: roofline.measure_roofline(t, 1 << 20, meter=meter))
    assert len(fast_kernels) == 4
    assert roof["verdict"] == "ok" and roof["verdict_reason"] == ""
    assert roof["contention"]["fma_peak_flops"]["attempts"] == 2 and roof["contention"]["fma_peak_flops"]["problem"] is None
    assert roof["contention"]["fma_peak_flops"]["cpu_share"] == pytest.approx(0.97)
    assert roof["fma_peak_flops"] == pytest.approx(100e9 * 1.02)  # the clean round's value, not the contended one's
    assert roofline._cache_path(2).exists()
    assert roofline.machine_roofline(2, measure=lambda t: pytest.fail("a clean cached roof is measured again")) == roof


def test_a_roof_contended_in_every_round_is_not_cached_and_says_why(fast_kernels):
    meter = _meter_reading([0.3, 0.5, 0.4] + [1.0, 1.0])  # fma contended three times; triad, gemm clean
    roof = roofline.machine_roofline(2, measure=lambda t: roofline.measure_roofline(t, 1 << 20, meter=meter))
    account = roof["contention"]["fma_peak_flops"]
    assert roof["verdict"] == "contended" and account["attempts"] == roofline.ATTEMPTS
    # the fastest contended round is kept (the fake kernels speed up 1% a run: the third), with its reading
    assert account["problem"] == "other-processes" and account["cpu_share"] == pytest.approx(0.4)
    assert roof["fma_peak_flops"] == pytest.approx(100e9 * 1.03)
    assert "fma_peak_flops: contended in 3 of 3 rounds" in roof["verdict_reason"] and "40%" in roof["verdict_reason"]
    assert not roofline._cache_path(2).exists()
    # reused in this process for a while (a study does not pay the retries per cell), then measured again
    assert roofline.machine_roofline(2, measure=lambda t: pytest.fail("measured again at once")) is roof
    fresh = roofline.machine_roofline(2, refresh=True, measure=lambda t: {**roof, "verdict": "ok"})
    assert fresh["verdict"] == "ok" and roofline._cache_path(2).exists()


@pytest.mark.parametrize("stale", [{"schema": "fff.explain.roofline/1"}, {"threads": 1}, {"verdict": "contended"}],
                         ids=["older-schema", "other-threads", "contended"])
def test_a_cached_roof_from_older_fff_other_threads_or_contention_is_measured_again(fast_kernels, stale):
    good = {"schema": roofline.SCHEMA, "threads": 2, "verdict": "ok", "fma_peak_flops": 1.0}
    path = roofline._cache_path(2)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**good, **stale}))
    measured = roofline.machine_roofline(2, measure=lambda t: {**good, "fma_peak_flops": 2.0})
    assert measured["fma_peak_flops"] == 2.0 and json.loads(path.read_text())["fma_peak_flops"] == 2.0


def test_a_point_under_a_contended_roof_gives_no_fraction_and_one_above_the_roof_says_so():
    roof = {"fma_peak_flops": 100e9, "gemm_peak_flops": 80e9, "triad_bytes_per_s": 10e9, "threads": 2,
            "measured_at": "now", "verdict": "contended", "verdict_reason": "fma_peak_flops: contended in 3 of 3 rounds"}
    record = {"flops": 64e6, "gflops_per_s": 20.0, "cache_model": {"ll": {"line": 64, "note": "sysfs"}},
              "modelled_counters": {"llc-misses": {"per_inference": 1e5}}}  # 6.4 MB: 10 FLOPs/byte, 100 GFLOP/s
    point = roofline.roofline_point(record, roof)
    assert point["roof_verdict"] == "contended" and point["attained_fraction"] is None
    assert point["attained_fraction_of_fma_peak"] is None
    assert point["attained_fraction_against_contended_roof"] == pytest.approx(0.2)
    assert point["ll_bytes_per_inference"] == pytest.approx(6.4e6) and "not trustworthy" in point["note"]
    assert "contended in 3 of 3 rounds" in point["note"]
    record["modelled_counters"]["llc-misses"]["per_inference"] = 1e6  # 1 FLOP/byte: 10 GFLOP/s attainable
    point = roofline.roofline_point(record, {**roof, "verdict": "ok", "verdict_reason": ""})
    assert point["attained_fraction"] == pytest.approx(2.0)
    assert point["note"].startswith("above the measured roof (2.00 of") and "modelled LL traffic" in point["note"]
    unchecked = roofline.roofline_point(record, {k: v for k, v in roof.items() if k not in ("verdict", "verdict_reason")})
    assert unchecked["roof_verdict"] == "unchecked" and unchecked["attained_fraction"] is None
