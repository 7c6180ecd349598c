"""PyTorch module -> OpenVINO IR with static shapes and f32 weights, cached by content.

``convert(model)`` returns the path of ``model.xml`` in a content-addressed cache
(``cache_dir``, else ``$FFF_CACHE_DIR``, else ``~/.cache/fff``). The key hashes everything the IR
depends on: the target's name, the input shape, the module's structure (its repr) and every
tensor of its state (weights and buffers), and the versions of fff, torch and openvino. A
second conversion of the same model is a cache hit and skips ``ov.convert_model``
(``is_cached`` says beforehand which it will be).

Why static shapes: ``ov.convert_model`` leaves input dims dynamic, and ``infer()`` on a model
with dynamic dims and no input set does no work at all. Why ``compress_to_fp16=False``:
``save_model`` otherwise stores f16 weights and the accelerated side would compute a different
function. Each IR is written into a temporary directory beside the cache entry and renamed into
place, so a crash never leaves half an IR where the cache would find it.

Each entry also carries ``checksum.sha256`` over its files, written last: an entry whose files
changed on disk (a disk error, a copy cut short, someone's edit) or that has no checksum is
converted afresh before use, and ``prepare_ir`` says so in a note, instead of OpenVINO being
blamed for a parity failure. ``fresh=True`` converts afresh regardless (the profiler does that
once when a cached IR fails the parity check) and replaces the entry.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from fff.backends import artifact_cache
from fff.backends.artifact_cache import CHECKSUM_NAME, default_cache_dir, entry_path, module_digest, store_entry
from fff.errors import CompileError, FffError, UsageError, allocation_failure, openvino_reason

__all__ = ["convert", "prepare_ir", "IrEntry", "is_cached", "cache_key", "default_cache_dir", "entry_damage",
           "store_ir", "IR_NAME", "IR_FILES", "CHECKSUM_NAME"]

IR_NAME = "model.xml"
IR_FILES = (IR_NAME, "model.bin", "meta.json")  # what an entry's checksum covers (fff.backends.artifact_cache)


@dataclass(frozen=True)
class IrEntry:
    xml: Path
    cached: bool  # found in the cache, checksum verified
    notes: tuple[str, ...] = ()


def entry_damage(entry: Path) -> str | None:
    """Why the IR's cache entry cannot be used as it is ("absent", or what is wrong), None if it can."""
    return artifact_cache.entry_damage(entry, IR_FILES)


def _versions() -> dict[str, str]:
    import openvino
    import torch

    from fff import __version__

    return {"fff": __version__, "torch": torch.__version__, "openvino": openvino.get_version()}


def cache_key(model) -> str:
    """Hex digest over the target, shape, structure, weights and versions (module docstring)."""
    if model.module is None:
        raise UsageError(f"{model.name}: a model file has nothing to convert; use its path directly")
    return module_digest(model, {"target": model.name, "input_shape": list(model.input_shape),
                                 "versions": _versions(), "structure": repr(model.module)})


def _entry(model, cache_dir) -> Path:
    return entry_path(cache_key(model), cache_dir)


def is_cached(model, *, cache_dir=None) -> bool:
    """Whether ``convert(model, cache_dir=...)`` would find its IR in the cache, unchanged."""
    return entry_damage(_entry(model, cache_dir)) is None


def _convert_static(model):
    """ov.convert_model traced at the model's own input, with every input dim fixed."""
    import openvino as ov
    import torch

    example = torch.zeros(model.input_shape)
    with warnings.catch_warnings(), torch.no_grad():
        # openvino traces with torch.jit.trace (and trace_method), which torch >= 2.9 marks
        # deprecated: a FutureWarning about openvino's internals that the user can do nothing about.
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.trace.* is deprecated", category=FutureWarning)
        # torch's own shape checks (nn.MultiheadAttention's, in nn.functional) compare traced sizes;
        # the input shape is static here, so every branch on a shape traces as it runs.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        try:
            ov_model = ov.convert_model(model.module, example_input=example, input=[list(model.input_shape)])
        except Exception as error:  # the frontends raise plain Exceptions for unsupported ops
            if allocation_failure(error) is not None:
                raise  # the builder turns it into "input too large"
            raise CompileError(f"{model.name}: OpenVINO could not convert it ({openvino_reason(error)})") from None
    for port in ov_model.inputs:
        if port.get_partial_shape().is_dynamic:
            ov_model.reshape({port: ov.PartialShape(list(model.input_shape))})
    return ov_model


def convert(model, *, cache_dir=None) -> Path:
    """The path to ``model``'s static-shape f32 IR, converting only on a cache miss."""
    return prepare_ir(model, cache_dir=cache_dir).xml


def prepare_ir(model, *, cache_dir=None, fresh: bool = False) -> IrEntry:
    """``model``'s IR: from the cache when its checksum holds, else converted (and stored)."""
    entry = _entry(model, cache_dir)
    damage = entry_damage(entry)
    if damage is None and not fresh:
        return IrEntry(entry / IR_NAME, cached=True)
    notes = ()
    if damage not in (None, "absent"):
        notes = (f"{model.name}: the cached IR in {entry} {damage}; converted afresh",)
    ov_model = _convert_static(model)
    try:
        store_ir(ov_model, entry, {"target": model.name, "input_shape": list(model.input_shape),
                                   "source": model.source, "versions": _versions()}, replace=damage != "absent")
    except (OSError, RuntimeError) as error:  # openvino reports a failed write as RuntimeError
        raise FffError(f"{model.name}: cannot write the IR into the cache at {entry.parent} ({error}); "
                       "set FFF_CACHE_DIR to a writable directory") from error
    return IrEntry(entry / IR_NAME, cached=False, notes=notes)


def store_ir(ov_model, entry: Path, meta: dict, replace: bool = False):
    """Save ``ov_model`` (f32 weights) and ``meta`` (meta.json) as the cache entry ``entry``
    (fff.backends.artifact_cache.store_entry: staged, checksummed, renamed into place)."""
    import openvino as ov

    store_entry(entry, IR_FILES, lambda staging: ov.save_model(ov_model, str(staging / IR_NAME), compress_to_fp16=False),
                meta, replace=replace)
