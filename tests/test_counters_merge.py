"""Counter readings from the profiler's rounds merged into one."""

import pytest

from fff.measure.counters import CounterResult, CounterResults, merge


def rounds(*readings):
    return [CounterResults({name: CounterResult(name, total, status, reason, status == "scaled",
                                                fraction, inferences)
                            for name, (total, status, reason, fraction) in reading.items()}, inferences)
            for reading, inferences in readings]


def test_totals_and_inferences_add_up():
    merged = merge(rounds(({"task-clock": (100.0, "ok", "", 1.0)}, 10), ({"task-clock": (50.0, "ok", "", 1.0)}, 5)))
    assert merged["task-clock"].total == 150.0
    assert merged.inferences == 15
    assert merged["task-clock"].per_inference() == pytest.approx(10.0)
    assert merged["task-clock"].status == "ok"


def test_a_scaled_round_makes_the_merged_value_scaled():
    merged = merge(rounds(({"cycles": (100.0, "ok", "", 1.0)}, 1), ({"cycles": (80.0, "scaled", "multiplexed", 0.5)}, 1)))
    assert merged["cycles"].status == "scaled" and merged["cycles"].scaled
    assert merged["cycles"].running_fraction == 0.5


def test_a_round_that_could_not_count_is_never_summed_as_zero():
    merged = merge(rounds(({"llc-misses": (7.0, "ok", "", 1.0)}, 1),
                          ({"llc-misses": (None, "not counted", "never scheduled", 0.0)}, 1)))
    assert merged["llc-misses"].total is None
    assert merged["llc-misses"].per_inference() is None
    assert merged["llc-misses"].status == "not counted"
    assert merged.as_record()["llc-misses"]["per_inference"] is None
