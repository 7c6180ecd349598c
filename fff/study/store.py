"""Study results on disk: an append-only JSON Lines file, one line per finished cell (plus the
sweep's short "started"/"interrupted" bookkeeping lines, which readers of results skip).

Why it survives faults:
- a cell's line (both backends' records, or its error) is written with one ``write`` call
  while holding an exclusive ``flock``, so two processes appending to one file (two shards
  sharing a network directory, say) never interleave parts of lines;
- each append is ``fsync``'d before the next cell starts, so a power cut or SIGKILL loses at
  most the cell in progress;
- a kill in the middle of a write leaves at most a torn last line: readers skip it with a note,
  and the next append starts on a fresh line so the torn piece never swallows a good row.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ROW_SCHEMA", "ResultsFile", "ReadOutcome", "read_rows"]

ROW_SCHEMA = "fff.study/1"


@dataclass
class ReadOutcome:
    """The rows that parsed, and what was skipped and why (never silently)."""

    rows: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


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
            outcome.notes.append(f"{path}: line {number} is incomplete (a write cut short by a kill); skipped"
                                 if torn else f"{path}: line {number} is not valid JSON; skipped")
            continue
        if not isinstance(row, dict) or row.get("schema") != ROW_SCHEMA:
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

    def append(self, row: dict) -> None:
        line = (json.dumps(row, separators=(",", ":"), default=str) + "\n").encode()
        if b"\n" in line[:-1]:  # json.dumps escapes newlines in strings; a raw one would split the row
            raise AssertionError("a results row must be a single line")
        created = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)  # read: the last byte
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = b"\n" + line  # close a torn line left by a killed writer
                view = memoryview(line)
                while view:  # one write for a regular file; the loop only guards short writes
                    view = view[os.write(fd, view):]
                os.fsync(fd)
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
