"""Each record's ``phases``: what preparing and measuring each stack cost (fff.measure.phases)."""

import pytest

from fff.builder import Builder
from fff.measure.phases import record_phases

pytest.importorskip("onnxruntime", reason="the onnxruntime stack needs the onnxruntime package")

TINY = "plain:depth=1,width=0.25,resolution=32"


def _profile(cache_dir, monkeypatch):
    import fff.builder
    from fff.profiling import ProfileOptions, profile_target

    monkeypatch.setenv("FFF_CACHE_DIR", str(cache_dir))
    monkeypatch.setattr(fff.builder, "_shared", Builder())  # a child that sees this cache
    try:
        records = profile_target(TINY, ProfileOptions(backends=("torch", "openvino", "onnxruntime"), threads=1,
                                                      max_seconds=0.5, min_rounds=1, warmup=1, cache_model=False,
                                                      roofline=False))
    finally:
        fff.builder._shared.close()
    return {r["backend"]: r["phases"] for r in records}


@pytest.mark.slow  # two profiles of three stacks: tens of seconds on 2 cores
def test_preparation_is_fresh_on_an_empty_cache_then_cached_and_phases_not_run_are_absent(tmp_path, monkeypatch):
    first = _profile(tmp_path, monkeypatch)
    second = _profile(tmp_path, monkeypatch)
    for name in ("openvino", "onnxruntime"):
        assert first[name]["prepare_s"] > 0 and first[name]["prepared"] == "fresh"
        assert first[name]["prepared_in"] == "builder"
        assert second[name]["prepare_s"] > 0 and second[name]["prepared"] == "cached"
    for phases in (*first.values(), *second.values()):
        for name in ("worker_start_s", "warmup_s", "calibration_s", "rounds_s"):
            assert phases[name] > 0, name
        # no --breakdown, no cache model, no simulation: absent, never 0
        assert not {"breakdown_s", "cache_model_s", "simulation_s"} & set(phases)
        # what the target cost once for every stack: the build measured, the roofline (off here) absent
        assert phases["target"]["build_s"] > 0 and "roofline_s" not in phases["target"]
    # PyTorch eager prepares nothing: no prepare_s at all
    assert not {"prepare_s", "prepared", "prepared_in"} & set(first["torch"])


def test_a_compilation_in_the_worker_is_preparation_and_its_cache_says_fresh_or_cached():
    """torch-compile's config.compile (its worker's first call) is counted in prepare_s, not in the warm-up."""
    record = {"config": {"compile": {"seconds": 12.0, "cached": True}}, "breakdown": {"cost_s": 2.5},
              "cache_model": {"not_modelled": "opaque kernels"}}
    phases = record_phases(record, {"cached": False, "prepare_s": 0.001},
                           {"worker_start_s": 3.0, "prepare_call_s": 12.5, "calibration_s": 0.1, "rounds_s": 4.0})
    assert phases == {"prepare_s": 12.001, "prepared_in": "builder+worker", "prepared": "cached",
                      "worker_start_s": 3.0, "warmup_s": 0.5, "calibration_s": 0.1, "rounds_s": 4.0,
                      "breakdown_s": 2.5}
    # a compile cache that does not say whether it hit: no "prepared" rather than the artifact's guess
    unknown = record_phases({"config": {"compile": {"seconds": 3.0}}}, {"cached": False}, {})
    assert unknown == {"prepare_s": 3.0, "prepared_in": "worker"}


def test_the_profile_text_gives_one_line_of_phases_per_target():
    from fff.cli.profile import format_phases

    records = [{"target": "a", "backend": "torch", "phases": {"worker_start_s": 4.2, "rounds_s": 10.0,
                                                              "target": {"build_s": 6.5, "roofline_s": 0.01}}},
               {"target": "a", "backend": "openvino", "phases": {"prepare_s": 3.16, "prepared": "fresh",
                                                                 "prepared_in": "builder", "rounds_s": 9.5}},
               {"target": "b", "backend": "torch", "phases": {"rounds_s": 1.0}}]
    assert format_phases(records) == [
        "seconds by phase, a (build 6.50, roofline 0.01): torch start 4.20, rounds 10.00; openvino prepare 3.16 (fresh), rounds 9.50",
        "seconds by phase, b: torch rounds 1.00"]
