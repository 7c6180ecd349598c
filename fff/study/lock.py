"""One study at a time per results file and machine.

Two fff-study runs appending to one results file from one machine would both measure every cell
they lack while competing for the same cores, so each would spoil the other's numbers. A study
holds an exclusive ``flock`` on a lock file beside its results file for its whole run (``--resume``
and ``--shard`` runs included); a second one refuses at once with a one-line error, exit code 2.
The lock file's name carries the host name, so shards on different machines sharing a network
directory still run side by side. The kernel drops the lock when the process ends however it
ends, so a killed study never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import platform
from contextlib import contextmanager
from pathlib import Path

from fff.errors import UsageError

__all__ = ["lock_path", "study_lock"]


def lock_path(results: Path) -> Path:
    host = "".join(c if c.isalnum() or c in "-_." else "_" for c in platform.node()) or "host"
    return results.with_name(f"{results.name}.{host}.lock")


@contextmanager
def study_lock(results: Path):
    path = lock_path(Path(results))
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise UsageError(f"cannot create the lock file {path}: {error.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise UsageError(f"another fff-study (pid {holder}) is measuring into {results} on this machine; two "
                             f"would compete for the cores: wait for it to finish, or choose another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield path
    finally:
        os.close(fd)
