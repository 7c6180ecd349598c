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

The cache follows fff.backends.openvino.conversion: the key hashes the target, the input shape,
the module's structure and every tensor of its state, the exporter, the opset and the versions of
fff, torch and onnx; an entry is ``model.onnx`` and ``meta.json`` with ``checksum.sha256`` over
them written last, staged in a temporary directory and renamed into place. A damaged entry (no
checksum, or one that no longer matches) is exported afresh with a note; ``fresh=True`` exports
afresh regardless (the profiler does that once when a cached export fails the parity check).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from fff.errors import CompileError, FffError, UsageError, allocation_failure

__all__ = ["prepare_onnx", "OnnxEntry", "cache_key", "EXPORTER", "OPSET", "ONNX_NAME"]

OPSET = 17  # supported by the TorchScript exporter and by every onnxruntime since 1.11
EXPORTER = f"torch.onnx.export TorchScript exporter (dynamo=False), opset {OPSET}"
ONNX_NAME = "model.onnx"
CHECKSUM_NAME = "checksum.sha256"
_CHECKED_FILES = (ONNX_NAME, "meta.json")
INPUT_NAME, OUTPUT_NAME = "input", "output"


@dataclass(frozen=True)
class OnnxEntry:
    path: Path
    cached: bool  # found in the cache, checksum verified
    notes: tuple[str, ...] = ()


def _checksum(entry: Path) -> str:
    lines = []
    for name in _CHECKED_FILES:
        with open(entry / name, "rb") as f:
            lines.append(f"{hashlib.file_digest(f, 'sha256').hexdigest()}  {name}\n")
    return "".join(lines)


def _damage(entry: Path) -> str | None:
    """Why the entry cannot be used as it is ("absent", or what is wrong), None if it can."""
    if not (entry / ONNX_NAME).is_file():
        return "absent"
    if not (entry / CHECKSUM_NAME).is_file():
        return "had no checksum (cut short)"
    try:
        same = (entry / CHECKSUM_NAME).read_text() == _checksum(entry)
    except OSError as error:
        return f"could not be read ({error.strerror or error})"
    return None if same else "did not match its checksum (changed or damaged on disk)"


def _versions() -> dict[str, str]:
    import onnx
    import torch

    from fff import __version__

    return {"fff": __version__, "torch": torch.__version__, "onnx": onnx.__version__}


def cache_key(model) -> str:
    """Hex digest over the target, shape, structure, weights, exporter and versions."""
    import torch

    if model.module is None:
        raise UsageError(f"{model.name}: a model file has nothing to export; use its path directly")
    digest = hashlib.sha256()
    header = {"kind": "onnx", "exporter": EXPORTER, "target": model.name, "input_shape": list(model.input_shape),
              "versions": _versions(), "structure": repr(model.module)}
    digest.update(json.dumps(header, sort_keys=True).encode())
    for name, tensor in model.module.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())  # raw bytes, any dtype, no copy
    return "onnx-" + digest.hexdigest()[:32]


def _default_cache_dir() -> Path:
    from fff.backends.openvino.conversion import default_cache_dir  # one cache directory for every stack

    return default_cache_dir()


def prepare_onnx(model, *, cache_dir=None, fresh: bool = False) -> OnnxEntry:
    """``model``'s ONNX file: from the cache when its checksum holds, else exported (and stored)."""
    entry = Path(cache_dir if cache_dir is not None else _default_cache_dir()).expanduser() / cache_key(model)
    damage = _damage(entry)
    if damage is None and not fresh:
        return OnnxEntry(entry / ONNX_NAME, cached=True)
    notes = ()
    if damage not in (None, "absent"):
        notes = (f"{model.name}: the cached ONNX export in {entry} {damage}; exported afresh",)
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    except OSError as error:
        raise FffError(f"{model.name}: cannot write the ONNX export into the cache at {entry.parent} ({error}); "
                       "set FFF_CACHE_DIR to a writable directory") from error
    try:
        staging.chmod(0o755)  # mkdtemp's 0700 would keep a shared cache from being shared
        _export(model, staging / ONNX_NAME)
        (staging / "meta.json").write_text(json.dumps(
            {"target": model.name, "input_shape": list(model.input_shape), "source": model.source,
             "exporter": EXPORTER, "versions": _versions()}, indent=1) + "\n")
        (staging / CHECKSUM_NAME).write_text(_checksum(staging))  # last: its presence means "complete"
        if damage != "absent" and entry.exists():
            aside = Path(tempfile.mkdtemp(prefix=f".{entry.name}.old.", dir=entry.parent))
            entry.rename(aside / "entry")
            shutil.rmtree(aside, ignore_errors=True)
        try:
            staging.rename(entry)
        except OSError:
            if not (entry / ONNX_NAME).is_file():  # not another process's identical export
                raise
    except OSError as error:
        raise FffError(f"{model.name}: cannot write the ONNX export into the cache at {entry.parent} ({error}); "
                       "set FFF_CACHE_DIR to a writable directory") from error
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
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
