"""What a stack prepares at a cost, kept on disk and found by its content: the cache the stacks share.

An entry is a directory named by a key that hashes everything the artifact depends on
(``module_digest``: the target, its input shape, the module's structure and every tensor of its
state, with what the stack adds: versions, exporter). Its files are written into a staging
directory beside it, ``checksum.sha256`` over them last, and the directory is renamed into place
(``store_entry``), so a crash never leaves half an artifact where the cache would find it. An entry
whose files changed on disk (a disk error, a copy cut short, someone's edit) or that has no
checksum is made afresh (``entry_damage`` says why, for the stack's note) instead of the stack being
blamed for a parity failure. The OpenVINO IR, its int8 quantization, the ONNX export and its int8
quantization use it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

__all__ = ["CHECKSUM_NAME", "default_cache_dir", "entry_path", "module_digest", "checksum", "entry_damage",
           "store_entry"]

CHECKSUM_NAME = "checksum.sha256"


def default_cache_dir() -> Path:
    return Path(os.environ.get("FFF_CACHE_DIR") or Path.home() / ".cache" / "fff")


def entry_path(key: str, cache_dir=None) -> Path:
    """Where the entry named ``key`` lives (``cache_dir``, else $FFF_CACHE_DIR, else ~/.cache/fff)."""
    return Path(cache_dir if cache_dir is not None else default_cache_dir()).expanduser() / key


def module_digest(model, header: dict) -> str:
    """Hex digest (32 characters) over ``header`` and every tensor of ``model.module``'s state."""
    import torch

    digest = hashlib.sha256()
    digest.update(json.dumps(header, sort_keys=True).encode())
    for name, tensor in model.module.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        # Raw bytes through a uint8 view: works for every dtype (numpy has no bfloat16) without a copy.
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()[:32]


def checksum(entry: Path, files: tuple[str, ...]) -> str:
    """sha256 lines over the entry's ``files``, in the format of `sha256sum`."""
    lines = []
    for name in files:
        with open(entry / name, "rb") as f:
            lines.append(f"{hashlib.file_digest(f, 'sha256').hexdigest()}  {name}\n")
    return "".join(lines)


def entry_damage(entry: Path, files: tuple[str, ...]) -> str | None:
    """Why the entry cannot be used as it is ("absent", or what is wrong), None if it can; ``files[0]``
    is the artifact itself."""
    if not (entry / files[0]).is_file():
        return "absent"
    if not (entry / CHECKSUM_NAME).is_file():
        return "had no checksum (written by an older fff, or cut short)"
    try:
        same = (entry / CHECKSUM_NAME).read_text() == checksum(entry, files)
    except OSError as error:
        return f"could not be read ({error.strerror or error})"
    return None if same else "did not match its checksum (changed or damaged on disk)"


def store_entry(entry: Path, files: tuple[str, ...], write: Callable[[Path], None], meta: dict,
                replace: bool = False) -> None:
    """``write(staging)`` writes the artifact's files, ``meta`` goes into meta.json, the checksum over
    ``files`` last; then the staging directory is renamed into place (``replace``: over a damaged or
    suspect entry, which is moved aside first)."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        staging.chmod(0o755)  # mkdtemp's 0700 would keep a shared cache from being shared
        write(staging)
        (staging / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        (staging / CHECKSUM_NAME).write_text(checksum(staging, files))  # last: its presence means "complete"
        if replace and entry.exists():
            aside = Path(tempfile.mkdtemp(prefix=f".{entry.name}.old.", dir=entry.parent))
            entry.rename(aside / "entry")
            shutil.rmtree(aside, ignore_errors=True)
        try:
            staging.rename(entry)
        except OSError:
            # Another process finished the same artifact first: theirs is as good as ours.
            if not (entry / files[0]).is_file():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
