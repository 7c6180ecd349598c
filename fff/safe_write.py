"""Writing result files so that a fault costs as little as possible.

- ``check_writable`` tries, before anything is measured: it creates and removes a file beside
  the target (what a rename-into-place needs) or opens it for appending. ``os.access`` is no
  check: it says yes to root everywhere, even under /proc or on a read-only mount.
- ``write_text`` writes beside the target and renames over it, so a reader never sees half a
  file; the new file gets the mode the umask gives (or the old file's mode), not mkstemp's 0600.
  A target that exists and is not a regular file (/dev/stdout, a pipe) is written directly:
  renaming over a device would replace the device.
- ``save_fallback`` is where results go when their own path failed after the measurement (a
  full disk): the current directory, else the temp dir.
"""

from __future__ import annotations

import os
import stat
import tempfile
import time
from pathlib import Path

from fff.errors import UsageError

__all__ = ["check_writable", "write_text", "save_fallback", "default_mode"]


def default_mode() -> int:
    """0o666 less the umask: the mode `touch` or a shell redirection would give."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


def check_writable(path: str | Path, *, append: bool = False) -> Path:
    """``path`` if a results file can be written there; else UsageError naming why."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{path} is a directory, expected a file path")
    parent = path.parent
    if not parent.exists():
        raise UsageError(f"directory {parent} does not exist")
    try:
        if path.exists() and (append or not stat.S_ISREG(path.stat().st_mode)):
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK))  # writes nothing
        else:
            fd, probe = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.probe.")
            os.close(fd)
            os.unlink(probe)
    except OSError as error:
        raise UsageError(f"cannot write {path}: {_reason(error)}") from None
    return path


def write_text(path: str | Path, text: str) -> None:
    """Replace ``path`` with ``text`` whole, or leave it as it was (raises OSError)."""
    path = Path(path)
    data = text.encode()
    try:
        old = path.stat()
    except FileNotFoundError:
        old = None
    if old is not None and not stat.S_ISREG(old.st_mode):
        with open(path, "wb") as f:
            f.write(data)
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, stat.S_IMODE(old.st_mode) if old is not None else default_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def save_fallback(prog: str, suffix: str, text: str) -> tuple[Path | None, list[str]]:
    """Write ``text`` to a new file in the current directory, else the temp dir. Returns the
    path (None when neither took it) and, for each place that failed, why."""
    name = f"{prog}-unsaved-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}{suffix}"
    failures = []
    for directory in (Path.cwd(), Path(tempfile.gettempdir())):
        target = directory / name
        try:
            write_text(target, text)
            return target, failures
        except OSError as error:
            failures.append(f"{directory}: {_reason(error)}")
    return None, failures
