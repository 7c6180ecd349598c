"""The orchestration above the stacks, run with a fake stack of known latency (tests/plugins):
rounds interleave, records and speed-ups follow from the samples, verdicts are given, and a study
runs, with no OpenVINO involved."""

import json
from pathlib import Path

import numpy as np
import pytest

from fff.measure.contention import SETTLE_POLL_S
from fff.profiling import ProfileOptions, profile_target

TINY = "plain:depth=1,width=0.25,resolution=32"
FAKE = "fake_backend:FakeBackend"
QUICK = dict(threads=1, max_seconds=3, min_rounds=2, warmup=1, cache_model=False, roofline=False)


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).with_name("plugins")))
    monkeypatch.setenv("FFF_FAKE_LATENCY_US", "300")
    return FAKE


def test_a_fake_stack_is_profiled_beside_the_baseline_like_any_other(fake):
    torch_record, fake_record = profile_target(TINY, ProfileOptions(backends=("torch", fake), **QUICK))
    assert (torch_record["backend"], fake_record["backend"]) == ("torch", fake)
    assert fake_record["config"] == {"threads": 1, "latency_ns": 300_000}
    assert fake_record["latency_ms"]["min"] >= 0.3  # it spins at least as long as asked
    assert fake_record["parity"]["ok"] and fake_record["parity"]["max_rel_err"] == 0.0  # the baseline's own output
    assert fake_record["parity"]["tolerance"] == 1e-4  # f32's
    # The speed-up is the ratio of the two medians, inside its own CI.
    ratio = torch_record["latency_ms"]["median"] / fake_record["latency_ms"]["median"]
    assert fake_record["speedup"] == pytest.approx(ratio, rel=1e-6)
    low, high = fake_record["speedup_ci95"]
    assert low <= fake_record["speedup"] <= high
    assert torch_record["speedup"] is None and torch_record["parity"] is None
    for record in (torch_record, fake_record):
        assert record["verdict"] in ("ok", "noisy", "contended") and (record["verdict"] == "ok") != bool(record["verdict_reason"])
        # every round was answered after the worker's threads went quiet (or the wait's cap), and says so
        tails = [r["tail"] for r in record["contention"]["rounds"]]
        assert tails and all(t["ms"] >= 1e3 * SETTLE_POLL_S and isinstance(t["settled"], bool) for t in tails)
        assert record["contention"]["tail_ms_median"] >= 1e3 * SETTLE_POLL_S
    order = fake_record["interleaving"]["order"]
    pairs = [order[i:i + 2] for i in range(0, len(order) - 1, 2)]
    assert pairs[0] == ["torch", fake] and (len(pairs) < 2 or pairs[1] == [fake, "torch"])  # A B, B A
    assert len(fake_record["samples_ns"]) >= 2 * 5  # min_rounds rounds of at least 5 iterations


def test_a_fake_stack_without_layer_profile_or_trace_says_so(fake):
    records = profile_target(TINY, ProfileOptions(backends=("torch", fake), breakdown=True,
                                                  **{**QUICK, "cache_model": True}))
    fake_record = records[1]
    assert fake_record["breakdown"]["error"] == "fake has no per-layer profile"
    assert "categories" in records[0]["breakdown"]  # the baseline's profile is kept
    assert "no tracer" in fake_record["cache_model"]["not_modelled"]
    assert "modelled_counters" not in fake_record and "modelled_counters" in records[0]


@pytest.mark.slow
def test_a_study_runs_with_a_fake_stack(fake, tmp_path):
    from fff.study.config import parse_study
    from fff.study.sweep import run_study

    config = parse_study(f'[measure]\nbackends = ["torch", "{fake}"]\nthreads = [1]\nmax_seconds = 3\nmin_rounds = 2\n'
                         '[patterns]\nnames = ["plain"]\ndepths = [1]\nwidths = [0.25]\nresolutions = [32]\n')
    out = tmp_path / "study.jsonl"
    run_study(config, out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    done = [r for r in rows if r.get("status") == "ok"][-1]  # a contended cell is measured again: the last counts
    assert [r["backend"] for r in done["records"]] == ["torch", fake]
    assert np.isfinite(done["records"][1]["speedup"])
