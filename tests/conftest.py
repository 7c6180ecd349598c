"""Shared fixtures: tiny models made on the spot, never downloaded."""

import importlib.util
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest


def _load_study_fakes():
    """The fake measurements the study, analysis and report tests share, importable as
    ``study_fakes`` (with --import-mode=importlib test files cannot import each other)."""
    spec = importlib.util.spec_from_file_location("study_fakes", Path(__file__).with_name("study_fakes.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["study_fakes"] = module


_load_study_fakes()


def convert_torch_module(module, example, path):
    """Convert a torch module to an f32 IR at ``path`` with dynamic dims left in, as ov.convert_model does."""
    import openvino as ov

    with warnings.catch_warnings():
        # openvino traces the module with torch.jit.trace, which torch 2.9+ marks deprecated.
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.trace.* is deprecated", category=FutureWarning)
        model = ov.convert_model(module, example_input=example)
    ov.save_model(model, path, compress_to_fp16=False)
    return path


@pytest.fixture(scope="session")
def tiny_torch_model():
    import torch

    torch.manual_seed(0)
    module = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 16, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(16, 10),
    ).eval()
    return module


@pytest.fixture(scope="session")
def tiny_ir(tiny_torch_model, tmp_path_factory):
    """An IR whose batch and spatial dims are dynamic, as ov.convert_model leaves them."""
    import torch

    path = tmp_path_factory.mktemp("ir") / "tiny.xml"
    return convert_torch_module(tiny_torch_model, torch.zeros(1, 3, 32, 32), path)


@pytest.fixture
def fixed_input():
    return np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)


# A minimal ONNX file written by hand (protobuf wire format), since the onnx package is not a
# dependency: one Relu from input X to output Y.

def _varint(value):
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number, value):
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    value = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def _value_info(name, dims):
    shape = b"".join(_field(1, _field(2, d) if isinstance(d, str) else _field(1, d)) for d in dims)
    tensor_type = _field(1, 1) + _field(2, shape)  # elem_type 1 = float
    return _field(1, name) + _field(2, _field(1, tensor_type))


def _write_relu_onnx(path, dims):
    node = _field(1, "X") + _field(2, "Y") + _field(4, "Relu")
    graph = _field(1, node) + _field(2, "g") + _field(11, _value_info("X", dims)) + _field(12, _value_info("Y", dims))
    path.write_bytes(_field(1, 8) + _field(8, _field(2, 13)) + _field(7, graph))  # IR version 8, opset 13
    return path


@pytest.fixture
def relu_onnx():
    """Writes a one-Relu ONNX file: ``relu_onnx(path, dims)``; a str dim is a dynamic one."""
    return _write_relu_onnx
