"""--precision int8: OpenVINO through NNCF post-training quantization (fff.backends.openvino.quantization),
parity by SQNR and cosine against PyTorch f32, the baseline in f32, int8 kernels in the breakdown."""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from fff.backends.base import fixed_seed_input
from fff.errors import UsageError
from fff.measure.parity import compare, tolerance_for
from fff.profiling import ProfileOptions

TARGET = "plain:depth=1,width=0.5"


def test_int8_parity_is_sqnr_and_cosine_with_stated_limits():
    tolerance = tolerance_for("int8", "f32")
    assert tolerance == tolerance_for("f32", "int8")  # the lower precision governs
    assert (tolerance.metric, tolerance.limit, tolerance.min_cosine) == ("sqnr_db", 10.0, 0.95)
    assert "SQNR" in tolerance.reason and "16.3 dB" in tolerance.reason
    reference = np.random.default_rng(0).standard_normal((1, 100))
    same = compare(reference, reference, tolerance=tolerance)
    assert same.ok and same.sqnr_db == float("inf") and same.cosine == pytest.approx(1.0)
    noisy = reference + 0.1 * np.random.default_rng(1).standard_normal((1, 100))  # about 20 dB
    parity = compare(reference, noisy, tolerance=tolerance)
    assert parity.ok and 17 < parity.sqnr_db < 23 and parity.cosine > 0.99
    record = parity.as_record()
    assert record["metric"] == "sqnr_db" and record["tolerance"] == 10.0 and record["min_cosine"] == 0.95
    assert record["sqnr_db"] == pytest.approx(parity.sqnr_db)
    # 3 dB: the noise half the signal; and a flipped sign, whose SQNR is negative and cosine -1
    assert not compare(reference, reference + 0.7 * np.random.default_rng(2).standard_normal((1, 100)),
                       tolerance=tolerance).ok
    flipped = compare(reference, -reference, tolerance=tolerance)
    assert not flipped.ok and flipped.sqnr_db < 0 and flipped.cosine == pytest.approx(-1.0)


def test_int8_is_refused_before_anything_is_built_where_no_stack_offers_it(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).with_name("plugins")))  # fake_backend: f32 only
    with pytest.raises(UsageError, match="backend torch cannot compute in int8"):
        ProfileOptions(backends=("torch",), precision="int8").validated()
    with pytest.raises(UsageError, match="backend fake_backend:FakeBackend cannot compute in int8"):
        ProfileOptions(backends=("torch", "fake_backend:FakeBackend"), precision="int8").validated()
    # beside a stack that has it, the baseline runs f32
    assert ProfileOptions(backends=("torch", "openvino"), precision="int8").validated().precision == "int8"


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    from fff.backends.openvino.backend import OpenVINOBackend
    from fff.models import build

    model = build(TARGET, resolution=32)
    cache_dir = tmp_path_factory.mktemp("int8-cache")
    first = OpenVINOBackend.prepare_artifact(model, cache_dir=cache_dir, precision="int8")
    again = OpenVINOBackend.prepare_artifact(model, cache_dir=cache_dir, precision="int8")
    return model, first, again


@pytest.mark.slow
def test_quantized_ir_is_cached_by_content_and_labelled_synthetic(quantized):
    import openvino as ov

    model, first, again = quantized
    assert not first["cached"] and again["cached"] and again["xml"] == first["xml"]
    assert first["calibration"]["source"] == "synthetic" and "not accuracy" in first["calibration"]["sound_for"]
    types = {op.get_type_name() for op in ov.Core().read_model(first["xml"]).get_ordered_ops()}
    assert "FakeQuantize" in types


@pytest.mark.slow
def test_int8_output_passes_sqnr_parity_and_a_wrong_model_fails(quantized):
    from fff.backends.openvino.backend import OpenVINOBackend
    from fff.explain.breakdown import openvino_breakdown

    model, artifact, _ = quantized
    backend = OpenVINOBackend(target=TARGET, build_options={"resolution": 32}, artifact=artifact,
                              input_shape=model.input_shape, device="CPU", threads=1, precision="int8")
    example = fixed_seed_input(model.input_shape)
    prepared = backend.prepare([example], warmup=0)
    assert prepared["config"]["INFERENCE_PRECISION_HINT"] == "f32"  # what NNCF left unquantized: f32, not bf16
    with torch.no_grad():
        reference = model.module.eval()(torch.from_numpy(example)).numpy()
    tolerance = tolerance_for("int8", "f32")
    parity = compare(reference, prepared["output"], tolerance=tolerance)
    assert parity.ok and parity.sqnr_db > 15 and parity.cosine > 0.99, parity
    # A wrong int8 model: the f32 side's first convolution with its output channels rolled by one.
    wrong = copy.deepcopy(model.module).eval()
    conv = next(m for m in wrong.modules() if isinstance(m, torch.nn.Conv2d))
    with torch.no_grad():
        conv.weight.copy_(torch.roll(conv.weight, 1, dims=0))
        other = wrong(torch.from_numpy(example)).numpy()
    failed = compare(other, prepared["output"], tolerance=tolerance)
    assert not failed.ok and failed.sqnr_db < 10, failed
    # The breakdown says which layers ran int8 kernels.
    raw = backend.breakdown(2)
    assert any(node["exec_type"].lower().endswith(("_i8", "_u8")) for node in raw["iterations"][0])
    table = openvino_breakdown(raw, None)
    assert table["int8"]["layers_int8"] and table["int8"]["ms_int8"] > 0
    assert set(table["int8"]["layers_int8"]).isdisjoint(table["int8"]["layers_not_int8"])


def test_the_analysis_pairs_an_int8_row_with_its_f32_baseline(tmp_path):
    import sys

    from fff.analysis import architecture_table, load_results
    from fff.study.config import StudyConfig
    from fff.study.sweep import run_study

    fakes = sys.modules["study_fakes"]  # loaded by conftest.py

    def measure(target, options, progress=lambda _: None):
        records = fakes.fake_measure(target, options, progress)
        for record in records:  # as fff.profiling writes them: the baseline computed in f32
            record["precision_asked"] = options.precision
            record["precision"] = "f32" if record["backend"] == "torch" else options.precision
        return records

    out = tmp_path / "int8.jsonl"
    run_study(StudyConfig(name="int8", zoo=("resnet18",), precisions=("f32", "int8")), out, measure=measure,
              fingerprint="machine")
    records = load_results([out]).records
    assert set(zip(records["backend"], records["precision"], records["stack_precision"])) == {
        ("torch", "f32", "f32"), ("openvino", "f32", "f32"), ("torch", "int8", "f32"), ("openvino", "int8", "int8")}
    assert sorted(architecture_table(records)["precision"]) == ["f32", "int8"]  # both pairs kept
