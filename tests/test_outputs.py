"""Models with several outputs (a tuple, list or dict of tensors): timed whole on every stack,
every output compared, each one's error in the record; anything else is a one-line error."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from fff.errors import ShapeError, TargetError
from fff.measure.parity import compare_outputs
from fff.models import build
from fff.models.outputs import named_outputs

USER_MODULE = '''
import torch
from torch import nn


class TwoHeads(nn.Module):
    """A feature map and class scores: outputs of different shapes and scales."""
    input_shape = (1, 3, 32, 32)

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        features = torch.relu(self.conv(x))
        return features, 100 * self.head(features.mean((2, 3)))


class Labelled(TwoHeads):
    def forward(self, x):
        return "label"


def two_heads():
    return TwoHeads()


def labelled():
    return Labelled()


def segmentation():
    import torchvision

    # a dict {"out": ..., "aux": ...}: the main head and the auxiliary one
    network = torchvision.models.segmentation.deeplabv3_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=3, aux_loss=True)
    network.input_shape = (1, 3, 64, 64)
    return network
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "fff_test_outputs.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_named_outputs():
    a, b = torch.zeros(2), torch.ones(3)
    assert [n for n, _ in named_outputs(a)] == ["output"]
    assert [(n, t is b) for n, t in named_outputs((a, b))] == [("0", False), ("1", True)]
    assert [n for n, _ in named_outputs([a, b])] == ["0", "1"]
    assert [n for n, _ in named_outputs({"out": a, "aux": b})] == ["out", "aux"]
    for bad, said in [(None, "returned NoneType"), ((a, "x"), "returned tuple of (Tensor, str)"),
                      ({"out": a, "more": (a, b)}, "returned dict of (Tensor, tuple)"), ((), "returned empty tuple"),
                      (3.0, "returned float")]:
        with pytest.raises(TargetError, match=rf"m {said.replace('(', '[(]').replace(')', '[)]')}; fff times"):
            named_outputs(bad, "m")


def test_compare_outputs_lists_each_output():
    ref = [np.ones((2, 3), np.float32), np.full(4, 100.0, np.float32)]
    close = [ref[0] + 1e-6, ref[1] + 1e-4]  # each within 1e-4 of its own scale
    record = compare_outputs(ref, close, names=("out", "aux"))
    assert record["ok"] and [o["name"] for o in record["outputs"]] == ["out", "aux"]
    assert record["outputs"][0]["max_rel_err"] == pytest.approx(1e-6, rel=0.1)
    assert record["outputs"][1]["max_rel_err"] == pytest.approx(1e-6, rel=0.1)  # 1e-4 of 100
    assert record["max_abs_err"] == pytest.approx(1e-4, rel=0.1)
    wrong = [ref[0], ref[1] * 1.01]  # the second output alone is off by 1%
    record = compare_outputs(ref, wrong, names=("out", "aux"))
    assert not record["ok"] and [o["ok"] for o in record["outputs"]] == [True, False]
    assert record["max_rel_err"] == pytest.approx(0.01, rel=1e-3)  # relative to the reference's scale
    single = compare_outputs(ref[0], ref[0] + 1e-6)
    assert single["ok"] and "outputs" not in single  # one output: the record as before
    with pytest.raises(ShapeError, match="PyTorch eager gave 2 output.s., OpenVINO 1"):
        compare_outputs(ref, [ref[0]], sides=("PyTorch eager", "OpenVINO"))


def test_build_names_every_output_and_counts_the_whole_model(user_module):
    model = build("fff_test_outputs:two_heads")
    assert model.outputs == ("0", "1")
    assert model.flops == 2 * 8 * 32 * 32 * 3 * 9 + 2 * 8 * 5  # the convolution and the second head's linear
    assert build("plain:depth=1,width=0.25,resolution=32").outputs == ("output",)
    with pytest.raises(TargetError, match=r"fff_test_outputs:labelled returned str; fff times models that return"):
        build("fff_test_outputs:labelled")


def test_non_tensor_output_is_one_line_exit_2(user_module):
    result = subprocess.run([sys.executable, "-m", "fff.cli.profile", "fff_test_outputs:labelled", "--max-time", "1"],
                            cwd=user_module, capture_output=True, text=True, timeout=600)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if not line.startswith(("[fff-profile]", "fff-profile: other"))]
    assert errors == ["fff-profile: error: fff_test_outputs:labelled returned str; fff times models that return a "
                      "tensor, or a tuple, list or dict of tensors (one level)"], result.stderr
    assert "Traceback" not in result.stderr


def test_tuple_and_dict_models_through_every_stack(user_module):
    """A tuple module and a torchvision segmentation network (a dict) timed whole on both stacks,
    every output's parity in the record, the cache model counting every output."""
    out = user_module / "r.json"
    result = subprocess.run([sys.executable, "-m", "fff.cli.profile", "fff_test_outputs:two_heads",
                             "fff_test_outputs:segmentation", "--threads", "1", "--max-time", "1", "--min-rounds", "1",
                             "--warmup", "1", "--json", str(out)], cwd=user_module, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    records = {(r["target"], r["backend"]): r for r in json.loads(out.read_text())}
    two = records["fff_test_outputs:two_heads", "openvino"]
    assert two["outputs"] == ["0", "1"] and two["parity"]["ok"]
    assert [o["name"] for o in two["parity"]["outputs"]] == ["0", "1"]
    assert all(o["ok"] and o["max_rel_err"] < 1e-4 for o in two["parity"]["outputs"])
    # the two heads differ in scale 100x: each output is held to its own scale
    assert two["parity"]["max_rel_err"] == max(o["max_rel_err"] for o in two["parity"]["outputs"])
    torch_two = records["fff_test_outputs:two_heads", "torch"]
    assert torch_two["cache_model"]["working_set"]["output_bytes"] == (8 * 32 * 32 + 5) * 4
    assert two["cache_model"]["working_set"]["output_bytes"] == (8 * 32 * 32 + 5) * 4
    seg = records["fff_test_outputs:segmentation", "openvino"]
    assert seg["outputs"] == ["out", "aux"] and seg["parity"]["ok"]
    assert [o["name"] for o in seg["parity"]["outputs"]] == ["out", "aux"]
    assert seg["speedup"] is not None and seg["flops"] > 0
    assert "parity per output (rel): out " in result.stdout and ", aux " in result.stdout


def test_check_parity_covers_every_output(user_module, tmp_path):
    from fff.backends.openvino.conversion import convert
    from fff.measure.parity import check_parity

    model = build("fff_test_outputs:two_heads")
    parity = check_parity(model, convert(model, cache_dir=tmp_path))
    assert parity.ok and 0 < parity.max_rel_err < 1e-4
