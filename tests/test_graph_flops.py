"""fff.models.graph_flops: a model file's FLOPs equal the PyTorch count of the same model."""

import warnings

import pytest
import torch

from fff.backends.openvino.conversion import convert
from fff.models import build
from fff.models.flops import count_flops
from fff.models.graph_flops import count_graph

pytestmark = pytest.mark.slow  # minutes on 2 cores: left out of the quick tier (pytest -m 'not slow')


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("ir-cache")


@pytest.mark.parametrize("target", [
    "plain:depth=1,width=0.25,resolution=32",          # Convolution, MatMul
    "dw-bottleneck:depth=1,width=0.25,resolution=32",  # GroupConvolution (depthwise)
    "grouped:depth=1,width=0.25,resolution=32",        # GroupConvolution (32 groups)
    "inception:depth=1,width=0.25,resolution=32",      # branches, MaxPool
    "se-mbconv:depth=1,width=0.25,resolution=32",      # squeeze-excitation: 1x1 convs on pooled maps
    "mobilenet_v2",                                    # a zoo model, at 64 px
    "transformer:depth=1,width=0.5,resolution=64",     # ScaledDotProductAttention, MatMul
    "mobilevit:depth=1,width=0.25,resolution=64",      # convolutions and attention
])
def test_model_file_flops_equal_the_pytorch_count(target, cache_dir):
    native = build(target, resolution=64 if ":" not in target else None)
    from_file = build(str(convert(native, cache_dir=cache_dir)))
    assert from_file.input_shape == native.input_shape
    assert from_file.flops == native.flops > 0
    # The converter folds batch norm into the convolutions: one value per normalized channel fewer.
    assert 0.95 * native.params < from_file.params <= native.params
    assert from_file.flops_counter.startswith("fff.models.graph_flops")
    assert {"Relu", "Clamp", "Gelu"} & set(from_file.uncounted_ops)


class _TransposedAndBatched(torch.nn.Module):
    """The operators the patterns do not use: a transposed and a grouped transposed convolution,
    a batched matrix product with a transposed operand."""

    def __init__(self):
        super().__init__()
        self.up = torch.nn.ConvTranspose2d(4, 8, 3, stride=2)
        self.grouped_up = torch.nn.ConvTranspose2d(8, 8, 2, stride=2, groups=4)

    def forward(self, x):
        y = self.grouped_up(self.up(x)).flatten(2)  # [N, 8, L]
        return torch.matmul(y, y.transpose(1, 2))    # [N, 8, 8], K = L


def test_transposed_convolutions_and_batched_matmul_count_as_in_pytorch():
    import openvino as ov

    module, example = _TransposedAndBatched().eval(), torch.randn(2, 4, 5, 5)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.trace.* is deprecated", category=FutureWarning)
        graph = ov.convert_model(module, example_input=example)
    graph.reshape({graph.inputs[0]: list(example.shape)})
    counted = count_graph(graph)
    assert counted.flops == count_flops(module, example).flops > 0
    assert counted.params >= sum(p.numel() for p in module.parameters())
