"""Statistics over raw per-iteration samples: robust summaries, the median's confidence
interval, speed-up with a bootstrap interval, and warnings when a measurement is unstable.

Medians, not means, are the headline (as torch.utils.benchmark and pyperf do): latency
distributions are right-skewed by preemption and page faults on shared machines.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["LatencySummary", "summarize", "median_ci", "speedup_with_ci", "instability_warnings"]

Z95 = 1.959963984540054


@dataclass(frozen=True)
class LatencySummary:
    """Milliseconds. ci95_low/high bound the median, not the mean."""

    median: float
    mean: float
    std: float
    min: float
    p90: float
    p99: float
    ci95_low: float
    ci95_high: float
    n: int

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def ci_halfwidth_rel(self) -> float:
        """Half the CI width relative to the median: 0.01 means +-1%."""
        return (self.ci95_high - self.ci95_low) / 2 / self.median if self.median > 0 else math.inf


def median_ci(sorted_values: np.ndarray) -> tuple[float, float]:
    """Distribution-free 95% CI of the median from order statistics (normal approximation
    to the binomial ranks, Conover 1999). Needs no assumption about the latency's shape."""
    n = len(sorted_values)
    if n < 6:  # too few samples for the order statistics to bracket the median at 95%
        return float(sorted_values[0]), float(sorted_values[-1])
    half_width = Z95 * math.sqrt(n) / 2
    low = max(0, int(math.floor(n / 2 - half_width)) - 1)
    high = min(n - 1, int(math.ceil(n / 2 + half_width)))
    return float(sorted_values[low]), float(sorted_values[high])


def summarize(samples_ns) -> LatencySummary:
    """Summary in milliseconds of raw per-iteration latencies in nanoseconds."""
    ms = np.sort(np.asarray(samples_ns, dtype=np.float64)) / 1e6
    if ms.size == 0:
        raise ValueError("no samples to summarize")
    low, high = median_ci(ms)
    return LatencySummary(
        median=float(np.median(ms)),
        mean=float(ms.mean()),
        std=float(ms.std(ddof=1)) if ms.size > 1 else 0.0,
        min=float(ms[0]),
        p90=float(np.percentile(ms, 90)),
        p99=float(np.percentile(ms, 99)),
        ci95_low=low,
        ci95_high=high,
        n=int(ms.size),
    )


def speedup_with_ci(baseline_ns, accelerated_ns, *, resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Speed-up = baseline median / accelerated median, with a percentile-bootstrap 95% CI
    (each side resampled independently, fixed seed so a result is reproducible)."""
    base = np.asarray(baseline_ns, dtype=np.float64)
    accel = np.asarray(accelerated_ns, dtype=np.float64)
    point = float(np.median(base) / np.median(accel))
    rng = np.random.default_rng(seed)
    base_medians = np.median(base[rng.integers(0, base.size, (resamples, base.size))], axis=1)
    accel_medians = np.median(accel[rng.integers(0, accel.size, (resamples, accel.size))], axis=1)
    low, high = np.percentile(base_medians / accel_medians, [2.5, 97.5])
    return point, float(low), float(high)


def instability_warnings(summary: LatencySummary, label: str, *, target_rel: float = 0.01) -> list[str]:
    """pyperf-style warnings: say so when a number should not be trusted at face value."""
    warnings = []
    if summary.mean > 0 and summary.std / summary.mean > 0.10:
        spread = f"std is {100 * summary.std / summary.mean:.0f}% of the mean"
        # A handful of preemptions in a microsecond-scale op inflate the std without moving the
        # median; say which of the two it is.
        if summary.p90 <= 1.10 * summary.median:
            warnings.append(f"{label}: {spread} from a few outliers (p90 within 10% of the median)")
        else:
            warnings.append(f"{label}: {spread}; the machine is noisy")
    if summary.ci_halfwidth_rel > target_rel:
        warnings.append(
            f"{label}: median's 95% CI is +-{100 * summary.ci_halfwidth_rel:.1f}%, wider than the "
            f"+-{100 * target_rel:.1f}% target (time cap reached)"
        )
    if summary.median > 0 and summary.p99 / summary.median > 2.0:
        warnings.append(f"{label}: p99 is {summary.p99 / summary.median:.1f}x the median (outliers)")
    return warnings
