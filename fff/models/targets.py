"""From a target string to a built model: ``build(target) -> Model``.

A target is one of (tried in this order):

- a zoo name (``resnet50``, ``darts``; ``fff.models.zoo.ZOO``),
- an ``.onnx`` or OpenVINO ``.xml`` file path,
- a pattern spec (``dw-bottleneck:depth=8,width=1.0``; grammar in ``fff.models.spec``),
- ``module:function`` returning an ``nn.Module`` (``module`` may be a path to a ``.py`` file).

Weights are random but deterministic: every module is constructed right after
``torch.manual_seed(0)`` (in a forked RNG, the caller's RNG state is untouched), so building the
same target twice, in any process, gives the same weights — the conversion cache and the
PyTorch worker rely on that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from fff.errors import ShapeError, UsageError
from fff.models import spec as specs
from fff.models.flops import count_flops
from fff.models.names import DEFAULT_TARGET, list_targets
from fff.models.patterns import PATTERNS, pattern_network
from fff.models.target_check import TARGET_KINDS, target_kind
from fff.models.user import call_model_function, read_model_file, resolve_shape
from fff.models.zoo import ZOO

__all__ = ["Model", "build", "list_targets", "DEFAULT_TARGET", "TARGET_KINDS"]



@dataclass(frozen=True, eq=False)
class Model:
    """A built target. FLOPs are 2 x multiply-adds for one inference of the whole batch
    (``fff.models.flops``; ``fff.models.graph_flops`` for model files); ``uncounted_ops`` are the
    operators that count leaves out."""

    name: str  # the canonical target: zoo name, canonical spec, file path or module:function
    kind: str  # "zoo", "pattern", "file" or "function"
    module: nn.Module | None = field(repr=False)  # eval mode; None for file targets
    input_shape: tuple[int, ...]
    flops: int
    params: int
    source: str  # where it came from, for people
    path: Path | None = None  # the model file, for file targets
    uncounted_ops: tuple[str, ...] = ()
    spec: specs.Spec | None = field(default=None, repr=False)
    flops_counter: str = "torch.utils.flop_counter"  # what counted ``flops``, for the record
    input_shape_source: str | None = None  # where fff inferred part of the input shape, said in the record
    outputs: tuple[str, ...] = ()  # the output tensors' names, in order (fff.models.outputs); () for files


def _check_option(name: str, value):
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise UsageError(f"{name} must be a whole number >= 1, got {value!r}")


def build(target: str, *, batch: int | None = None, resolution: int | None = None,
          input_shape: tuple[int, ...] | None = None) -> Model:
    """Build ``target`` (module docstring) with its input shape, FLOPs and parameter count.

    ``batch`` and ``resolution`` override the target's own (a spec's, a zoo model's published
    resolution, a file's); ``input_shape`` gives the whole shape, for files with dynamic
    dimensions and functions without an ``input_shape`` attribute.
    """
    _check_option("batch", batch)
    _check_option("resolution", resolution)
    if input_shape is not None:
        input_shape = tuple(input_shape)
        for d in input_shape:
            _check_option("every input_shape dim", d)
    kind = target_kind(target)  # fff.models.target_check: the same reading fff-profile refused typos with
    target = target.strip()
    options = dict(batch=batch, resolution=resolution, input_shape=input_shape)
    if kind == "zoo":
        return _build_zoo(target, **options)
    if kind == "file":
        path, shape, counted = read_model_file(target, **options)
        return Model(name=target, kind="file", module=None, input_shape=shape, flops=counted.flops,
                     params=counted.params, source=f"model file {path}", path=path, uncounted_ops=counted.uncounted,
                     flops_counter="fff.models.graph_flops, from the OpenVINO graph")
    if kind == "pattern":
        return _build_pattern(target, **options)
    return _build_function(target, **options)


def _construct(make):
    """Build a module from seed 0, leaving the caller's RNG where it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        module = make()
    return module.eval() if isinstance(module, nn.Module) else module


def _finish(name, kind, module, shape, source, spec=None, input_shape_source=None) -> Model:
    example = torch.zeros(shape)
    try:
        counted = count_flops(module, example, name)
    except (RuntimeError, ValueError, IndexError, AssertionError) as error:  # torch._assert raises AssertionError
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ShapeError(f"{name}: cannot run on input shape {tuple(shape)} ({reason})") from None
    params = sum(p.numel() for p in module.parameters())
    return Model(name=name, kind=kind, module=module, input_shape=tuple(shape), flops=counted.flops, params=params,
                 source=source, uncounted_ops=counted.uncounted, spec=spec, input_shape_source=input_shape_source,
                 outputs=counted.outputs)


def _build_zoo(name, *, batch, resolution, input_shape):
    entry = ZOO[name]
    shape = resolve_shape(name, [1, 3, entry.resolution, entry.resolution], input_shape=input_shape, batch=batch,
                          resolution=resolution)
    try:
        module = _construct(lambda: entry.make(1000, shape[-1]))
    except ValueError as error:  # a model that builds for its input size refuses this one (maxvit_t)
        reason = str(error).strip().splitlines()[0]
        raise ShapeError(f"{name}: cannot be built for input shape {tuple(shape)} ({reason})") from None
    return _finish(name, "zoo", module, shape, f"{entry.source}, random weights (seed 0)")


def _build_pattern(target, *, batch, resolution, input_shape):
    spec = specs.with_build_options(specs.parse(target), target, batch=batch, resolution=resolution,
                                    input_shape=input_shape)
    module = _construct(lambda: pattern_network(spec.pattern, spec.depth, spec.width, spec.classes,
                                                spec.resolution))
    return _finish(str(spec), "pattern", module, spec.input_shape,
                   f"fff.models.patterns: {PATTERNS[spec.pattern].description}, random weights (seed 0)", spec=spec)


def _build_function(target, *, batch, resolution, input_shape):
    network, function = _construct(lambda: call_model_function(target))
    declared = getattr(network, "input_shape", None) or getattr(function, "input_shape", None)
    inferred = None
    if input_shape is None and declared is None:
        channels = _first_conv_channels(network)
        if channels is None or resolution is None:
            raise ShapeError(f"{target}: no input shape; give input_shape (--input-shape N,C,H,W), set an "
                             "input_shape attribute on the module or the function, or give a resolution "
                             "(--resolution) for a network whose first layer is a Conv2d")
        declared = (1, channels, resolution, resolution)
        inferred = f"{channels} channels from the first layer (Conv2d in_channels), resolution {resolution}"
    try:
        dims = list(declared) if declared is not None else None
    except TypeError:
        raise ShapeError(f"{target}: its input_shape attribute {declared!r} is not a sequence of dims") from None
    shape = resolve_shape(target, dims, input_shape=input_shape, batch=batch, resolution=resolution)
    return _finish(target, "function", network.eval(), shape, f"{target} (the user's function), torch seed 0",
                   input_shape_source=inferred)


def _first_conv_channels(network: nn.Module) -> int | None:
    """The input channels of an image network whose first layer (the first module with weights, in
    definition order) is a Conv2d; None where that cannot be known."""
    first = next((m for m in network.modules() if next(m.parameters(recurse=False), None) is not None), None)
    if isinstance(first, nn.Conv2d) and not isinstance(first, nn.modules.lazy.LazyModuleMixin) and first.in_channels > 0:
        return first.in_channels
    return None
