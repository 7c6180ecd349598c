"""Statistics: known answers on constructed samples."""

import numpy as np
import pytest

from fff.measure.stats import instability_warnings, median_ci, speedup_with_ci, summarize


def test_summary_of_known_samples():
    summary = summarize(np.arange(1, 101) * 1e6)  # 1..100 ms
    assert summary.n == 100
    assert summary.median == pytest.approx(50.5)
    assert summary.mean == pytest.approx(50.5)
    assert summary.min == 1.0
    assert summary.p90 == pytest.approx(90.1)
    assert summary.p99 == pytest.approx(99.01)
    assert summary.std == pytest.approx(np.std(np.arange(1, 101), ddof=1))
    assert summary.ci95_low < summary.median < summary.ci95_high


def test_median_ci_covers_the_true_median_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    true_median = np.log(2) / 1.0  # median of Exp(1), a skewed distribution like latencies
    hits = 0
    for _ in range(1000):
        low, high = median_ci(np.sort(rng.exponential(1.0, 200)))
        hits += low <= true_median <= high
    assert 0.93 <= hits / 1000 <= 0.98


def test_median_ci_of_few_samples_is_their_range():
    assert median_ci(np.array([3.0, 4.0, 9.0])) == (3.0, 9.0)


def test_speedup_is_the_ratio_of_medians_with_a_ci_around_it():
    rng = np.random.default_rng(1)
    baseline = rng.lognormal(np.log(10e6), 0.05, 400)
    accelerated = rng.lognormal(np.log(2e6), 0.05, 400)
    point, low, high = speedup_with_ci(baseline, accelerated)
    assert point == pytest.approx(np.median(baseline) / np.median(accelerated))
    assert low < point < high
    assert 4.8 < low and high < 5.2
    assert speedup_with_ci(baseline, accelerated) == (point, low, high)  # fixed seed: reproducible


def test_noisy_measurement_warns_and_a_steady_one_does_not():
    steady = summarize(np.random.default_rng(2).normal(10e6, 0.05e6, 2000))
    assert instability_warnings(steady, "torch") == []
    noisy = summarize(np.concatenate([np.full(50, 10e6), np.full(50, 30e6)]))
    warnings = instability_warnings(noisy, "torch")
    assert any("std is" in w for w in warnings)
    assert any("CI is" in w for w in warnings)


def test_a_few_outliers_are_told_apart_from_a_noisy_machine():
    outliers = summarize(np.concatenate([np.full(995, 10e3), np.full(5, 5e6)]))  # 10 us op, 5 ms preemptions
    [std_warning] = [w for w in instability_warnings(outliers, "openvino") if "std is" in w]
    assert "from a few outliers" in std_warning and "noisy" not in std_warning
    noisy = summarize(np.concatenate([np.full(50, 10e6), np.full(50, 30e6)]))
    [std_warning] = [w for w in instability_warnings(noisy, "torch") if "std is" in w]
    assert std_warning.endswith("the machine is noisy")
