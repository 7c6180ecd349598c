"""Running a study: every cell through the profiler, one durable line each, resumable and shardable.

A cell that fails (a model that will not convert, outputs that disagree, a worker that dies,
memory running out) becomes an error row with its reason and the study goes on; only a
KeyboardInterrupt (or the SIGTERM a batch scheduler sends, which the CLI turns into one) stops
it, losing nothing but the cell in progress.

Before a cell is measured, a small "started" line is appended; a cell whose "started" lines
are not followed by a result means the study process itself died there (SIGKILL, the
kernel's out-of-memory killer, a crash in a native library). ``resume`` tries such a cell
again, but after MAX_DEATHS deaths it records an error row instead, so one model that kills
the process cannot stop a study from ever finishing. Ctrl-C and SIGTERM are not deaths: they
append an "interrupted" line.

Rows are keyed by the cell's identity and the machine's fingerprint, so ``resume`` skips what
this machine already finished, and the same file can hold the same cells from another machine
without the two being mistaken for each other. Shards split the cells by their identity, not
by the machine, so nodes of a batch job agree on the split.

Cells run one after another from this one thread, and each prepares before its own timed rounds:
the builder child's artifacts (export, conversion, quantization; cached across runs), then each
stack's worker (its load; torch-compile's compilation), all synchronous calls; nothing prepares the
next cell while one is timed, and the simulation phase runs after the last timed cell. What each
phase cost is in every record's ``phases`` (fff.measure.phases).

One study at a time per results file and machine (fff.study.lock): a second run refuses to start
rather than measuring every cell while competing for the cores. A cell whose records came back
``contended`` is measured once more at the end of the run; the newer row is the one read.
"""

from __future__ import annotations

import hashlib
import os
import platform
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from fff.errors import FffError, UsageError
from fff.study.config import Cell, StudyConfig
from fff.study.fingerprint import check_resume_configuration, config_fingerprint, measurement_settings
from fff.study.lock import study_lock
from fff.study.progress import ProgressBar
from fff.study.store import ROW_SCHEMA, ResultsFile, read_rows

__all__ = ["SweepSummary", "parse_shard", "select_shard", "row_key", "check_targets", "run_study", "FINISHED",
           "MAX_DEATHS"]

FINISHED = ("ok", "error")  # statuses of result rows; "started" and "interrupted" are bookkeeping
MAX_DEATHS = 2


@dataclass(frozen=True)
class SweepSummary:
    path: Path
    cells: int  # in this shard
    already_done: int  # found finished in the file and skipped
    measured: int  # finished now, successfully
    failed: int  # finished now as error rows
    seconds: float
    shard: tuple[int, int] | None
    machine_fingerprint: str
    remeasured: int = 0  # contended cells measured again at the end
    still_contended: int = 0  # of those, contended again
    simulated: int = 0  # cells whose caches the simulation phase simulated
    simulation_failed: int = 0  # of those, cells with a backend whose simulation failed
    simulation_seconds: float = 0.0  # the simulation phase's share of ``seconds``

    def describe(self) -> str:
        shard = f" (shard {self.shard[0]}/{self.shard[1]})" if self.shard else ""
        again = (f"; {self.remeasured} contended cell(s) measured again, {self.still_contended} still contended"
                 if self.remeasured else "")
        simulated = (f"; caches of {self.simulated} cell(s) simulated in {self.simulation_seconds:.0f} s"
                     + (f" ({self.simulation_failed} with a failed backend)" if self.simulation_failed else "")
                     if self.simulated else "")
        return (f"{self.cells} cells{shard}: {self.measured} measured, {self.failed} failed, "
                f"{self.already_done} already done{again}{simulated}; {self.seconds:.0f} s; results in {self.path}")


def parse_shard(text: str) -> tuple[int, int]:
    """'K/N' with 1 <= K <= N (a Slurm array 1-N gives K = $SLURM_ARRAY_TASK_ID)."""
    k, slash, n = text.partition("/")
    try:
        k_value, n_value = int(k), int(n)
    except ValueError:
        raise UsageError(f"--shard must look like K/N (for example 2/8), got {text!r}") from None
    if not slash or not 1 <= k_value <= n_value:
        raise UsageError(f"--shard K/N needs 1 <= K <= N, got {text!r}")
    return k_value, n_value


def select_shard(cells: list[Cell], shard: tuple[int, int] | None) -> list[Cell]:
    """Shard K of N: sort by cell identity hash, deal round-robin (balanced to within one cell,
    the same in every process), keep the study's order within the shard."""
    if shard is None:
        return list(cells)
    k, n = shard
    ranked = sorted(cells, key=lambda cell: cell.cell_id)
    mine = {cell.cell_id for i, cell in enumerate(ranked) if i % n == k - 1}
    return [cell for cell in cells if cell.cell_id in mine]


def row_key(cell_id: str, fingerprint: str) -> str:
    return hashlib.sha256(f"{cell_id}:{fingerprint}".encode()).hexdigest()[:16]


def _parity_failure(records: list[dict]) -> dict | None:
    bad = [r for r in records if r.get("parity") and not r["parity"].get("ok", True)]
    if not bad:
        return None
    details = ", ".join(f"{r['backend']} max rel err {r['parity'].get('max_rel_err', float('nan')):.3g}" for r in bad)
    return {"type": "ParityError", "message": f"outputs disagree with the baseline: {details}"}


def _error_from(exception: BaseException) -> dict:
    message = str(exception).strip().splitlines()[0] if str(exception).strip() else type(exception).__name__
    error = {"type": type(exception).__name__, "message": message}
    if not isinstance(exception, FffError):  # not the user's doing: keep where it happened
        error["traceback"] = "".join(traceback.format_exception(exception)[-6:])
    return error


def _contended(row: dict) -> bool:
    return row["status"] == "ok" and any(r.get("verdict") == "contended" for r in row["records"])


def _outcome_text(cell: Cell, row: dict) -> str:
    if row["status"] == "ok":
        speedups = [f"{r['backend']} {r['speedup']:.2f}x" + (f" {r['verdict']}" if r.get("verdict") else "")
                    for r in row["records"] if r.get("speedup") is not None]
        return f"ok {cell.label}: {', '.join(speedups) or 'measured'} ({row['seconds']:.1f} s)"
    return f"FAILED {cell.label}: {row['error']['type']}: {row['error']['message'][:120]} ({row['seconds']:.1f} s)"


def check_targets(cells: list[Cell]) -> None:
    """Every pattern and zoo name known, every pattern spec valid, before the first cell runs:
    a typo is a usage error, not a study of error rows. Said from the names alone, without
    importing torch (fff.models.target_check): a refusal takes a fraction of a second."""
    import difflib

    from fff.models.names import PATTERN_DESCRIPTIONS, ZOO_MODELS
    from fff.models.target_check import check_target

    def unknown(kind: str, name: str, known) -> UsageError:
        close = difflib.get_close_matches(name, list(known), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return UsageError(f"unknown {kind} {name!r}{hint}; known: {', '.join(known)}")

    for cell in cells:
        if cell.kind == "zoo" and cell.model not in ZOO_MODELS:
            raise unknown("zoo model", cell.model, ZOO_MODELS)
        if cell.kind == "pattern" and cell.pattern not in PATTERN_DESCRIPTIONS:
            raise unknown("design pattern", cell.pattern, PATTERN_DESCRIPTIONS)
        check_target(cell.target, batch=cell.batch, resolution=cell.resolution)


def _history(store: ResultsFile, retry_errors: bool) -> tuple[set[str], dict[str, int]]:
    """Keys already finished (ok, or error unless retrying errors), and for each unfinished key
    how often the process died in it: "started" lines since its last result or interruption."""
    finished: set[str] = set()
    deaths: dict[str, int] = {}
    if not store.exists_with_content():
        return finished, deaths
    for row in read_rows(store.path).rows:
        key, status = row.get("key"), row.get("status")
        if status == "started":
            deaths[key] = deaths.get(key, 0) + 1
        elif status in FINISHED or status == "interrupted":
            deaths.pop(key, None)
            if status == "ok" or (status == "error" and not retry_errors):
                finished.add(key)
    return finished, deaths


def run_study(config: StudyConfig, out: str | Path, *, resume: bool = False, retry_errors: bool = False,
              shard: tuple[int, int] | None = None, measure: Callable | None = None,
              progress: ProgressBar | None = None, fingerprint: str | None = None, extend: bool = False,
              quiet: bool = False, simulate: Callable | None = None) -> SweepSummary:
    """Measure every cell of ``config`` (or of its shard) not yet in ``out``.

    ``measure(target, options, progress) -> list[dict]`` defaults to fff.profiling.profile_target;
    tests pass another one. ``retry_errors`` runs cells whose only row is an error again (the
    newest row wins when reading). ``extend``: resume a file measured under other settings
    on purpose (fff.study.fingerprint). ``simulate`` replaces fff.explain.simulation_phase.simulate_targets
    in the simulation phase (fff.study.simulation), for tests."""
    from fff.measure.machine import machine_fingerprint

    measured_for_real = measure is None  # a test's fake profiler measures made-up targets
    store = ResultsFile(out)
    if store.path.is_dir():
        raise UsageError(f"{store.path} is a directory, expected a results file")
    settings = measurement_settings(config)
    if store.exists_with_content():
        try:
            earlier = read_rows(store.path)
        except OSError as error:
            raise UsageError(f"cannot read {store.path}: {error.strerror or error}") from None
        foreign = earlier.not_a_study(store.path)
        if foreign:  # a file of the user's own (a torn row of fff's is not foreign): never appended to
            raise UsageError(f"{foreign}; it is not {'resumed' if resume else 'overwritten'} and was left as it "
                             f"is: choose a new --out")
        if not resume:
            raise UsageError(f"{store.path} already holds results; add --resume to continue that study, "
                             f"or choose a new --out")
        check_resume_configuration(earlier.rows, settings, store.path, extend=extend)
    store.check_writable()

    cells = select_shard(config.cells(), shard)
    if not cells:
        raise UsageError(f"{config.source}: the study has no cells (name patterns or zoo models)"
                         if shard is None else f"shard {shard[0]}/{shard[1]} has no cells: the study has fewer cells than shards")
    if measured_for_real:
        check_targets(cells)  # from the names alone, before fff.profiling brings numpy in
    from fff.measure.contention import check_threads
    from fff.measure.counters import validate_names

    for threads in config.threads:  # and these flags too: a typo costs a fraction of a second
        check_threads(threads)
    validate_names(config.counters)
    from fff.profiling import profile_target

    measure = measure or profile_target
    for cell in cells:  # every option checked before the first measurement
        config.profile_options(cell).validated()
    busy = None
    if measured_for_real:
        from fff.profiling import check_available

        check_available(config.profile_options(cells[0]))
        from fff.measure.contention import preflight

        busy = preflight()  # half a second: are other processes using the CPUs?

    fingerprint = fingerprint or machine_fingerprint()  # after every check: it loads fff's native module
    with study_lock(store.path):  # one study per results file and machine, for the whole run
        return _sweep(store, config, settings, cells, measure, fingerprint, retry_errors, shard, progress, busy,
                      quiet, simulate)


def _sweep(store, config, settings, cells, measure, fingerprint, retry_errors, shard, progress,
           busy, quiet, simulate) -> SweepSummary:
    from fff.measure.machine import machine_info, versions

    finished, deaths = _history(store, retry_errors)
    todo = [cell for cell in cells if row_key(cell.cell_id, fingerprint) not in finished]

    bar = progress or ProgressBar(len(todo), quiet=quiet)
    if busy:
        bar.note(busy)
    if len(todo) < len(cells):
        bar.note(f"{len(cells) - len(todo)} of {len(cells)} cells already in {store.path}; measuring the other {len(todo)}")
    started, measured, failed = time.monotonic(), 0, 0
    machine, software = machine_info(), versions()
    queue, requeued, still_contended = list(todo), set(), 0
    left_out = config.left_out()  # stacks a precision's cells do not time, said once here and in every row
    for precision, stacks in left_out.items():
        bar.note(f"{precision}: " + "; ".join(f"{name} left out: {why}" for name, why in stacks.items())
                 + (" (no cells at this precision)" if precision in config.precisions_without_stacks() else ""))

    def key_of(cell: Cell) -> str:
        return row_key(cell.cell_id, fingerprint)

    def bookkeeping_of(cell: Cell) -> dict:
        return {"schema": ROW_SCHEMA, "study": config.name, "cell_id": cell.cell_id, "key": key_of(cell),
                "machine_fingerprint": fingerprint, "cell": cell.identity(),
                "config": settings, "config_fingerprint": config_fingerprint(settings),
                "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "host": platform.node(), "pid": os.getpid(),
                **({"stacks_left_out": left_out[cell.precision]} if cell.precision in left_out else {})}

    for cell in queue:  # contended cells are appended once, so they run again at the end
        again = cell.cell_id in requeued
        key = key_of(cell)
        bar.start(cell.label)
        cell_started = time.monotonic()
        bookkeeping = bookkeeping_of(cell)
        records, error = [], None
        if deaths.get(key, 0) >= MAX_DEATHS:
            error = {"type": "StudyProcessDied",
                     "message": f"the study process died {deaths[key]} times while measuring this cell (killed, or "
                                f"out of memory?); not tried again: use --resume --retry-errors to try it"}
        else:
            store.append({**bookkeeping, "status": "started"})
            try:
                records = measure(cell.target, config.profile_options(cell), bar.message)
                error = _parity_failure(records)
            except (KeyboardInterrupt, SystemExit):
                store.append({**bookkeeping, "status": "interrupted"})
                raise
            except Exception as exception:  # noqa: BLE001 - any failure of one cell is that cell's result
                error = _error_from(exception)
        row = {**bookkeeping, "status": "error" if error else "ok", "error": error, "records": records,
               "seconds": round(time.monotonic() - cell_started, 3), "machine": machine, "versions": software}
        store.append(row)
        measured += not error and not again
        failed += bool(error) and not again
        bar.finish(_outcome_text(cell, row))
        if _contended(row) and again:
            still_contended += 1
        elif _contended(row):  # once more at the end, when the load that contended it may be gone
            requeued.add(cell.cell_id)
            queue.append(cell)
            bar.total += 1
            bar.note(f"{cell.label} was contended: it will be measured again at the end")
    # After every timed round of the study, never among them (fff.study.simulation).
    from fff.study.simulation import simulation_phase

    simulated, simulation_failed, simulation_seconds = simulation_phase(
        store, config, cells, key_of, bookkeeping_of, bar, retry_errors=retry_errors, simulate=simulate)
    return SweepSummary(store.path, len(cells), len(cells) - len(todo), measured, failed,
                        time.monotonic() - started, shard, fingerprint, len(requeued), still_contended,
                        simulated, simulation_failed, simulation_seconds)
