"""The onnxruntime stack: its export (static, cached by content), its session (threads, inter-op,
spinning read back), model files, refusals, and the attribution of its profile to layers."""

import json
import sys

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="the onnxruntime stack needs the onnxruntime package")

from fff.backends.base import fixed_seed_input  # noqa: E402
from fff.backends.ort.attribution import onnxruntime_breakdown, read_profile, scope_path  # noqa: E402
from fff.backends.ort.backend import OnnxRuntimeBackend  # noqa: E402
from fff.errors import CompileError, DeviceError, FffError, ModelFileError, UsageError  # noqa: E402

TARGET = "residual:depth=1,width=0.25,resolution=32"
BUILD_OPTIONS = {"batch": None, "resolution": None, "input_shape": None}


@pytest.fixture(scope="module")
def model():
    import fff

    return fff.build(TARGET)


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    cache = tmp_path_factory.mktemp("onnx-cache")
    return cache, OnnxRuntimeBackend.prepare_artifact(model, cache_dir=cache)


def _backend(artifact, model, threads=1):
    return OnnxRuntimeBackend(target=TARGET, build_options=BUILD_OPTIONS, artifact=artifact,
                              input_shape=model.input_shape, device="CPU", threads=threads, precision="f32")


@pytest.mark.slow
def test_the_export_has_static_shapes_and_names_its_exporter(exported, model):
    import onnx

    _, artifact = exported
    assert not artifact["cached"] and "dynamo=False" in artifact["exporter"]
    graph = onnx.load(artifact["onnx"]).graph
    for value in [*graph.input, *graph.output]:
        dims = value.type.tensor_type.shape.dim
        assert all(d.HasField("dim_value") and not d.dim_param for d in dims), value.name
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim] == list(model.input_shape)


@pytest.mark.slow
def test_a_second_export_is_a_cache_hit_and_a_damaged_entry_is_exported_afresh(exported, model):
    cache, first = exported
    again = OnnxRuntimeBackend.prepare_artifact(model, cache_dir=cache)
    assert again["cached"] and again["onnx"] == first["onnx"] and again["notes"] == []
    with open(first["onnx"], "ab") as f:  # a damaged file on disk
        f.write(b"x")
    mended = OnnxRuntimeBackend.prepare_artifact(model, cache_dir=cache)
    assert not mended["cached"] and "did not match its checksum" in mended["notes"][0]
    assert OnnxRuntimeBackend.prepare_artifact(model, cache_dir=cache)["cached"]
    assert not OnnxRuntimeBackend.prepare_artifact(model, cache_dir=cache, fresh=True)["cached"]


@pytest.mark.slow
def test_the_session_runs_the_same_function_with_the_threads_asked_for(exported, model):
    import torch

    from fff.measure.parity import compare, tolerance_for

    _, artifact = exported
    backend = _backend(artifact, model, threads=2)
    x = fixed_seed_input(model.input_shape)
    backend.set_input(x)
    output = backend.output_array(backend.infer())
    with torch.no_grad():
        reference = model.module(torch.from_numpy(x)).numpy()
    assert compare(reference, output, tolerance=tolerance_for("f32", "f32")).as_record()["ok"]
    config = backend.config()
    assert config["threads"] == 2 and config["pool_threads_started"] == 1  # the calling thread is one of the two
    assert OnnxRuntimeBackend.effective_threads(config) == 2
    assert config["inter_op_threads"] == 1 and config["execution_mode"] == "ORT_SEQUENTIAL"
    assert config["session.intra_op.allow_spinning"] == "1" and config["session.inter_op.allow_spinning"] == "1"
    assert config["exporter"] == artifact["exporter"]


@pytest.mark.slow
def test_an_onnx_file_runs_as_it_is_and_an_ir_is_refused(exported, model, tmp_path):
    from dataclasses import replace
    from pathlib import Path

    _, artifact = exported
    as_file = replace(model, module=None, kind="file", path=Path(artifact["onnx"]))
    assert OnnxRuntimeBackend.prepare_artifact(as_file)["onnx"] == artifact["onnx"]
    ir = replace(model, module=None, kind="file", path=tmp_path / "model.xml")
    with pytest.raises(ModelFileError, match="onnxruntime: runs .onnx files"):
        OnnxRuntimeBackend.prepare_artifact(ir)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match="onnxruntime could not load") as error:
        _backend({"onnx": str(broken)}, model)
    assert "\n" not in str(error.value)


def test_bf16_and_f16_are_refused_before_anything_is_built():
    from fff.profiling import ProfileOptions

    for precision in ("bf16", "f16"):
        with pytest.raises(UsageError, match=f"backend onnxruntime cannot compute in {precision}"):
            ProfileOptions(backends=("torch", "onnxruntime"), precision=precision).validated()


def test_a_missing_onnxruntime_is_one_line_naming_the_stack(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as when it is not installed
    with pytest.raises(DeviceError) as error:
        OnnxRuntimeBackend.check_available("CPU")
    message = str(error.value)
    assert message.startswith("onnxruntime: the onnxruntime package is not installed") and "\n" not in message


@pytest.mark.slow
def test_the_profile_is_attributed_to_the_models_layers(exported, model):
    from fff.explain.layer_profiles import profile_torch

    _, artifact = exported
    backend = _backend(artifact, model)
    backend.set_input(fixed_seed_input(model.input_shape))
    raw = backend.breakdown(3)
    assert len(raw["iterations"]) == 3 and len(raw["latencies_ns"]) == 3
    torch_raw = profile_torch(model.module.eval(), lambda: model.module(
        __import__("torch").from_numpy(fixed_seed_input(model.input_shape))), 2)
    table = onnxruntime_breakdown(raw, torch_raw, 1.0)
    convs = {name for name, facts in torch_raw["modules"].items() if facts["module_type"] == "Conv2d"}
    timed = {row["layer"] for row in table["layers"] if row["ms"] > 0}
    assert convs <= timed  # every convolution found its node, whatever NCHWc renamed it to
    assert all(row["type"].startswith("Reorder") for row in table["unattributed"])  # only its own layout changes
    assert 0 < table["coverage"] <= 1.0
    assert table["categories"]["dense conv kxk"] > 0


def test_scopes_become_module_paths():
    modules = dict.fromkeys(["", "features", "features.1", "features.1.conv", "features.1.conv.0",
                             "features.1.conv.0.2", "layer1", "layer1.0", "layer1.0.relu"])
    assert scope_path(["features", "features.1", "conv", "conv.0", "conv.0.2"], modules) == "features.1.conv.0.2"
    assert scope_path(["layer1", "layer1.0", "relu_1"], modules) == "layer1.0.relu"  # a module's second call
    assert scope_path(["layer9"], modules) is None


def _event(name, ts, dur, cat="Node", op="Conv"):
    return {"cat": cat, "name": name, "ts": ts, "dur": dur, "ph": "X",
            "args": {"op_name": op, "output_type_shape": [{"float": [1, 8, 4, 4]}]} if cat == "Node" else {}}


def test_renamed_and_fused_nodes_find_their_layer(tmp_path):
    """A hand-written Chrome trace: a convolution fused with its ReLU (named after the ReLU's
    output, NCHWc), a plain Gemm, and a Reorder onnxruntime inserted; two inferences, the first
    a warm-up."""
    events = [_event("model_run", 0, 100, cat="Session"), _event("model_run", 200, 100, cat="Session")]
    for start in (0, 200):
        events += [_event("/act/Relu_output_0_nchwc_kernel_time", start + 10, 40),
                   _event("ReorderOutput_kernel_time", start + 55, 5, op="ReorderOutput"),
                   _event("/fc/Gemm_kernel_time", start + 60, 20, op="Gemm")]
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(events))
    inferences = read_profile(str(path), [90_000.0], warmup=1)
    assert [e["node"] for e in inferences[0]] == ["/act/Relu_output_0_nchwc", "ReorderOutput", "/fc/Gemm"]
    graph = [["/conv/Conv", "Conv", ["input", "w"], ["/conv/Conv_output_0"]],
             ["/act/Relu", "Relu", ["/conv/Conv_output_0"], ["/act/Relu_output_0"]],
             ["/fc/Gemm", "Gemm", ["/act/Relu_output_0", "fc.weight"], ["output"]]]
    modules = {"": {"module_type": "Net", "leaf": False, "flops": 0},
               "conv": {"module_type": "Conv2d", "leaf": True, "flops": 10, "groups": 1, "in_channels": 3,
                        "out_channels": 8, "kernel": [3, 3]},
               "act": {"module_type": "ReLU", "leaf": True, "flops": 0},
               "fc": {"module_type": "Linear", "leaf": True, "flops": 5}}
    table = onnxruntime_breakdown({"iterations": inferences, "latencies_ns": [90_000.0], "graph": graph},
                                  {"modules": modules}, 0.09)
    rows = {row["layer"]: row for row in table["layers"]}
    assert rows["conv"]["ms"] == pytest.approx(0.040) and rows["conv"]["exec_types"] == ["Conv (NCHWc)"]
    assert rows["act"]["ms"] == 0 and rows["act"]["fused_into"] == "conv"
    assert rows["fc"]["ms"] == pytest.approx(0.020) and rows["fc"]["category"] == "linear/matmul"
    assert rows["(onnxruntime) ReorderOutput"]["category"] == "data movement"
    assert table["categories"]["dense conv kxk"] == pytest.approx(0.040)
    assert table["coverage"] == pytest.approx(65 / 90)


def test_a_profile_with_missing_inferences_is_an_error(tmp_path):
    path = tmp_path / "profile.json"
    path.write_text(json.dumps([_event("model_run", 0, 100, cat="Session")]))
    with pytest.raises(FffError, match="1 inferences, 3 were run"):
        read_profile(str(path), [1.0, 2.0], warmup=1)


@pytest.mark.slow
def test_the_simulation_job_runs_the_same_file_on_one_thread(exported, model):
    from fff.backends.ort.backend import simulated_session

    _, artifact = exported
    job = OnnxRuntimeBackend.simulation_job(target=TARGET, build_options=BUILD_OPTIONS, input_shape=model.input_shape,
                                            artifact=artifact, precision="f32", module_path=None)
    assert job["kwargs"]["kwargs"]["path"] == artifact["onnx"]
    output = simulated_session(**job["kwargs"]["kwargs"])()[0]
    assert output.shape[0] == model.input_shape[0] and np.isfinite(output).all()


@pytest.mark.slow
def test_the_cache_trace_follows_the_graph_onnxruntime_runs(exported, model):
    from fff.explain.cache_model import model_traffic

    _, artifact = exported
    warm, counted = OnnxRuntimeBackend.cache_trace(model, artifact, "f32")
    assert counted.steps and "NCHWc" in counted.source
    # Batch norm folded into the convolutions: the weights are about the parameters' bytes, never more.
    assert 0.5 * 4 * model.params < counted.weight_bytes <= 4 * model.params
    assert counted.input_bytes == 4 * int(np.prod(model.input_shape)) and counted.output_bytes > 0
    fits = model_traffic(warm, counted, size=1 << 30)
    assert fits["read_lines"] > 0 and fits["read_misses"] == 0  # everything fits: no miss after the warm-up
    tiny = model_traffic(warm, counted, size=1 << 14)
    assert tiny["read_misses"] >= counted.weight_bytes // 64  # weights larger than the LL: every weight line misses


def test_a_model_the_exporter_cannot_export_is_one_line_naming_the_stack(model, tmp_path, monkeypatch):
    import torch

    def refuse(*args, **kwargs):
        raise torch.onnx.errors.UnsupportedOperatorError("aten::fancy_op", 17, 20)

    monkeypatch.setattr(torch.onnx, "export", refuse)
    with pytest.raises(CompileError) as error:
        OnnxRuntimeBackend.prepare_artifact(model, cache_dir=tmp_path)
    message = str(error.value)
    assert "onnxruntime: torch.onnx.export could not export it" in message and "fancy_op" in message
    assert "\n" not in message and not list(tmp_path.rglob("*.onnx"))  # no half export left in the cache


def test_a_model_files_convolutions_are_categorised_by_their_shapes():
    """No PyTorch module to name the layers (an .onnx target): a convolution's weight and input
    shapes say whether it is depthwise, pointwise or dense."""
    def conv(name, data, weight):
        return {"node": name, "op": "Conv", "ns": 1e3, "input_shapes": [["float", data], ["float", weight]],
                "output_shapes": [["float", data]]}

    events = [conv("dw_nchwc", [1, 32, 8, 8], [32, 1, 3, 3]), conv("pw_nchwc", [1, 32, 8, 8], [64, 32, 1, 1]),
              conv("dense", [1, 3, 8, 8], [32, 3, 3, 3])]
    table = onnxruntime_breakdown({"iterations": [events], "latencies_ns": [4e3], "graph": []}, None, None)
    assert {row["layer"]: row["category"] for row in table["layers"]} == {
        "(onnxruntime) dw_nchwc": "depthwise conv", "(onnxruntime) pw_nchwc": "pointwise conv 1x1",
        "(onnxruntime) dense": "dense conv kxk"}
