"""--precision int8 on ONNX Runtime (quantize_static, fff.backends.ort.quantization) and --calibration DIR
for both int8 stacks (fff.backends.calibration): cached by content, parity by SQNR and cosine, int8
kernels in the breakdown, refusals in one line."""

import copy
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="the onnxruntime stack needs the onnxruntime package")

from fff.backends.base import fixed_seed_input  # noqa: E402
from fff.backends.calibration import SYNTHETIC, calibration_digest, calibration_set, check_calibration_dir  # noqa: E402
from fff.backends.ort.backend import OnnxRuntimeBackend  # noqa: E402
from fff.errors import CompileError, UsageError  # noqa: E402
from fff.measure.parity import compare, tolerance_for  # noqa: E402

TARGET = "plain:depth=1,width=0.5"
QUICK = ["--threads", "1", "--max-time", "5", "--min-rounds", "2"]


def _images(directory, count=3, seed=0):
    from PIL import Image

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):  # sizes that differ from the input's, so resizing and cropping both happen
        pixels = rng.integers(0, 256, (40 + 7 * i, 52, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(directory / f"image{i}.png")
    return directory


@pytest.fixture(scope="module")
def model():
    from fff.models import build

    return build(TARGET, resolution=32)


@pytest.fixture(scope="module")
def quantized(model, tmp_path_factory):
    cache = tmp_path_factory.mktemp("ort-int8-cache")
    return cache, OnnxRuntimeBackend.prepare_artifact(model, cache_dir=cache, precision="int8")


def _backend(artifact, model):
    return OnnxRuntimeBackend(target=TARGET, build_options={"resolution": 32}, artifact=artifact,
                              input_shape=model.input_shape, device="CPU", threads=1, precision="int8")


@pytest.mark.slow
def test_the_int8_model_is_qdq_labelled_synthetic_and_a_second_prepare_quantizes_nothing(quantized, model,
                                                                                           monkeypatch):
    import onnx

    import fff.backends.ort.quantization as quantization

    cache, first = quantized
    assert not first["cached"] and first["onnx"] != first["f32_onnx"]
    assert first["calibration"] == SYNTHETIC and first["calibration"]["samples"] == 16
    assert "quantize_static" in first["quantized_by"] and "per-channel" in first["quantized_by"]
    ops = {node.op_type for node in onnx.load(first["onnx"]).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops

    def no_quantizing(*args, **kwargs):
        raise AssertionError("quantized again although the int8 model is cached")

    monkeypatch.setattr(quantization, "quantize_onnx", no_quantizing)
    again = OnnxRuntimeBackend.prepare_artifact(model, cache_dir=cache, precision="int8")
    assert again["cached"] and again["onnx"] == first["onnx"] and again["notes"] == []


@pytest.mark.slow
def test_int8_holds_parity_its_breakdown_marks_int8_layers_and_its_trace_is_smaller(quantized, model):
    from fff.backends.ort.attribution import onnxruntime_breakdown

    cache, artifact = quantized
    backend = _backend(artifact, model)
    example = fixed_seed_input(model.input_shape)
    prepared = backend.prepare([example], warmup=0)
    assert "quantize_static" in prepared["config"]["quantized_by"]
    with torch.no_grad():
        reference = model.module.eval()(torch.from_numpy(example)).numpy()
    tolerance = tolerance_for("int8", "f32")
    parity = compare(reference, prepared["output"], tolerance=tolerance)
    assert parity.ok and parity.sqnr_db > 15 and parity.cosine > 0.99, parity
    # A wrong function (the first convolution's output channels rolled) fails both limits.
    wrong = copy.deepcopy(model.module).eval()
    conv = next(m for m in wrong.modules() if isinstance(m, torch.nn.Conv2d))
    with torch.no_grad():
        conv.weight.copy_(torch.roll(conv.weight, 1, dims=0))
        other = wrong(torch.from_numpy(example)).numpy()
    assert not compare(other, prepared["output"], tolerance=tolerance).ok

    raw = backend.breakdown(2)
    ops = [event["op"] for event in raw["iterations"][0]]
    assert ops.count("QLinearConv") == 9  # every convolution of the pattern (stem + 4 stages x 2) runs int8
    table = onnxruntime_breakdown(raw, None)
    int8 = table["int8"]
    assert len(int8["layers_int8"]) >= 9 and int8["ms_int8"] > 0
    assert any("QuantizeLinear" in layer for layer in int8["layers_not_int8"])  # the input's own quantization
    assert set(int8["layers_int8"]).isdisjoint(int8["layers_not_int8"])
    assert "QLinear" in int8["source"]

    f32 = OnnxRuntimeBackend.prepare_artifact(model, cache_dir=cache)
    traced, _ = OnnxRuntimeBackend.cache_trace(model, artifact, "int8")
    traced_f32, _ = OnnxRuntimeBackend.cache_trace(model, f32, "f32")
    # int8 weights and uint8 activations at their own sizes (int32 biases keep it above a quarter)
    assert traced.weight_bytes < traced_f32.weight_bytes / 3
    stem = next(step for step in traced.steps if step.name == "QLinearConv")
    stem_f32 = next(step for step in traced_f32.steps if step.name in ("Conv", "FusedConv"))
    assert stem.writes[0][1] * 4 == stem_f32.writes[0][1]  # the same activation, 1 byte a value instead of 4


def test_a_model_quantize_static_cannot_read_is_refused_naming_the_stack(tmp_path):
    from fff.backends.ort.quantization import quantize_onnx

    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"\x08\x07this is not an ONNX protobuf")
    with pytest.raises(CompileError, match=r"^onnxruntime: broken: quantize_static could not quantize it to int8 \("):
        quantize_onnx("broken", broken, tmp_path / "out.onnx", [np.zeros((1, 3, 8, 8), np.float32)])
    assert not (tmp_path / "out.onnx").exists()


def test_calibration_images_are_read_cropped_normalised_and_digested(tmp_path):
    from PIL import Image

    directory = _images(tmp_path / "images", count=2)
    (directory / "notes.txt").write_text("not an image")  # ignored: not an image suffix
    # First in name order: one colour, so every value after resizing, cropping and ImageNet's mean/std is known.
    Image.new("RGB", (30, 70), (255, 0, 128)).save(directory / "a-solid.png")
    record, inputs = calibration_set((2, 3, 16, 24), str(directory))
    assert record["source"] == "images" and record["count"] == 3 and record["dir"] == str(directory.resolve())
    assert len(inputs) == 3 and all(x.shape == (2, 3, 16, 24) and x.dtype == np.float32 for x in inputs)
    expected = [(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (128 / 255 - 0.406) / 0.225]
    assert np.allclose(inputs[0], np.array(expected, np.float32).reshape(1, 3, 1, 1), atol=1e-5)
    assert np.array_equal(inputs[1][0], inputs[1][1])  # one image fills the batch
    synthetic, noise = calibration_set((1, 3, 16, 24))
    assert synthetic == SYNTHETIC and len(noise) == 16
    assert calibration_digest(record) != calibration_digest(synthetic)
    again, _ = calibration_set((2, 3, 16, 24), str(directory))
    assert again["digest"] == record["digest"]  # reproducible
    _images(directory, count=1, seed=5)  # image0.png changed
    assert calibration_set((2, 3, 16, 24), str(directory))[0]["digest"] != record["digest"]
    with pytest.raises(UsageError, match=r"need an input of \[N, 3, H, W\] images; its input is \[1, 1, 8, 8\]"):
        calibration_set((1, 1, 8, 8), str(directory), who="gray")


@pytest.mark.parametrize("case, message", [
    ("missing", "no such directory"), ("file", "not a directory"), ("empty", "no images in it"),
    ("broken", "cannot read the image bad.png"),
])
def test_a_bad_calibration_directory_is_one_line(tmp_path, case, message):
    path = {"missing": tmp_path / "missing", "file": tmp_path / "file.png", "empty": tmp_path / "empty",
            "broken": tmp_path / "broken"}[case]
    (tmp_path / "file.png").write_bytes(b"")
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    with pytest.raises(UsageError, match=message):
        check_calibration_dir(str(path))


GRAY_MODEL = """import torch


def make():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten())
    model.input_shape = (1, 1, 16, 16)
    return model
"""


def _fff(module, *args, cwd):
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          errors="replace", timeout=600)


@pytest.mark.parametrize("args, message", [
    (["--precision", "int8", "--calibration", "{tmp}/missing"], "no such directory"),
    (["--precision", "int8", "--calibration", "{tmp}/empty"], "no images in it"),
    (["--precision", "int8", "--calibration", "{tmp}/broken"], "cannot read the image bad.png"),
    (["--calibration", "{tmp}/images"], "needs --precision int8 (got f32)"),
    (["--precision", "int8", "--calibration", "{tmp}/images", "--input-shape", "1,1,16,16"],
     "need an input of [N, 3, H, W] images; the input shape asked is [1, 1, 16, 16]"),
    # the function's own input shape (its input_shape attribute), found by building it, before any stack runs
    (["--precision", "int8", "--calibration", "{tmp}/images"],
     "--calibration images need an input of [N, 3, H, W] images; its input is [1, 1, 16, 16]"),
])
def test_fff_profile_refuses_bad_calibration_in_one_line_before_measuring(tmp_path, args, message):
    _images(tmp_path / "images", count=1)
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "bad.png").write_bytes(b"not a png")
    (tmp_path / "gray.py").write_text(GRAY_MODEL)
    args = [a.format(tmp=tmp_path) for a in args]
    result = _fff("fff.cli.profile", "gray:make", "--backends", "torch,onnxruntime", *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("fff-profile: error:")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in result.stderr, result.stderr
    assert "rounds" not in result.stdout  # nothing measured


def test_fff_study_takes_calibration_for_int8_cells_and_refuses_it_without(tmp_path):
    from fff.study.config import parse_study

    _images(tmp_path / "images", count=1)
    config = parse_study(f'[measure]\nprecisions = ["f32", "int8"]\ncalibration = "{tmp_path}/images"\n'
                         '[zoo]\nmodels = ["resnet18"]\n')
    cells = {cell.precision: cell for cell in config.cells()}
    assert cells["f32"].calibration is None and cells["int8"].calibration == f"{tmp_path}/images"
    assert config.profile_options(cells["int8"]).calibration == f"{tmp_path}/images"
    plain = parse_study('[measure]\nprecisions = ["f32", "int8"]\n[zoo]\nmodels = ["resnet18"]\n')
    assert {c.cell_id for c in plain.cells()} & {c.cell_id for c in config.cells()} == {cells["f32"].cell_id}
    result = _fff("fff.cli.study", "--zoo", "resnet18", "--calibration", tmp_path / "images", "--out",
                  tmp_path / "r.jsonl", cwd=tmp_path)
    assert result.returncode == 2 and "needs int8 among the precisions" in result.stderr, result.stderr
    result = _fff("fff.cli.study", "--zoo", "resnet18", "--precisions", "int8",
                  "--calibration", tmp_path / "nothing", "--out", tmp_path / "r.jsonl", cwd=tmp_path)
    assert result.returncode == 2 and "no such directory" in result.stderr, result.stderr
    assert not (tmp_path / "r.jsonl").exists() or not (tmp_path / "r.jsonl").read_text().strip()


@pytest.mark.slow
def test_fff_profile_onnxruntime_int8_records_both_precisions_calibration_and_int8_layers(tmp_path):
    target = f"{TARGET},resolution=32"
    result = _fff("fff.cli.profile", target, "--backends", "torch,onnxruntime", "--precision", "int8",
                  "--breakdown", *QUICK, "--json", tmp_path / "synthetic.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    torch_row, ort = json.loads((tmp_path / "synthetic.json").read_text())
    assert (torch_row["precision"], ort["precision"]) == ("f32", "int8")
    assert ort["speedup_precisions"] == "int8 (onnxruntime) vs f32 (torch)"
    assert ort["calibration"]["source"] == "synthetic" and ort["parity"]["ok"] and ort["parity"]["metric"] == "sqnr_db"
    int8 = ort["breakdown"]["int8"]  # attributed to the PyTorch layers: every convolution, the pool and the classifier
    assert {"stem.0", "stages.0.0.0.0", "stages.3.0.1.0", "pool", "classifier"} <= set(int8["layers_int8"])
    assert len([layer for layer in int8["layers_int8"] if layer.startswith(("stem.", "stages."))]) == 9
    assert ort["cache_model"]["source"] == "modelled"
    assert "onnxruntime: int8 kernels in" in result.stdout

    _images(tmp_path / "images", count=2)
    result = _fff("fff.cli.profile", target, "--backends", "torch,onnxruntime", "--precision", "int8",
                  "--calibration", tmp_path / "images", *QUICK, "--json", tmp_path / "images.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    ort_images = json.loads((tmp_path / "images.json").read_text())[1]
    calibration = ort_images["calibration"]
    assert calibration["source"] == "images" and calibration["count"] == 2
    assert calibration["dir"] == str((tmp_path / "images").resolve()) and len(calibration["digest"]) == 32
    assert ort_images["parity"]["ok"]


def test_both_int8_cache_keys_follow_the_calibration_digest(tmp_path):
    from pathlib import Path

    from fff.backends.openvino.quantization import int8_key as openvino_key
    from fff.backends.ort.quantization import int8_key as onnxruntime_key

    record, _ = calibration_set((1, 3, 16, 16), str(_images(tmp_path / "images", count=2)))
    elsewhere, _ = calibration_set((1, 3, 16, 16), str(_images(tmp_path / "copy", count=2)))
    assert elsewhere["dir"] != record["dir"] and elsewhere["digest"] == record["digest"]
    for key, entry in ((openvino_key, Path("ir-0123")), (onnxruntime_key, Path("onnx-0123"))):
        assert key(entry, record) != key(entry, SYNTHETIC)
        assert key(entry, record) == key(entry, elsewhere)  # the same images in another directory
    assert openvino_key(Path("ir-0123")) == openvino_key(Path("ir-0123"), SYNTHETIC)  # entries cached before keep theirs


@pytest.mark.slow
def test_openvino_int8_calibrates_on_the_images_too(model, tmp_path):
    from fff.backends.openvino.backend import OpenVINOBackend

    synthetic = OpenVINOBackend.prepare_artifact(model, cache_dir=tmp_path / "cache", precision="int8")
    images = OpenVINOBackend.prepare_artifact(model, cache_dir=tmp_path / "cache", precision="int8",
                                              calibration=str(_images(tmp_path / "images", count=2)))
    assert synthetic["calibration"]["source"] == "synthetic" and not images["cached"]
    assert images["calibration"]["source"] == "images" and images["calibration"]["count"] == 2
    assert images["xml"] != synthetic["xml"]
