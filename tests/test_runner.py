"""The native OpenVINO runner: same function as PyTorch, static shapes, honest config, clear errors."""

import numpy as np
import pytest

import fff


def cpu_flags():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


def test_runner_output_matches_pytorch(tiny_torch_model, tiny_ir, fixed_input):
    import torch

    runner = fff.Runner(tiny_ir, (1, 3, 32, 32), threads=1)
    runner.set_input(0, fixed_input)
    result = runner.run(iterations=5, warmup=1)
    with torch.no_grad():
        expected = tiny_torch_model(torch.from_numpy(fixed_input)).numpy()
    got = runner.output(0)
    assert got.shape == (1, 10)
    scale = np.abs(expected).max()
    assert np.abs(got - expected).max() / scale < 1e-4
    assert result.latencies_ns.shape == (5,)


def test_latencies_one_per_iteration_all_positive(tiny_ir):
    runner = fff.Runner(tiny_ir, (1, 3, 32, 32), threads=1)
    result = runner.run(iterations=37, warmup=2)
    assert result.latencies_ns.dtype == np.float64
    assert len(result.latencies_ns) == 37
    assert (result.latencies_ns > 0).all()
    # A conv net on 32x32 cannot infer in under a microsecond: a smaller number means no work was done.
    assert result.latencies_ns.min() > 1_000
    assert result.first_inference_ns > 0
    # The first inference is measured once per compiled model, not again on later runs.
    assert runner.run(iterations=3, warmup=0).first_inference_ns == result.first_inference_ns


def test_dynamic_model_is_reshaped_to_the_given_shape(tiny_ir):
    runner = fff.Runner(tiny_ir, (2, 3, 48, 48), threads=1)
    assert runner.inputs[0]["shape"] == (2, 3, 48, 48)
    assert runner.outputs[0]["shape"] == (2, 10)
    runner.set_input(0, np.ones((2, 3, 48, 48), np.float32))
    runner.run(iterations=1, warmup=0)
    out = runner.output(0)
    # Both rows saw the same input, so the batch really ran as two samples.
    np.testing.assert_allclose(out[0], out[1], rtol=1e-6)


def test_dynamic_dims_without_a_shape_are_refused(tiny_ir):
    with pytest.raises(fff.ShapeError, match="dynamic shape"):
        fff.Runner(tiny_ir)


def test_model_that_cannot_take_the_shape_gets_a_clear_error(tmp_path):
    import openvino as ov
    import openvino.opset13 as ops

    # A reshape to a constant [1, 48] only works for exactly 48 input elements.
    param = ops.parameter(ov.PartialShape([-1, 3, 4, 4]), ov.Type.f32, name="x")
    flat = ops.reshape(param, ops.constant(np.array([1, 48], np.int64)), special_zero=False)
    path = tmp_path / "fixed.xml"
    ov.save_model(ov.Model([flat], [param]), path, compress_to_fp16=False)
    assert fff.Runner(path, (1, 3, 4, 4)).outputs[0]["shape"] == (1, 48)
    with pytest.raises(fff.ShapeError, match="cannot be reshaped"):
        fff.Runner(path, (2, 3, 4, 4))
    with pytest.raises(fff.ShapeError, match="rank 4"):
        fff.Runner(path, (1, 48))


def test_wrong_input_shape_is_refused(tiny_ir):
    runner = fff.Runner(tiny_ir, (1, 3, 32, 32))
    with pytest.raises(fff.ShapeError, match=r"expects shape \[1, 3, 32, 32\]"):
        runner.set_input(0, np.zeros((1, 3, 16, 16), np.float32))
    with pytest.raises(fff.ShapeError, match="expects float32"):
        runner.set_input(0, np.zeros((1, 3, 32, 32), np.complex64))


def test_missing_file(tmp_path):
    with pytest.raises(fff.ModelFileError, match="not found"):
        fff.Runner(tmp_path / "absent.xml", (1, 3, 8, 8))


def test_garbage_xml(tmp_path):
    garbage = tmp_path / "garbage.xml"
    garbage.write_text("this is not a network <<<")
    with pytest.raises(fff.ModelFileError, match="not an OpenVINO IR"):
        fff.Runner(garbage, (1, 3, 8, 8))


def test_corrupt_ir_with_a_net_element(tmp_path):
    corrupt = tmp_path / "corrupt.xml"
    corrupt.write_text('<?xml version="1.0"?><net name="x" version="11"><layers><layer id="0"')
    (tmp_path / "corrupt.bin").write_bytes(b"")
    with pytest.raises(fff.ModelFileError, match="cannot read model"):
        fff.Runner(corrupt, (1, 3, 8, 8))


def test_unknown_device(tiny_ir):
    with pytest.raises(fff.DeviceError, match="'NPU9' is not available"):
        fff.Runner(tiny_ir, (1, 3, 32, 32), device="NPU9")


def test_bad_numbers_are_usage_errors(tiny_ir):
    with pytest.raises(fff.UsageError, match="invalid precision 'f8'"):
        fff.Runner(tiny_ir, (1, 3, 32, 32), precision="f8")
    with pytest.raises(fff.UsageError, match="threads must be"):
        fff.Runner(tiny_ir, (1, 3, 32, 32), threads=-1)
    runner = fff.Runner(tiny_ir, (1, 3, 32, 32))
    with pytest.raises(fff.UsageError, match="iterations must be"):
        runner.run(iterations=0)
    with pytest.raises(fff.UsageError, match="whole number"):
        runner.run(iterations=2.5)


def test_effective_precision_is_f32_by_default(tiny_ir):
    config = fff.Runner(tiny_ir, (1, 3, 32, 32), threads=1).effective_config
    assert config["INFERENCE_PRECISION_HINT"] == "f32"
    assert config["INFERENCE_NUM_THREADS"] == "1"
    assert config["NUM_STREAMS"] == "1"
    assert config["PERFORMANCE_HINT"] == "LATENCY"


def test_precision_asked_for_is_read_back(tiny_ir):
    if not {"avx512_bf16", "amx_bf16"} & cpu_flags():
        pytest.skip("this CPU has no bf16 support (avx512_bf16 or amx_bf16); OpenVINO would run f32")
    config = fff.Runner(tiny_ir, (1, 3, 32, 32), precision="bf16").effective_config
    assert config["INFERENCE_PRECISION_HINT"] == "bf16"


def test_clock_is_reported():
    from fff.backends.openvino.runner import clock_info

    info = clock_info()
    flags = cpu_flags()
    if {"constant_tsc", "nonstop_tsc"} <= flags:
        assert info["source"] == "tsc"
        # Any x86 CPU of the last two decades ticks between 0.5 and 6 GHz.
        assert 0.5 < info["ticks_per_ns"] < 6.0
    else:
        assert info["source"] == "steady_clock"
        assert info["ticks_per_ns"] == 1.0


def test_input_that_crossed_a_process_boundary_is_accepted(tiny_ir, fixed_input):
    import pickle

    # An unpickled array carries an equal but distinct dtype object; it must still be float32.
    runner = fff.Runner(tiny_ir, (1, 3, 32, 32), threads=1)
    runner.set_input(0, pickle.loads(pickle.dumps(fixed_input)))
    runner.run(iterations=1, warmup=0)
    direct = fff.Runner(tiny_ir, (1, 3, 32, 32), threads=1)
    direct.set_input(0, fixed_input)
    direct.run(iterations=1, warmup=0)
    np.testing.assert_array_equal(runner.output(0), direct.output(0))


def test_onnx_file_is_timed(tmp_path, relu_onnx):
    onnx = relu_onnx(tmp_path / "relu.onnx", ["N", 3, 8, 8])
    runner = fff.Runner(onnx, (2, 3, 8, 8))
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    runner.set_inputs(x)
    assert len(runner.run(iterations=3, warmup=1).latencies_ns) == 3
    np.testing.assert_array_equal(runner.output(0), np.maximum(x, 0))


def test_corrupt_or_empty_onnx_is_not_an_onnx_model(tmp_path, capfd):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x00not a model at all")
    with pytest.raises(fff.ModelFileError, match="^not an ONNX model: .*corrupt.onnx$"):
        fff.Runner(corrupt, (1, 3, 8, 8))
    assert "tensorflow" not in capfd.readouterr().err  # only the ONNX frontend was asked
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")  # loads as a model with no inputs unless refused first
    with pytest.raises(fff.ModelFileError, match="^not an ONNX model: .*empty.onnx$"):
        fff.Runner(empty, (1, 3, 8, 8))
