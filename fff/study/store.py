"""Study results on disk: an append-only JSON Lines file, one line per finished cell (plus the
sweep's short "started"/"interrupted" bookkeeping lines, which readers of results skip).

Why it survives faults:
- a cell's line (both backends' records, or its error) is written with one ``write`` call
  while holding an exclusive ``flock``, so two processes appending to one file (two shards
  sharing a network directory, say) never interleave parts of lines;
- each append is ``fsync``'d before the next cell starts, so a power cut or SIGKILL loses at
  most the cell in progress;
- a kill in the middle of a write leaves at most a torn last line: readers skip it with a note,
  and the next append starts on a fresh line so the torn piece never swallows a good row;
- a write that fails or falls short (a full disk) is undone: the file is truncated back to its
  size before the append, under the same lock, and each append is read back and compared, so a
  row is in the file whole (as ``read_rows`` will read it) or not at all. The failure is a
  ResultsWriteError naming the file and the reason; a finished cell's row is first saved to a
  fallback file (current directory, else the temp dir) so the measurement is not lost.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from fff.errors import FffError

__all__ = ["ROW_SCHEMA", "ResultsFile", "ReadOutcome", "ResultsWriteError", "read_rows"]

ROW_SCHEMA = "fff.study/1"
_FINISHED = ("ok", "error")  # rows that hold a measurement; the others are bookkeeping


class ResultsWriteError(FffError):
    """A row could not be appended; the results file is as it was before the attempt."""

    def __init__(self, path: Path, reason: str, fallback: Path | None = None):
        self.path, self.reason, self.fallback = path, reason, fallback
        saved = f"; the finished cell's row was saved to {fallback} (give fff-report both files)" if fallback else ""
        super().__init__(f"cannot append to {path} ({reason}); nothing partial was left in it{saved}; "
                         f"once it can be written, continue the study with --resume")


# How every row fff writes begins (json.dumps of a dict whose first key is "schema", no spaces).
_ROW_START = ('{"schema":"' + ROW_SCHEMA + '"').encode()


def _torn_row(line: bytes) -> bool:
    """Whether a line that does not parse is the beginning of one of fff's own rows (a write cut
    short by a kill or a power cut), rather than text from elsewhere."""
    compact = b"".join(line.split())  # rows are written without spaces; a hand-made one may have them
    length = min(len(compact), len(_ROW_START))
    return length > 0 and compact[:length] == _ROW_START[:length]


@dataclass
class ReadOutcome:
    """The rows that parsed, and what was skipped and why (never silently)."""

    rows: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    foreign: list[int] = field(default_factory=list)  # line numbers that fff-study did not write

    def not_a_study(self, path: Path) -> str | None:
        """Why the file is not an fff-study results file (so not to be resumed or appended to); None if it is."""
        if self.foreign:
            return f"{path} is not an fff-study results file (line {self.foreign[0]} is not an fff-study row)"
        if not self.rows:
            return f"{path} holds no fff-study rows"
        return None


def read_rows(path: str | Path) -> ReadOutcome:
    """Every complete row of a results file, in file order. A line that does not parse is
    skipped with a note: the last one is a write cut short by a kill, others are damage."""
    path = Path(path)
    outcome = ReadOutcome()
    data = path.read_bytes()
    lines = data.split(b"\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        torn = number == len(lines)  # no newline after it: the write never finished
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            if not _torn_row(line):
                outcome.foreign.append(number)
            outcome.notes.append(f"{path}: line {number} is incomplete (a write cut short by a kill); skipped"
                                 if torn else f"{path}: line {number} is not valid JSON; skipped")
            continue
        if not isinstance(row, dict) or row.get("schema") != ROW_SCHEMA:
            outcome.foreign.append(number)
            outcome.notes.append(f"{path}: line {number} is not a {ROW_SCHEMA} row; skipped")
            continue
        outcome.rows.append(row)
    return outcome


class ResultsFile:
    """Append rows to a JSON Lines file, each whole and durable before ``append`` returns."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def exists_with_content(self) -> bool:
        return self.path.exists() and self.path.stat().st_size > 0

    def check_writable(self) -> None:
        """UsageError now, before anything is measured, if rows could not be appended."""
        from fff.safe_write import check_writable

        check_writable(self.path, append=True)

    def append(self, row: dict) -> None:
        line = (json.dumps(row, separators=(",", ":"), default=str) + "\n").encode()
        if b"\n" in line[:-1]:  # json.dumps escapes newlines in strings; a raw one would split the row
            raise AssertionError("a results row must be a single line")
        created = not self.path.exists()
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)  # read: the last byte
        except OSError as error:
            raise self._failed(row, line, error) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = b"\n" + line  # close a torn line left by a killed writer
                try:
                    self._write_whole(fd, line, size)
                except OSError as error:
                    try:  # undo whatever part reached the file: a row is whole or absent
                        os.ftruncate(fd, size)
                        os.fsync(fd)
                    except OSError:
                        pass
                    raise self._failed(row, line, error) from None
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
        if created:  # make the new directory entry itself durable
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)

    @staticmethod
    def _write_whole(fd: int, line: bytes, size: int) -> None:
        view = memoryview(line)
        while view:  # one write for a regular file; the loop only guards short writes
            written = os.write(fd, view)
            if written == 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            view = view[written:]
        os.fsync(fd)
        if os.pread(fd, len(line), size) != line:  # what --resume will read
            raise OSError(errno.EIO, "the row read back differs from the row written")

    def _failed(self, row: dict, line: bytes, error: OSError) -> ResultsWriteError:
        fallback = None
        if row.get("status") in _FINISHED:
            from fff.safe_write import save_fallback

            fallback, _ = save_fallback("fff-study", ".jsonl", line.lstrip(b"\n").decode())
        return ResultsWriteError(self.path, error.strerror or str(error), fallback)
