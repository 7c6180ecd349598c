"""PyTorch module -> static-shape ONNX file, cached on disk by content.

Which exporter: ``torch.onnx.export(..., dynamo=False)``, the TorchScript exporter, opset
``OPSET``. The dynamo exporter (the default since torch 2.9) has produced wrong ResNets
(pytorch#169178, #166797) and needs ``onnxscript``; the TorchScript one traces the module as it
runs, folds batch norm into the convolutions in eval mode and names every node after its module
scope (``/layer1/layer1.0/conv2/Conv``), which the per-layer attribution reads
(fff.backends.ort.attribution). Every record names the exporter (``EXPORTER``) in its
configuration, and the profiler's parity check decides whether the export computes the same
function. With no ``dynamic_axes`` every input and output dimension is the concrete one the
model was traced at: static shapes, as the OpenVINO IR has.

The cache is fff.backends.artifact_cache, as for OpenVINO's IR: the key hashes the target, the input shape,
the module's structure and every tensor of its state, the exporter, the opset and the versions of
fff, torch and onnx; an entry is ``model.onnx`` and ``meta.json`` with ``checksum.sha256`` over
them written last, staged in a temporary directory and renamed into place. A damaged entry (no
checksum, or one that no longer matches) is exported afresh with a note; ``fresh=True`` exports
afresh regardless (the profiler does that once when a cached export fails the parity check).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from fff.backends.artifact_cache import entry_damage, entry_path, module_digest, store_entry
from fff.errors import CompileError, FffError, UsageError, allocation_failure

__all__ = ["prepare_onnx", "OnnxEntry", "cache_key", "EXPORTER", "OPSET", "ONNX_NAME"]

OPSET = 17  # supported by the TorchScript exporter and by every onnxruntime since 1.11
EXPORTER = f"torch.onnx.export TorchScript exporter (dynamo=False), opset {OPSET}"
ONNX_NAME = "model.onnx"
ONNX_FILES = (ONNX_NAME, "meta.json")  # what an entry's checksum covers (fff.backends.artifact_cache)
INPUT_NAME, OUTPUT_NAME = "input", "output"


@dataclass(frozen=True)
class OnnxEntry:
    path: Path
    cached: bool  # found in the cache, checksum verified
    notes: tuple[str, ...] = ()


def _versions() -> dict[str, str]:
    import onnx
    import torch

    from fff import __version__

    return {"fff": __version__, "torch": torch.__version__, "onnx": onnx.__version__}


def cache_key(model) -> str:
    """Hex digest over the target, shape, structure, weights, exporter and versions."""
    if model.module is None:
        raise UsageError(f"{model.name}: a model file has nothing to export; use its path directly")
    return "onnx-" + module_digest(model, {"kind": "onnx", "exporter": EXPORTER, "target": model.name,
                                           "input_shape": list(model.input_shape), "versions": _versions(),
                                           "structure": repr(model.module)})


def prepare_onnx(model, *, cache_dir=None, fresh: bool = False) -> OnnxEntry:
    """``model``'s ONNX file: from the cache when its checksum holds, else exported (and stored)."""
    entry = entry_path(cache_key(model), cache_dir)
    damage = entry_damage(entry, ONNX_FILES)
    if damage is None and not fresh:
        return OnnxEntry(entry / ONNX_NAME, cached=True)
    notes = ()
    if damage not in (None, "absent"):
        notes = (f"{model.name}: the cached ONNX export in {entry} {damage}; exported afresh",)
    meta = {"target": model.name, "input_shape": list(model.input_shape), "source": model.source,
            "exporter": EXPORTER, "versions": _versions()}
    try:
        store_entry(entry, ONNX_FILES, lambda staging: _export(model, staging / ONNX_NAME), meta,
                    replace=damage != "absent")
    except OSError as error:
        raise FffError(f"{model.name}: cannot write the ONNX export into the cache at {entry.parent} ({error}); "
                       "set FFF_CACHE_DIR to a writable directory") from error
    return OnnxEntry(entry / ONNX_NAME, cached=False, notes=notes)


def _export(model, path: Path) -> None:
    """The TorchScript exporter at the model's own input shape: every dimension static."""
    import torch

    example = torch.zeros(model.input_shape)
    with warnings.catch_warnings(), torch.no_grad():
        # Deprecated upstream in favour of the dynamo exporter, which this module avoids on purpose
        # (module docstring): a warning the user can do nothing about.
        warnings.filterwarnings("ignore", message=r".*legacy TorchScript-based ONNX export", category=DeprecationWarning)
        # ... and torch's exporter calls its own deprecated helpers (setup_onnx_logging, exporter_context).
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx\.")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # said by parity if it matters
        try:
            torch.onnx.export(model.module, (example,), str(path), dynamo=False, opset_version=OPSET,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], do_constant_folding=True)
        except Exception as error:  # the exporter raises many types for unsupported operators
            if allocation_failure(error) is not None:
                raise  # the builder turns it into "input too large"
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise CompileError(f"{model.name}: onnxruntime: torch.onnx.export could not export it ({reason})") from None
