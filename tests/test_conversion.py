"""fff.backends.openvino.conversion and fff.measure.parity: static f32 IR, the content-addressed cache, parity and its tolerance."""

import numpy as np
import pytest
import torch

from fff.backends.openvino.conversion import cache_key, convert, is_cached
from fff.errors import CompileError, FffError, ParityError, ShapeError
from fff.models import PATTERNS, build
from fff.measure.parity import RTOL, check_parity, compare, fixed_seed_input

pytestmark = pytest.mark.slow  # minutes on 2 cores: left out of the quick tier (pytest -m 'not slow')


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("ir-cache")


def _read(xml):
    import openvino as ov

    return ov.Core().read_model(str(xml))


# --- conversion and parity for every pattern --------------------------------------------------------

@pytest.mark.parametrize("width", [0.5, 1.0])
@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("pattern", list(PATTERNS))
def test_every_pattern_converts_with_parity(pattern, depth, width, cache_dir):
    model = build(f"{pattern}:depth={depth},width={width}", resolution=32)
    xml = convert(model, cache_dir=cache_dir)
    ir = _read(xml)
    assert ir.inputs[0].get_partial_shape().is_static
    assert tuple(ir.inputs[0].get_shape()) == (1, 3, 32, 32)
    parity = check_parity(model, xml)
    assert parity.ok and parity.max_rel_err < RTOL / 10  # f32 lands far inside the tolerance


# darts converts and matches too (7e-7 of scale), but its ~200 small ops take ~10 s to trace: left to fff-profile.
@pytest.mark.parametrize("name", ["mobilenet_v2", "squeezenet1_1"])
def test_zoo_models_convert_with_parity(name, cache_dir):
    model = build(name, resolution=64)
    parity = check_parity(model, convert(model, cache_dir=cache_dir), seed=3)
    assert parity.ok and 0 < parity.max_rel_err < RTOL / 10


def test_ir_weights_are_f32(cache_dir):
    xml = convert(build("residual:depth=1,width=0.5", resolution=32), cache_dir=cache_dir)
    types = {op.get_output_element_type(0).get_type_name() for op in _read(xml).get_ordered_ops()
             if op.get_type_name() == "Constant" and op.get_output_element_type(0).is_real()}
    assert types == {"f32"}


# --- cache ------------------------------------------------------------------------------------------

def test_second_conversion_hits_the_cache(tmp_path, monkeypatch):
    import openvino as ov

    model = build("dw-bottleneck:depth=1,width=0.5", resolution=32)
    assert not is_cached(model, cache_dir=tmp_path)
    first = convert(model, cache_dir=tmp_path)
    assert is_cached(model, cache_dir=tmp_path)

    def must_not_convert(*args, **kwargs):
        raise AssertionError("ov.convert_model called on a cache hit")

    monkeypatch.setattr(ov, "convert_model", must_not_convert)
    rebuilt = build("dw-bottleneck:depth=1,width=0.5", resolution=32)  # a new module, the same weights
    assert convert(rebuilt, cache_dir=tmp_path) == first
    assert sorted(p.name for p in first.parent.iterdir()) == ["checksum.sha256", "meta.json", "model.bin", "model.xml"]


def test_cache_key_follows_shape_and_weights():
    model = build("plain:depth=1,width=0.5", resolution=32)
    assert cache_key(model) == cache_key(build("plain:depth=1,width=0.5", resolution=32))
    assert cache_key(model) != cache_key(build("plain:depth=1,width=0.5", resolution=64))
    assert cache_key(model) != cache_key(build("plain:depth=1,width=0.5", resolution=32, batch=2))
    with torch.no_grad():
        model.module.classifier.bias[0] += 1
    assert cache_key(model) != cache_key(build("plain:depth=1,width=0.5", resolution=32))


def test_cache_dir_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FFF_CACHE_DIR", str(tmp_path / "env-cache"))
    xml = convert(build("shuffle:depth=1,width=0.5", resolution=32))
    assert xml.parent.parent == tmp_path / "env-cache"


def test_a_crash_while_saving_leaves_no_half_ir(tmp_path, monkeypatch):
    import openvino as ov

    model = build("plain:depth=1,width=0.5", resolution=32)
    real_save = ov.save_model

    def save_then_crash(ov_model, path, **kwargs):
        real_save(ov_model, path, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(ov, "save_model", save_then_crash)
    with pytest.raises(FffError, match=r"cannot write the IR into the cache .*\(disk full\); set FFF_CACHE_DIR"):
        convert(model, cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert not is_cached(model, cache_dir=tmp_path)
    monkeypatch.setattr(ov, "save_model", real_save)
    assert convert(model, cache_dir=tmp_path).is_file()


def test_an_unwritable_cache_is_a_one_line_error(tmp_path):
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    with pytest.raises(FffError, match="cannot write the IR into the cache at .*set FFF_CACHE_DIR"):
        convert(build("plain:depth=1,width=0.5", resolution=32), cache_dir=not_a_directory / "cache")


def test_conversion_failure_is_a_compile_error(tmp_path, monkeypatch):
    import openvino as ov

    def refuse(*args, **kwargs):
        raise Exception("Check 'false' failed at frontend.cpp:1:\n-- Conversion is failed for: aten::fancy_op")

    monkeypatch.setattr(ov, "convert_model", refuse)
    with pytest.raises(CompileError, match=r"could not convert it \(-- Conversion is failed for: aten::fancy_op\)"):
        convert(build("plain:depth=1,width=0.5", resolution=32), cache_dir=tmp_path)


# --- parity -----------------------------------------------------------------------------------------

def test_compare_is_relative_to_the_output_scale():
    reference = np.array([[1.0, -4.0, 0.0]], dtype=np.float32)
    close = compare(reference, reference + np.float32(2e-4))
    assert close.max_abs_err == pytest.approx(2e-4, rel=1e-3)
    assert close.max_rel_err == pytest.approx(5e-5, rel=1e-3) and close.ok
    far = compare(reference, reference + np.float32(1e-3))
    assert far.max_rel_err == pytest.approx(2.5e-4, rel=1e-3) and not far.ok
    assert compare(reference, reference).max_abs_err == 0.0
    assert compare(reference, reference.reshape(3)).ok  # same values, batch dim dropped


def test_compare_never_accepts_nan_or_mismatched_shapes():
    reference = np.ones((1, 4), dtype=np.float32)
    assert not compare(reference, np.array([[1, 1, np.nan, 1]], dtype=np.float32)).ok
    assert not compare(np.zeros(3), np.array([0, 0, 1e-9])).ok  # zero scale: any difference is infinite
    with pytest.raises(ShapeError, match="outputs differ in shape"):
        compare(reference, np.ones((1, 5)))


def _bf16_capable_cpu() -> bool:
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def test_bf16_inference_fails_f32_parity_and_passes_bf16s(cache_dir):
    if not _bf16_capable_cpu():
        pytest.skip("this CPU has no bf16 support, so OpenVINO computes f32 whatever the hint")
    model = build("residual:depth=1,width=0.5", resolution=32)
    xml = convert(model, cache_dir=cache_dir)
    with pytest.raises(ParityError) as caught:  # f32's tolerance: a runtime silently in bf16 is caught
        check_parity(model, xml, precision="bf16", rtol=RTOL)
    message = str(caught.value)
    assert "absolute" in message and "of the output's scale" in message and "tolerance 0.0001" in message
    parity = check_parity(model, xml, precision="bf16")  # asked for bf16: bf16's tolerance
    assert parity.ok and parity.tolerance == 0.1 and RTOL < parity.max_rel_err < parity.tolerance / 3


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_tolerance_catches_reduced_precision_on_any_cpu(dtype):
    # PyTorch itself in bf16/f16 against f32: what a runtime that silently dropped precision would give.
    model = build("residual:depth=1,width=0.5", resolution=32)
    example = torch.from_numpy(fixed_seed_input(model.input_shape))
    with torch.no_grad():
        reference = model.module(example).numpy()
        reduced = model.module.to(dtype)(example.to(dtype)).float().numpy()
    parity = compare(reference, reduced)
    assert not parity.ok and parity.max_rel_err > 5 * RTOL  # measured: bf16 ~1e-2, f16 ~1e-3
