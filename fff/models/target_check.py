"""A target string checked without building it: what kind it is, and whether it can be right.

Everything here is said from the text, the file system and the module search path alone, never by
importing torch, torchvision or openvino or starting a child (which take seconds): a typo is
refused at the door, before the first target is built (``fff-profile``) or the first cell is
measured (``fff-study``). What only building can tell (a model file that is not a model, a
function that raises, an input shape a zoo model cannot take) is left to ``fff.models.build``,
which takes the kind from here, so the two can never disagree on what a target is.

Kinds, tried in this order: ``zoo`` (a name in ``fff.models.names.ZOO_MODELS``), ``file`` (ends in
``.onnx`` or ``.xml``), ``pattern`` (a pattern name, or anything with ``key=value`` after a colon),
``function`` (``module:function``).
"""

from __future__ import annotations

import difflib
import importlib.machinery
import importlib.util
import os
from pathlib import Path

from fff.errors import ModelFileError, TargetError
from fff.models import spec as specs
from fff.models.names import PATTERN_DESCRIPTIONS, ZOO_MODELS
from fff.models.user import FUNCTION_TARGET, MODEL_FILE_SUFFIXES, resolve_shape

__all__ = ["TARGET_KINDS", "target_kind", "check_target"]

TARGET_KINDS = ("a zoo name (e.g. resnet50, darts; see fff-profile --list)",
                "a pattern spec PATTERN[:depth=N,width=W,resolution=R,batch=B,classes=K] (e.g. dw-bottleneck:depth=8)",
                "an .onnx or OpenVINO .xml file",
                "module:function returning a torch.nn.Module")


def target_kind(target: str) -> str:
    """``zoo``, ``file``, ``pattern`` or ``function``; a TargetError (with the nearest names) for
    text that is none of them."""
    if not isinstance(target, str) or not target.strip():
        raise TargetError(f"empty target {target!r}; a target is " + "; or ".join(TARGET_KINDS))
    target = target.strip()
    if target in ZOO_MODELS:
        return "zoo"
    if target.lower().endswith(MODEL_FILE_SUFFIXES):
        return "file"
    pattern, colon, rest = target.partition(":")
    if pattern.strip() in PATTERN_DESCRIPTIONS or (colon and "=" in rest):
        return "pattern"
    if FUNCTION_TARGET.match(target):
        return "function"
    close = difflib.get_close_matches(target, [*ZOO_MODELS, *PATTERN_DESCRIPTIONS], n=3)
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    raise TargetError(f"unknown target {target!r}{hint}; a target is " + "; or ".join(TARGET_KINDS))


def _check_file(target: str) -> None:
    path = Path(target).expanduser()
    if not path.is_file():
        raise ModelFileError(f"{target}: no such model file" if not path.exists() else f"{target}: not a file")
    if not os.access(path, os.R_OK):
        raise ModelFileError(f"{target}: cannot be read (permission denied)")
    if path.suffix.lower() == ".xml" and not path.with_suffix(".bin").is_file():
        raise ModelFileError(f"{target}: the IR's weights file {path.with_suffix('.bin').name} is missing beside it")


def _module_findable(name: str) -> bool:
    """Whether ``import name``'s top-level package exists, on sys.path or in the working directory
    (where fff.measure.child_process.import_user_module also looks), without importing anything:
    a submodule can only be found by importing its package, which may import torch."""
    top = name.split(".")[0]
    try:
        if importlib.util.find_spec(top) is not None:
            return True
    except (ImportError, ValueError):
        return True  # found but odd (a broken package): building says what is wrong with it
    return importlib.machinery.PathFinder.find_spec(top, [os.getcwd()]) is not None


def _check_function(target: str) -> None:
    module_name = FUNCTION_TARGET.match(target)["module"]
    if module_name.endswith(".py"):
        if not Path(module_name).expanduser().is_file():
            raise TargetError(f"{target}: no such file {module_name}")
    elif not _module_findable(module_name):
        raise TargetError(f"{target}: cannot import {module_name} (no module named "
                          f"{module_name.split('.')[0]!r} on the Python path or in the working directory)")


def check_target(target: str, *, batch: int | None = None, resolution: int | None = None,
                 input_shape: tuple[int, ...] | None = None) -> str:
    """``target``'s kind, after every check that needs no model: a zoo name known, a pattern spec
    valid with these options, a model file present (and an IR's weights beside it), a function's
    module or file there. A one-line FffError otherwise."""
    kind = target_kind(target)
    target = target.strip()
    if kind == "zoo":  # the shape a zoo model is given, checked as build() will
        resolution_of = ZOO_MODELS[target][0]
        resolve_shape(target, [1, 3, resolution_of, resolution_of], input_shape=input_shape, batch=batch,
                      resolution=resolution)
    elif kind == "file":
        _check_file(target)
    elif kind == "pattern":
        specs.with_build_options(specs.parse(target), target, batch=batch, resolution=resolution,
                                 input_shape=input_shape)
    else:
        _check_function(target)
    return kind
