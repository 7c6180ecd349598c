"""LL size as a study axis: one timed run per cell, the cache model (and the simulation of the cells a
study simulates) at each LL size, every what-if figure marked as such."""

import json
import sys

import numpy as np
import pytest

from fff.analysis import load_results
from fff.backends.base import NotModelled
from fff.errors import UsageError
from fff.explain import cache_model
from fff.explain.cache_geometry import MACHINE, parse_cache_sizes, split_cache_sizes
from fff.study.config import StudyConfig, parse_study
from fff.study.store import read_rows
from fff.study.sweep import run_study

fakes = sys.modules["study_fakes"]  # loaded by conftest.py

WHAT_IF = "LL=8MiB,16way"
ONE_SIZE = '[patterns]\nnames = ["plain"]\ndepths = [1, 2]\n'


def test_a_study_file_takes_a_list_of_ll_sizes():
    axis = parse_study(f'[measure]\ncache = ["machine", "{WHAT_IF}"]\n' + ONE_SIZE)
    assert (axis.cache, axis.extra_caches) == (None, (WHAT_IF,))
    cells, plain = axis.cells(), parse_study(ONE_SIZE).cells()
    assert all(c.cache is None and c.extra_caches == (WHAT_IF,) for c in cells)
    assert "extra_caches" not in plain[0].identity()  # a single-size study keeps its cells' ids
    assert [c.cell_id for c in cells] != [c.cell_id for c in plain]  # the axis is part of what a cell measures
    assert axis.profile_options(cells[0]).extra_caches == (WHAT_IF,)
    what_if_first = parse_study(f'[measure]\ncache = ["{WHAT_IF}", "machine"]\n' + ONE_SIZE)
    assert (what_if_first.cache, what_if_first.extra_caches) == (WHAT_IF, (MACHINE,))
    single = parse_study(f'[measure]\ncache = "{WHAT_IF}"\n' + ONE_SIZE)
    assert (single.cache, single.extra_caches) == (WHAT_IF, ())
    for bad, why in ((f'["machine", "{WHAT_IF}", "LL=8192KiB,16way"]', "listed twice"), ('["machine", "8MiB"]', "LL="),
                     ("[]", "no LL size")):
        with pytest.raises(UsageError, match=f"measure.cache.*{why}"):
            parse_study(f"[measure]\ncache = {bad}\n")


def test_cache_on_the_command_line_is_a_list_and_bad_sizes_are_one_line():
    from fff.cli.study import _config, build_parser

    args = build_parser().parse_args(["--cache", "machine", "--cache", WHAT_IF, "--out", "x.jsonl", "--patterns", "plain"])
    config = _config(args)
    assert (config.cache, config.extra_caches) == (None, (WHAT_IF,))
    args = build_parser().parse_args(["--cache", WHAT_IF, "--out", "x.jsonl", "--patterns", "plain"])
    assert (_config(args).cache, _config(args).extra_caches) == (WHAT_IF, ())  # one size: as before
    with pytest.raises(UsageError, match="listed twice"):
        parse_cache_sizes(["machine", "MACHINE"])
    assert split_cache_sizes("machine") == (None, ())


def test_the_model_traces_once_and_streams_the_trace_through_each_size():
    import torch

    torch.manual_seed(0)
    width, layers = 256, 4  # 1 MiB of weights: above a 256 KiB LL, far below 32 MiB
    module = torch.nn.Sequential(*[torch.nn.Linear(width, width, bias=False) for _ in range(layers)]).eval()
    traced = []

    def tracer(model, artifact, precision):
        traced.append(precision)
        trace = cache_model.trace_torch(module, torch.ones(1, width))
        return trace, trace

    def untraceable(model, artifact, precision):
        raise NotModelled("its graph is compiled code")

    both = cache_model.record_fields({"torch": tracer, "compiled": untraceable}, {"torch": {}, "compiled": {}},
                                     precision="f32", cache="LL=32MiB,16way", model=None,
                                     extra_caches=("LL=256KiB,16way",))
    fields = both["torch"]
    assert traced == ["f32"]  # one trace, two sizes
    # a stack the model cannot trace says so at every size, and its record is still JSON (a reason shared
    # between the record and its ll_sizes once made it circular, and the stacks study's first cell crashed)
    compiled = json.loads(json.dumps(both["compiled"]))
    assert compiled["cache_model"]["not_modelled"] == "its graph is compiled code"
    assert compiled["ll_sizes"]["LL=256KiB,16way"] == {"cache_model": {"source": "modelled",
                                                                       "not_modelled": "its graph is compiled code"}}
    large = fields["modelled_counters"]["llc-misses"]["per_inference"]
    small = fields["ll_sizes"]["LL=256KiB,16way"]
    weight_lines = layers * width * width * 4 // 64
    assert large <= 0.01 * weight_lines  # fits: nothing misses after the warm-up
    assert small["modelled_counters"]["llc-misses"]["per_inference"] >= weight_lines
    assert small["cache_model"]["ll"]["size"] == 256 * 1024 and small["cache_model"]["ll"]["note"].startswith("what-if")
    assert small["cache_model"]["elapsed_is"].startswith("streaming")  # the trace's seconds are the record's own
    assert "LL (modelled)" in small["cache_model"]["working_set"]["exceeds"]
    assert "LL (modelled)" in fields["cache_model"]["working_set"]["fits"]


class SizeAwareSimulator:
    """simulate_targets' shape: LL misses = 7 x FLOPs at the machine's LL, 70 x FLOPs at a what-if one."""

    def __init__(self):
        self.calls = []

    def __call__(self, items, *, cache, isa_cap, progress, on_done):
        self.calls.append((cache, [item.target for item in items]))
        factor = 7.0 if cache is None else 70.0
        for item in items:
            misses = factor * item.flops
            on_done(item, {b: {"simulated_counters": {"llc-misses": {"per_inference": misses, "total": misses,
                                                                     "status": "simulated", "reason": "fake",
                                                                     "scaled": False}},
                               "simulation": {"tool": "fake", "elapsed_s": 1.0}} for b in item.backends}, {})


def _modelled(misses: float, size: int, what_if: bool, working_set: float) -> dict:
    return {"modelled_counters": {"llc-misses": {"per_inference": misses, "total": misses, "status": "modelled",
                                                 "reason": "fake", "scaled": False}},
            "cache_model": {"source": "modelled", "ll": {"size": size, "assoc": 16, "line": 64,
                                                        "note": "what-if LL from 'x'" if what_if else "sysfs"},
                            "working_set": {"working_set_bytes": working_set, "weight_bytes": 1e6}}}


def axis_measure(timed: list):
    """fake_measure's records with the cache model at the machine's 480 MiB LL (everything fits) and at
    the 8 MiB what-if one; the working set is 5 MiB per block of depth."""
    def measure(target, options, progress):
        timed.append((target, options.cache, options.extra_caches))
        records = fakes.fake_measure(target, options, progress)
        for record in records:
            depth = record["flops"] / 1e6
            record["counters"] = {}  # no PMU: the figures are simulated and modelled
            record.update(_modelled(record["flops"] * 2, 480 << 20, False, 5 * 2**20 * depth))  # half the simulation
            record["ll_sizes"] = {WHAT_IF: _modelled(record["flops"] * 20, 8 << 20, True, 5 * 2**20 * depth)}
        return records
    return measure


AXIS_STUDY = StudyConfig(name="axis", patterns=("plain",), depths=(1, 2, 4, 8), widths=(1.0,), zoo=(), max_seconds=1.0,
                         calibrate_every=2, extra_caches=(WHAT_IF,))


def test_a_study_with_an_ll_axis_times_once_and_models_and_simulates_each_size(tmp_path):
    out = tmp_path / "r.jsonl"
    timed = []
    measure = axis_measure(timed)
    simulator = SizeAwareSimulator()
    config = AXIS_STUDY
    summary = run_study(config, out, measure=measure, simulate=simulator)
    assert [t[1:] for t in timed] == [(None, (WHAT_IF,))] * 4  # each cell timed once, both sizes asked of it
    # the cells' own LL first, then the what-if one, the same two cells each time
    assert simulator.calls == [(None, ["plain:depth=1,width=1", "plain:depth=4,width=1"]),
                               (WHAT_IF, ["plain:depth=1,width=1", "plain:depth=4,width=1"])]
    assert summary.simulated == 2  # cells, not cells x sizes
    rows = [r for r in read_rows(out).rows if r["status"] == "simulated"]
    assert [r.get("ll") for r in rows] == [None, None, WHAT_IF, WHAT_IF]

    results = load_results(out)
    assert len(results.records) == 8 and set(results.records["ll"]) == {MACHINE}  # one row per cell x backend
    every = results.cache_records
    assert len(every) == 16 and set(every["ll"]) == {MACHINE, WHAT_IF}
    at = {ll: rows.set_index(["target", "backend"]) for ll, rows in every.groupby("ll")}
    assert not at[MACHINE]["what_if"].any() and at[WHAT_IF]["what_if"].all()
    assert at[WHAT_IF]["ll_bytes"].eq(8 << 20).all()
    # the same latency at both sizes: one timing
    assert (at[MACHINE]["latency_ms"] == at[WHAT_IF]["latency_ms"]).all()
    # each size's simulation in its own rows, never the other's
    cell = ("plain:depth=4,width=1", "torch")
    assert at[MACHINE].loc[cell, "llc_simulated"] == 7 * 4e6 and at[WHAT_IF].loc[cell, "llc_simulated"] == 70 * 4e6
    # calibrated per size: simulated / modelled is 3.5 at the machine's LL and 3.5 at the what-if one
    unsimulated = ("plain:depth=2,width=1", "openvino")
    assert at[MACHINE].loc[unsimulated, "llc_calibrated"] == pytest.approx(3.5 * 2 * 2e6)
    assert at[WHAT_IF].loc[unsimulated, "llc_calibrated"] == pytest.approx(3.5 * 20 * 2e6)
    assert at[WHAT_IF].loc[unsimulated, "llc_source"].startswith("modelled (what-if LL), calibrated by 2 simulated")

    run_study(config, out, resume=True, measure=measure, simulate=simulator)  # nothing is missing at either size
    assert len(simulator.calls) == 2 and len(timed) == 4


def test_each_curve_has_one_source_and_simulated_points_join_only_where_the_whole_curve_is_simulated(tmp_path):
    from fff.report.figures import llc_curves

    out = tmp_path / "r.jsonl"
    run_study(AXIS_STUDY, out, measure=axis_measure([]), simulate=SizeAwareSimulator())
    every = load_results(out).cache_records
    curves = llc_curves(every[every["ll"] == WHAT_IF]).set_index(["backend", "source"])
    model = curves.loc[("torch", "calibrated")]
    assert model["depths"] == [1, 2, 4, 8] and model["joined"]
    assert model["values"] == pytest.approx([3.5 * 20e6 * d for d in (1, 2, 4, 8)])
    simulated = curves.loc[("torch", "simulated")]  # depths 1 and 4 only: markers, never a line through the model's
    assert simulated["depths"] == [1, 4] and not simulated["joined"]
    assert simulated["values"] == [70e6, 280e6]
    assert set(curves.index.get_level_values("source")) == {"calibrated", "simulated"}
    everything = every.assign(llc_simulated=every["llc_modelled"] * 3, llc_calibrated=np.nan)
    joined = llc_curves(everything[everything["ll"] == WHAT_IF]).set_index(["backend", "source"])
    assert joined.loc[("torch", "simulated"), "joined"] and joined.loc[("torch", "modelled"), "joined"]


def test_the_report_answers_per_ll_size(tmp_path):
    import fff

    out = tmp_path / "r.jsonl"
    run_study(AXIS_STUDY, out, measure=axis_measure([]), simulate=SizeAwareSimulator())
    page = fff.report([out], tmp_path / "report").read_text()
    assert (tmp_path / "report" / "llc_vs_depth.png").exists()
    assert (tmp_path / "report" / "llc_vs_depth.ll-8MiB-16way.png").exists()
    import pandas as pd

    assert len(pd.read_csv(tmp_path / "report" / "records.csv")) == 8  # one row per cell x backend, as before
    every = pd.read_csv(tmp_path / "report" / "cache_records.csv")
    assert len(every) == 16 and set(every["ll"]) == {MACHINE, WHAT_IF}
    assert "LLC misses against depth at what-if LL=8MiB,16way (8 MiB)" in page
    assert "LLC misses against depth at this machine&#x27;s LL (480 MiB)" in page
    # the sentences the data writes: at 480 MiB every cell fits; at 8 MiB plain stops fitting at depth 2
    assert ("At this machine&#x27;s LL (480 MiB), the working sets of PyTorch eager 0 of 4, OpenVINO 0 of 4 pattern "
            "cells exceed it. Fits at every depth and width: plain. No pattern stops fitting at this size") in page
    assert ("At what-if LL=8MiB,16way (8 MiB), the working sets of PyTorch eager 3 of 4, OpenVINO 3 of 4 pattern cells "
            "exceed it. Stops fitting (PyTorch eager&#x27;s working set): plain from depth 2 at width 1. In the "
            "patterns that stop fitting, PyTorch eager latency follows them (Spearman 1.00) over their 4 cells "
            "(calibrated misses; 4 cells miss; FLOPs 1.00)") in page
    assert "the paper&#x27;s claim that latency follows LL cache efficacy holds here" in page


def test_correlations_are_per_source_and_ll_size_with_n(tmp_path):
    from fff.analysis import correlations

    out = tmp_path / "r.jsonl"
    run_study(AXIS_STUDY, out, measure=axis_measure([]), simulate=SizeAwareSimulator())
    table = correlations(load_results(out).cache_records)
    llc = table[(table["against"] == "llc_misses") & (table["backend"] == "torch") & (table["scope"] == "plain")]
    cells = {(r.ll, r.source): r.cells for r in llc.itertuples()}
    assert cells == {(MACHINE, "simulated"): 2, (MACHINE, "calibrated"): 4, (MACHINE, "modelled"): 4,
                     (WHAT_IF, "simulated"): 2, (WHAT_IF, "calibrated"): 4, (WHAT_IF, "modelled"): 4}
    assert llc.set_index(["ll", "source"]).loc[(WHAT_IF, "modelled"), "spearman"] == pytest.approx(1.0)
    assert "too few" in llc.set_index(["ll", "source"]).loc[(WHAT_IF, "simulated"), "note"]
    flops = table[(table["against"] == "flops") & (table["backend"] == "torch") & (table["scope"] == "plain")]
    assert flops["cells"].tolist() == [4]  # FLOPs do not depend on the LL: once, not once per size


@pytest.mark.slow
def test_fff_profile_models_each_ll_size_from_one_timed_run(tmp_path):
    import json
    import subprocess

    from fff.explain.cache_geometry import cache_geometry

    def fff_profile(*args):
        return subprocess.run([sys.executable, "-m", "fff.cli.profile", *map(str, args)], cwd=tmp_path,
                              capture_output=True, text=True, errors="replace", timeout=600)

    result = fff_profile("plain:depth=1,width=0.25,resolution=32", "--threads", "1", "--max-time", "1",
                         "--min-rounds", "2", "--cache", "machine", "--cache", "LL=64KiB,16way",
                         "--json", tmp_path / "r.json")
    assert result.returncode == 0, result.stderr
    records = json.loads((tmp_path / "r.json").read_text())
    assert [r["backend"] for r in records] == ["torch", "openvino"]
    for record in records:
        assert record["cache_model"]["ll"]["size"] == cache_geometry().LL.size  # the record's own: this machine's
        [(size, fields)] = record["ll_sizes"].items()
        assert size == "LL=64KiB,16way" and fields["cache_model"]["ll"]["size"] == 64 * 1024
        assert fields["cache_model"]["ll"]["note"].startswith("what-if")
        # the same trace through a smaller LRU: the what-if cache misses at least as much
        assert (fields["modelled_counters"]["llc-misses"]["per_inference"]
                >= record["modelled_counters"]["llc-misses"]["per_inference"])
        assert fields["cache_model"]["working_set"]["working_set_bytes"] == \
            record["cache_model"]["working_set"]["working_set_bytes"]
        assert "latency_ms" not in fields  # timing is the record's, once
    assert "llc-misses         " in result.stdout and "(modelled, at what-if LL=64KiB,16way)" in result.stdout
    bad = fff_profile("plain:depth=1", "--cache", "machine", "--cache", "machine")
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "listed twice" in bad.stderr


def test_a_model_of_zeros_is_said_not_left_as_a_bare_nan():
    import pandas as pd

    from fff.analysis import correlations

    rows = pd.DataFrame({"machine": "m", "backend": "torch", "kind": "pattern", "pattern": "plain", "depth": [1, 2, 4],
                         "latency_ms": [1.0, 2.0, 4.0], "flops": [1e6, 2e6, 4e6], "llc_modelled": 0.0,
                         "llc_simulated": [125.0, 126.0, 990.0], "working_set_bytes": [1e6, 2e6, 4e6],
                         "llc_note": None, "ll": MACHINE, "primary": True})
    table = correlations(rows).set_index(["scope", "against", "source"])
    modelled = table.loc[("plain", "llc_misses", "modelled")]
    assert np.isnan(modelled["spearman"]) and modelled["cells"] == 3
    assert modelled["note"] == "every cell's value is 0 (the model: every working set fits this LL)"
    assert table.loc[("plain", "llc_misses", "simulated"), "spearman"] == pytest.approx(1.0)  # its own source, n = 3


def test_the_built_in_study_has_a_desktop_ll_beside_the_machines():
    from fff.explain.cache_geometry import parse_cache_spec
    from fff.study.config import default_study

    study = default_study()
    assert (study.cache, study.extra_caches) == (None, ("LL=12MiB,16way",))
    level = parse_cache_spec("LL=12MiB,16way")  # 12,288 sets: valgrind needs a power of two, the note says how
    assert (level.size, level.assoc, level.line) == (12 << 20, 24, 64) and "16-way with 12288 sets" in level.note
    simulated = [c for c in study.cells() if c.simulate_cache]
    assert len(simulated) == 12 and all(c.extra_caches == ("LL=12MiB,16way",) for c in simulated)
