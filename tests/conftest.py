"""Shared fixtures: tiny models made on the spot, never downloaded."""

import warnings

import numpy as np
import pytest


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
