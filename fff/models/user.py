"""The user's own models: an ONNX or OpenVINO IR file, or ``module:function`` returning an nn.Module.

Files are read with OpenVINO (never unpickled); a file target has no PyTorch module, so only the
accelerated side can run it. Its input shape comes from the file where every dimension is
static, otherwise from an explicit ``input_shape`` (``batch`` and ``resolution`` then fill in or
override the batch and spatial dimensions).

``module:function`` imports ``module`` (a dotted module name, or a path ending in ``.py``), calls
``function()`` with no arguments and expects an ``nn.Module``. The input shape comes from the
``input_shape`` option, else an ``input_shape`` attribute on the returned module, else one on the
function.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

from fff.errors import ModelFileError, ShapeError, TargetError, openvino_reason
from fff.models.graph_flops import count_graph

__all__ = ["MODEL_FILE_SUFFIXES", "FUNCTION_TARGET", "read_model_file", "call_model_function", "resolve_shape"]

MODEL_FILE_SUFFIXES = (".onnx", ".xml")
FUNCTION_TARGET = re.compile(r"^(?P<module>[A-Za-z_][\w.]*|[^:]+\.py):(?P<function>[A-Za-z_]\w*)$")


def resolve_shape(target: str, dims: list[int | None] | None, *, input_shape=None, batch=None,
                  resolution=None) -> tuple[int, ...]:
    """The concrete input shape: ``input_shape`` over ``dims`` (None = dynamic, a None list = unknown
    rank), then ``batch`` on dim 0 and ``resolution`` on the last two dims of a 4-d (NCHW) input."""
    if input_shape is not None:
        if dims is not None and len(input_shape) != len(dims):
            raise ShapeError(f"{target}: input_shape {tuple(input_shape)} has {len(input_shape)} dims, "
                             f"the model's input has {len(dims)}")
        dims = list(input_shape)
    if dims is None:
        raise ShapeError(f"{target}: the input's rank is dynamic; give input_shape (--input-shape N,C,H,W)")
    dims = list(dims)
    if batch is not None:
        dims[0] = batch
    if resolution is not None:
        if len(dims) != 4:
            raise ShapeError(f"{target}: resolution applies to NCHW inputs, this one has {len(dims)} dims")
        dims[2] = dims[3] = resolution
    if any(d is None for d in dims):
        shown = ",".join("?" if d is None else str(d) for d in dims)
        raise ShapeError(f"{target}: input shape [{shown}] has dynamic dims; give input_shape (--input-shape), "
                         "or batch and resolution")
    if any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dims):
        raise ShapeError(f"{target}: input shape {tuple(dims)} must be whole numbers >= 1")
    return tuple(dims)


def read_model_file(target: str, *, input_shape=None, batch=None, resolution=None):
    """(absolute path, input shape, ``fff.models.graph_flops.GraphCount``) of an .onnx or .xml
    model file: FLOPs at that input shape, parameters and the operators the count leaves out."""
    from openvino.frontend import FrontEndManager

    path = Path(target).expanduser()
    if not path.is_file():
        raise ModelFileError(f"{target}: no such model file")
    if path.suffix.lower() == ".xml" and not path.with_suffix(".bin").is_file():
        raise ModelFileError(f"{target}: the IR's weights file {path.with_suffix('.bin').name} is missing beside it")
    # The frontend named by the suffix, not Core.read_model: that one tries every frontend in turn,
    # and on a corrupt .onnx the TensorFlow one prints pages of protobuf errors and leaves only
    # "Exception from core.cpp" as the reason.
    kind = "ONNX" if path.suffix.lower() == ".onnx" else "OpenVINO IR"
    try:
        frontend = FrontEndManager().load_by_framework("onnx" if kind == "ONNX" else "ir")
        # supported() first: load() accepts an empty .onnx or an XML file that is no IR and
        # returns a model with no inputs at all.
        if not frontend.supported(str(path)):
            raise ModelFileError(f"{target}: not an {kind} model")
        model = frontend.convert(frontend.load(str(path)))
    except ModelFileError:
        raise
    except Exception as error:  # the frontends raise GeneralFailure, RuntimeError, ...
        raise ModelFileError(f"{target}: not a readable {kind} model ({openvino_reason(error)})") from None
    if len(model.inputs) != 1:
        raise ShapeError(f"{target}: fff times single-input models; this one has {len(model.inputs)} inputs")
    partial = model.inputs[0].get_partial_shape()
    dims = None if partial.rank.is_dynamic else [d.get_length() if d.is_static else None for d in partial]
    shape = resolve_shape(target, dims, input_shape=input_shape, batch=batch, resolution=resolution)
    try:  # FLOPs need every shape static: the graph at the shape that will be timed
        model.reshape({model.inputs[0]: shape})
    except Exception as error:
        raise ShapeError(f"{target}: cannot take input shape {shape} ({openvino_reason(error)})") from None
    return path.resolve(), shape, count_graph(model)


def _import(target: str, module_name: str):
    if module_name.endswith(".py"):
        path = Path(module_name).expanduser()
        if not path.is_file():
            raise TargetError(f"{target}: no such file {module_name}")
        spec = importlib.util.spec_from_file_location(f"fff_user_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    from fff.measure.child_process import import_user_module

    # Console scripts, and fff's workers (started with -P), do not put the working directory on
    # sys.path; a user's `module:function` in it is still found.
    return import_user_module(module_name)


def call_model_function(target: str):
    """Import and call ``module:function``; returns (module, the function)."""
    from torch import nn

    match = FUNCTION_TARGET.match(target)
    if match is None:
        raise TargetError(f"{target}: not module:function")
    module_name, function_name = match["module"], match["function"]
    try:
        module = _import(target, module_name)
    except TargetError:
        raise
    except Exception as error:  # the user's code: any failure is theirs to fix, reported in one line
        raise TargetError(f"{target}: cannot import {module_name} ({type(error).__name__}: {error})") from error
    function = getattr(module, function_name, None)
    if not callable(function):
        raise TargetError(f"{target}: {module_name} has no function {function_name!r}")
    try:
        network = function()
    except Exception as error:
        raise TargetError(f"{target}: {function_name}() failed ({type(error).__name__}: {error})") from error
    if not isinstance(network, nn.Module):
        raise TargetError(f"{target}: {function_name}() returned {type(network).__name__}, not a torch.nn.Module")
    return network, function
