"""fff-profile's --json and --csv: saved after every target, and never lost to a failed write.

A write that fails after the measurement (a full disk, a directory removed meanwhile) does not
stop the run: the records go to a fallback file (current directory, else the temp dir), the
table is still printed, and one line per output names the fallback; the exit code is then
WRITE_FAILED_EXIT. An interruption says which targets finished, where they are, and which to
run again.
"""

from __future__ import annotations

import json
import shlex
import signal
import sys
from pathlib import Path

from fff.safe_write import save_fallback, write_text

__all__ = ["ResultsOutput", "stop_on_sigterm"]


def stop_on_sigterm() -> None:
    """SIGTERM (a batch scheduler's time limit, `kill`) stops like Ctrl-C: workers are closed
    and the one line says what was kept."""
    def interrupt(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


# per-layer lists of a breakdown: in --json, not in a CSV row (its categories and honesty fields stay)
BREAKDOWN_LISTS = ("breakdown.layers", "breakdown.comparison", "breakdown.unattributed", "breakdown.not_run")


def _render(kind: str, records: list[dict]) -> str:
    if kind == "json":
        return json.dumps(records, indent=1, default=str) + "\n"
    import pandas as pd

    # no raw samples, and of the contention account only its summary (not every round)
    flat = pd.json_normalize([{k: v for k, v in r.items() if k != "samples_ns"}
                              | {"contention": {k: v for k, v in (r.get("contention") or {}).items() if k != "rounds"}}
                              for r in records], sep=".")
    flat = flat.drop(columns=[c for c in flat.columns if c.startswith(BREAKDOWN_LISTS)])  # --json has them
    return flat.to_csv(index=False)


class ResultsOutput:
    def __init__(self, prog: str, *, json_path=None, csv_path=None):
        self.prog = prog
        self.paths = {kind: Path(p) for kind, p in (("json", json_path), ("csv", csv_path)) if p is not None}
        self.records: list[dict] = []
        self.targets: list[str] = []
        self.finished = 0  # targets whose records were handed to save()
        self.failed: dict[str, str] = {}  # kind -> why its own path could not be written
        self.fallback: dict[str, Path | None] = {}
        self.fallback_failures: dict[str, list[str]] = {}

    def save(self, so_far: list[dict]) -> None:
        """Called after each target with every record so far."""
        self.records[:] = so_far
        self.finished += 1
        for kind, path in self.paths.items():
            text = _render(kind, so_far)
            if kind not in self.failed:
                try:
                    write_text(path, text)
                    continue
                except OSError as error:
                    self.failed[kind] = error.strerror or str(error)
            if self.fallback.get(kind) is not None:
                try:
                    write_text(self.fallback[kind], text)
                    continue
                except OSError:
                    pass  # that place filled up too: look for another
            self.fallback[kind], self.fallback_failures[kind] = save_fallback(self.prog, f".{kind}", text)

    def failure_lines(self) -> list[str]:
        lines = []
        for kind, reason in self.failed.items():
            head = f"could not write --{kind} {self.paths[kind]} ({reason})"
            where = self.fallback.get(kind)
            if where is not None:
                lines.append(f"{head}; the {len(self.records)} records measured were saved to {where} instead")
            else:
                lines.append(f"{head}, nor a fallback file ({'; '.join(self.fallback_failures.get(kind, []))}): "
                             f"the table printed is all that is kept")
        return lines

    def report_failed_writes(self) -> bool:
        """One line per output that missed its path; True if there was any."""
        for line in self.failure_lines():
            print(f"{self.prog}: {line}", file=sys.stderr)
        return bool(self.failed)

    def kept_text(self) -> str:
        """For an interruption: what finished, where it is, what to run again."""
        total = len(self.targets)
        if not self.finished:
            kept = "no target had finished, nothing was written"
        elif not self.paths:
            kept = f"{self.finished} of {total} targets had finished (no --json/--csv was asked for, so none was kept)"
        else:
            places = [str(self.fallback.get(kind)) if kind in self.failed else str(path)
                      for kind, path in self.paths.items()]
            kept = f"{self.finished} of {total} targets finished, their records are in {' and '.join(places)}"
        rest = self.targets[self.finished:]
        if rest:
            kept += f"; to measure the rest, run again with: {' '.join(map(shlex.quote, rest))}"
        return kept
