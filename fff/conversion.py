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
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

from fff.errors import CompileError, FffError, UsageError, openvino_reason

__all__ = ["convert", "is_cached", "cache_key", "default_cache_dir", "IR_NAME"]

IR_NAME = "model.xml"


def default_cache_dir() -> Path:
    return Path(os.environ.get("FFF_CACHE_DIR") or Path.home() / ".cache" / "fff")


def _versions() -> dict[str, str]:
    import openvino
    import torch

    from fff import __version__

    return {"fff": __version__, "torch": torch.__version__, "openvino": openvino.get_version()}


def cache_key(model) -> str:
    """Hex digest over the target, shape, structure, weights and versions (module docstring)."""
    import torch

    if model.module is None:
        raise UsageError(f"{model.name}: a model file has nothing to convert; use its path directly")
    digest = hashlib.sha256()
    header = {"target": model.name, "input_shape": list(model.input_shape), "versions": _versions(),
              "structure": repr(model.module)}
    digest.update(json.dumps(header, sort_keys=True).encode())
    for name, tensor in model.module.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        # Raw bytes through a uint8 view: works for every dtype (numpy has no bfloat16) without a copy.
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()[:32]


def _entry(model, cache_dir) -> Path:
    return Path(cache_dir if cache_dir is not None else default_cache_dir()).expanduser() / cache_key(model)


def is_cached(model, *, cache_dir=None) -> bool:
    """Whether ``convert(model, cache_dir=...)`` would find its IR in the cache."""
    return (_entry(model, cache_dir) / IR_NAME).is_file()


def _convert_static(model):
    """ov.convert_model traced at the model's own input, with every input dim fixed."""
    import openvino as ov
    import torch

    example = torch.zeros(model.input_shape)
    with warnings.catch_warnings(), torch.no_grad():
        # openvino traces with torch.jit.trace (and trace_method), which torch >= 2.9 marks
        # deprecated: a FutureWarning about openvino's internals that the user can do nothing about.
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.trace.* is deprecated", category=FutureWarning)
        try:
            ov_model = ov.convert_model(model.module, example_input=example, input=[list(model.input_shape)])
        except Exception as error:  # the frontends raise plain Exceptions for unsupported ops
            raise CompileError(f"{model.name}: OpenVINO could not convert it ({openvino_reason(error)})") from None
    for port in ov_model.inputs:
        if port.get_partial_shape().is_dynamic:
            ov_model.reshape({port: ov.PartialShape(list(model.input_shape))})
    return ov_model


def convert(model, *, cache_dir=None) -> Path:
    """The path to ``model``'s static-shape f32 IR, converting only on a cache miss."""
    entry = _entry(model, cache_dir)
    xml = entry / IR_NAME
    if xml.is_file():
        return xml
    ov_model = _convert_static(model)
    try:
        _store(model, ov_model, entry)
    except (OSError, RuntimeError) as error:  # openvino reports a failed write as RuntimeError
        raise FffError(f"{model.name}: cannot write the IR into the cache at {entry.parent} ({error}); "
                       "set FFF_CACHE_DIR to a writable directory") from error
    return xml


def _store(model, ov_model, entry: Path):
    """Save into a staging directory beside ``entry``, then rename it into place."""
    import openvino as ov

    entry.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        staging.chmod(0o755)  # mkdtemp's 0700 would keep a shared cache from being shared
        ov.save_model(ov_model, str(staging / IR_NAME), compress_to_fp16=False)
        (staging / "meta.json").write_text(json.dumps(
            {"target": model.name, "input_shape": list(model.input_shape), "source": model.source,
             "versions": _versions()}, indent=1) + "\n")
        try:
            staging.rename(entry)
        except OSError:
            # Another process finished the same conversion first: theirs is as good as ours.
            if not (entry / IR_NAME).is_file():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
