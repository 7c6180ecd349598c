"""A study's simulation phase: after every cell is timed, its rows laid over the cells, resumable."""

import sys

from fff.analysis import load_results
from fff.explain.simulation_phase import error_fields
from fff.study.config import StudyConfig
from fff.study.simulation import merge_simulations
from fff.study.store import read_rows
from fff.study.sweep import run_study

fakes = sys.modules["study_fakes"]  # loaded by conftest.py


def study(**overrides) -> StudyConfig:
    fields = dict(name="sim", patterns=("plain", "residual"), depths=(1, 2), widths=(1.0,), zoo=(),
                  max_seconds=1.0)
    return StudyConfig(**{**fields, **overrides})


class FakeSimulator:
    """simulate_targets' shape: LL misses = 7 x FLOPs per backend; targets named in ``fail`` fail."""

    def __init__(self, fail=()):
        self.fail = set(fail)
        self.seen = []

    def __call__(self, items, *, cache, isa_cap, progress, on_done):
        for item in items:
            self.seen.append((item.target, item.backends, item.flops, isa_cap))
            if item.target in self.fail:
                errors = {b: {"type": "FffError", "message": "valgrind fell over"} for b in item.backends}
                on_done(item, {b: error_fields(e) for b, e in errors.items()}, errors)
                continue
            fields = {b: {"simulated_counters": {"llc-misses": {"per_inference": 7.0 * item.flops, "total": 7.0 * item.flops,
                                                                "status": "simulated", "reason": "fake", "scaled": False}},
                          "simulation": {"tool": "fake", "isa": isa_cap, "elapsed_s": 1.0}}
                      for b in item.backends}
            on_done(item, fields, {})


def statuses(path):
    return [row["status"] for row in read_rows(path).rows]


def test_calibration_cells_are_timed_first_then_simulated_and_merged_into_their_records(tmp_path):
    out = tmp_path / "r.jsonl"
    timed_with = []

    def measure(target, options, progress):
        timed_with.append(options.simulate_cache)
        return fakes.fake_measure(target, options, progress)

    simulator = FakeSimulator()
    summary = run_study(study(calibrate_every=2, simulate_isa="avx"), out, measure=measure, simulate=simulator)
    assert timed_with == [False] * 4  # no cell simulates while it is timed
    # every timing row comes before the first simulation row
    assert statuses(out) == ["started", "ok"] * 4 + ["simulated"] * 2
    assert (summary.simulated, summary.simulation_failed) == (2, 0)
    # cells 0 and 2 of the study's order, with their FLOPs from the timed records and the study's ISA cap
    assert simulator.seen == [("plain:depth=1,width=1", ("torch", "openvino"), 1e6, "avx"),
                              ("residual:depth=1,width=1", ("torch", "openvino"), 1e6, "avx")]
    row = next(r for r in read_rows(out).rows if r["status"] == "ok" and r["cell"]["target"] == "residual:depth=1,width=1")
    merged = next(r for r in merge_simulations(read_rows(out).rows) if r["key"] == row["key"] and r["status"] == "ok")
    assert [r["simulated_counters"]["llc-misses"]["per_inference"] for r in merged["records"]] == [7e6, 7e6]
    assert "simulated_counters" not in row["records"][0]  # the file's timing row itself is left as written
    records = load_results(out).records  # what fff-report reads: the simulated counts, 7 x 1e6 FLOPs
    residual = records[records.target == "residual:depth=1,width=1"]
    assert residual.llc_misses.tolist() == [7e6, 7e6]


def test_a_resumed_study_simulates_only_what_is_missing_and_never_times_again(tmp_path):
    out = tmp_path / "r.jsonl"
    run_study(study(), out, measure=fakes.fake_measure, simulate=FakeSimulator())  # timed, nothing simulated
    assert "simulated" not in statuses(out)
    timed_again = []
    simulator = FakeSimulator()
    summary = run_study(study(simulate_cache=True), out, resume=True, extend=True,
                        measure=lambda *a: timed_again.append(a) or fakes.fake_measure(*a), simulate=simulator)
    assert timed_again == []  # the same cells: simulating them later does not change what was timed
    assert (summary.already_done, summary.simulated) == (4, 4)
    again = FakeSimulator()
    run_study(study(simulate_cache=True), out, resume=True, measure=fakes.fake_measure, simulate=again)
    assert again.seen == []


def test_a_failed_simulation_is_an_error_never_a_zero_and_retry_errors_tries_it_again(tmp_path):
    out = tmp_path / "r.jsonl"
    summary = run_study(study(simulate_cache=True), out, measure=fakes.fake_measure,
                        simulate=FakeSimulator(fail={"plain:depth=2,width=1"}))
    assert (summary.simulated, summary.simulation_failed) == (4, 1)
    merged = [r for r in merge_simulations(read_rows(out).rows) if r["status"] == "ok"]
    failed = next(r for r in merged if r["cell"]["target"] == "plain:depth=2,width=1")
    for record in failed["records"]:
        misses = record["simulated_counters"]["llc-misses"]
        assert misses["status"] == "error" and misses["per_inference"] is None
        assert "valgrind fell over" in misses["reason"]
    retry = FakeSimulator()
    run_study(study(simulate_cache=True), out, resume=True, retry_errors=True, measure=fakes.fake_measure,
              simulate=retry)
    assert [t for t, *_ in retry.seen] == ["plain:depth=2,width=1"]
    merged = [r for r in merge_simulations(read_rows(out).rows) if r["status"] == "ok"]
    fixed = next(r for r in merged if r["cell"]["target"] == "plain:depth=2,width=1")
    assert fixed["records"][0]["simulated_counters"]["llc-misses"]["per_inference"] == 7 * 2e6


def test_simulating_a_cell_does_not_change_its_identity():
    plain = study().cells()
    simulated = study(simulate_cache=True).cells()
    assert [c.cell_id for c in plain] == [c.cell_id for c in simulated]
    assert all(c.simulate_cache for c in simulated)


def test_cells_that_failed_their_timing_are_not_simulated(tmp_path):
    out = tmp_path / "r.jsonl"
    simulator = FakeSimulator()
    run_study(study(patterns=("grouped", "plain"), depths=(1,), simulate_cache=True), out, measure=fakes.fake_measure,
              simulate=simulator)
    assert [t for t, *_ in simulator.seen] == ["plain:depth=1,width=1"]


def test_a_stack_that_cannot_be_simulated_is_said_not_failed(monkeypatch):
    """NotSimulated is a stack's answer, not a failure: status "not simulated" with its reason, no
    error (so --retry-errors leaves it), and no server started for a target with nothing to run."""
    import fff.explain.simulation_phase as phase
    from fff.explain.callgrind import SIMULATED_COUNTERS, unavailable_reason

    if unavailable_reason():
        pytest.skip(unavailable_reason())
    monkeypatch.setattr(phase, "_jobs_for", lambda item, directory: ([], {"mystack": "mystack: no simulation"}))
    monkeypatch.setattr(phase, "_preload", lambda names, base: base)  # "mystack" is in no registry
    seen = []
    phase.simulate_targets([phase.SimulationTarget("k", "t", {}, ("mystack",), "f32", 1e6)],
                           on_done=lambda item, fields, errors: seen.append((item.key, fields, errors)))
    [(key, fields, errors)] = seen
    assert key == "k" and errors == {}
    counters = fields["mystack"]["simulated_counters"]
    assert set(counters) == set(SIMULATED_COUNTERS)
    assert {c["status"] for c in counters.values()} == {"not simulated"}
    assert {c["per_inference"] for c in counters.values()} == {None}
    assert fields["mystack"]["simulation"]["not_simulated"] == "mystack: no simulation"
