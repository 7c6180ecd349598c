"""The study's progress on stderr: a bar with the cells done, the time left and the cell in hand.

On a terminal one line is redrawn in place; in a log (a batch job's output file) each finished
cell gets a line of its own, so the log stays readable.
"""

from __future__ import annotations

import sys
import time

__all__ = ["ProgressBar", "format_duration"]

BAR_WIDTH = 20


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "--"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class _Silent:
    """Where a quiet study's progress goes: nowhere."""

    def write(self, _text: str) -> None:
        pass

    def flush(self) -> None:
        pass


class ProgressBar:
    def __init__(self, total: int, *, prefix: str = "fff-study", stream=None, clock=time.monotonic,
                 quiet: bool = False):
        self.total = total
        self.done = 0
        self.prefix = prefix
        self.stream = _Silent() if quiet else stream if stream is not None else sys.stderr
        self.clock = clock
        self.started = clock()
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self._cell = ""

    def eta_seconds(self) -> float | None:
        """Mean time of the cells finished in this run times the cells left; unknown before the first."""
        if not self.done:
            return None
        return (self.clock() - self.started) / self.done * (self.total - self.done)

    def _head(self) -> str:
        fraction = self.done / self.total if self.total else 1.0
        filled = int(round(fraction * BAR_WIDTH))
        return (f"[{self.prefix}] {self.done}/{self.total} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] "
                f"{100 * fraction:3.0f}% ETA {format_duration(self.eta_seconds())}")

    def _draw(self, text: str) -> None:
        if self.live:
            self.stream.write("\r\x1b[K" + text[:200])
            self.stream.flush()

    def start(self, label: str) -> None:
        self._cell = label
        self._draw(f"{self._head()} | {label}")

    def message(self, text: str) -> None:
        """A message from inside the cell (building, converting, round n); shown live only."""
        self._draw(f"{self._head()} | {text}")

    def finish(self, outcome: str) -> None:
        self.done += 1
        line = f"{self._head()} | {outcome}"
        if self.live:
            self.stream.write("\r\x1b[K" + line + "\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        if self.live:
            self.stream.write("\r\x1b[K")
        self.stream.write(f"[{self.prefix}] {text}\n")
        self.stream.flush()
