"""A study's simulation phase: the cells that ask for simulated caches, after every cell is timed.

Simulating a cell under valgrind takes minutes of a whole core, so it never shares the cores
with a timed round: the sweep times every cell first, then hands the cells whose caches are to
be simulated (``simulate_cache``, or one cell in ``calibrate_every``) to fff.explain.simulation_phase,
which keeps every core busy with them. Each finished cell appends one ``"simulated"`` row
keyed like the cell's timing row, holding per backend the fields a simulated profile record
has (``simulated_counters``, ``simulation``, and the ``roofline`` point recomputed with the
simulated traffic). Readers lay those fields over the cell's newest timing row
(``merge_simulations``). A resumed study simulates the cells that have a timing row and no
simulation row yet, so a study timed without simulation can be simulated later with
``--resume --extend --simulate-cache``; with ``--retry-errors`` it also tries again the cells
whose simulation failed.
"""

from __future__ import annotations

import os
import platform
import time
from datetime import datetime, timezone

__all__ = ["simulation_phase", "merge_simulations", "SIMULATED"]

SIMULATED = "simulated"  # the status of a simulation row


def _wanted(cells, rows: list[dict], key_of, retry_errors: bool) -> list[tuple]:
    """(cell, key, timing row) for every cell to simulate now."""
    timed: dict[str, dict] = {}  # key -> the newest result row (ok or error)
    simulated: dict[str, dict] = {}  # key -> the newest simulation row
    for row in rows:
        if row.get("status") in ("ok", "error"):
            timed[row.get("key")] = row
        elif row.get("status") == SIMULATED:
            simulated[row.get("key")] = row
    wanted = []
    for cell in cells:
        if not cell.simulate_cache:
            continue
        key = key_of(cell)
        timing = timed.get(key)
        if timing is None or timing["status"] != "ok" or not timing.get("records"):
            continue  # not timed (or failed): nothing to attach a simulation to
        done = simulated.get(key)
        if done is not None and not (retry_errors and done.get("errors")):
            continue
        wanted.append((cell, key, timing))
    return wanted


def simulation_phase(store, config, cells, key_of, bookkeeping, bar, *, retry_errors: bool = False,
                     simulate=None) -> tuple[int, int, float]:
    """Simulate the cells that want it and have none yet; returns (cells simulated, cells with a failed
    backend, seconds). ``simulate`` defaults to fff.explain.simulation_phase.simulate_targets (tests pass another)."""
    from fff.profiling import build_options_of
    from fff.explain.simulation_phase import SimulationTarget
    from fff.study.store import read_rows

    wanted = _wanted(cells, read_rows(store.path).rows, key_of, retry_errors)
    if not wanted:
        return 0, 0, 0.0
    if simulate is None:
        from fff.explain.simulation_phase import simulate_targets as simulate
    started = time.monotonic()
    phase_started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    by_key = {}
    items = []
    for cell, key, timing in wanted:
        options = config.profile_options(cell)
        records = timing["records"]
        by_key[key] = (cell, records)
        items.append(SimulationTarget(key, cell.target, build_options_of(options), tuple(r["backend"] for r in records),
                                      cell.precision, max((r.get("flops") or 0) for r in records) or None))
    counts = {"simulated": 0, "failed": 0}
    # The roofs now, while the cores are idle: measured among the valgrind servers they would be contended.
    from fff.explain.roofline import machine_roofline

    roofs = {threads: machine_roofline(threads) for threads in
             {r.get("threads") for _, records in by_key.values() for r in records if r.get("roofline") is not None}}

    def done(item, fields: dict, errors: dict) -> None:
        cell, records = by_key[item.key]
        fields = _with_roofline(records, fields, roofs)
        store.append({**bookkeeping(cell), "status": SIMULATED, "simulations": fields, "errors": errors or None,
                      "phase_started": phase_started, "phase_seconds": round(time.monotonic() - started, 3),
                      "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      "host": platform.node(), "pid": os.getpid()})
        counts["simulated"] += 1
        counts["failed"] += bool(errors)
        parts = []
        for backend in item.backends:
            misses = ((fields.get(backend) or {}).get("simulated_counters") or {}).get("llc-misses") or {}
            seconds = ((fields.get(backend) or {}).get("simulation") or {}).get("elapsed_s")
            if backend in errors:
                parts.append(f"{backend} FAILED ({errors[backend]['message'][:80]})")
            elif misses.get("per_inference") is None:
                parts.append(f"{backend} LL misses {misses.get('status', 'missing')}")
            else:
                parts.append(f"{backend} {misses['per_inference']:,.0f} LL misses ({seconds or 0:.0f} s)")
        bar.note(f"simulated {counts['simulated']}/{len(items)} {cell.label}: " + ", ".join(parts))

    simulate(items, cache=config.cache, isa_cap=config.simulate_isa, progress=bar.note, on_done=done)
    return counts["simulated"], counts["failed"], time.monotonic() - started


def _with_roofline(records: list[dict], fields: dict, roofs: dict) -> dict:
    """Each backend's roofline point again, now that simulated traffic can place it."""
    from fff.explain.roofline import roofline_point

    out = {}
    for record in records:
        backend = record["backend"]
        if backend not in fields:
            continue
        out[backend] = dict(fields[backend])
        if record.get("roofline") is not None and fields[backend].get("simulated_counters"):
            out[backend]["roofline"] = roofline_point({**record, **fields[backend]}, roofs[record.get("threads")])
    return out


def merge_simulations(rows: list[dict]) -> list[dict]:
    """``rows`` without the simulation rows, each timing row's records carrying its cell's newest
    simulation (a copy: the rows given are not changed)."""
    newest = {row.get("key"): row for row in rows if row.get("status") == SIMULATED}
    merged = []
    for row in rows:
        if row.get("status") == SIMULATED:
            continue
        simulation = newest.get(row.get("key"))
        if simulation is not None and row.get("status") == "ok":
            fields = simulation.get("simulations") or {}
            row = {**row, "records": [{**record, **(fields.get(record.get("backend")) or {})}
                                      for record in row.get("records") or []]}
        merged.append(row)
    return merged
