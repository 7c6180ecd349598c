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

A study with an LL-size axis (``cache = ["machine", "LL=12MiB,16way"]``) simulates each such cell
once per size, from the one timing: the first size's row is as above, each further size's row
names its size (``"ll"``) and its fields go into the records' ``ll_sizes`` under that size.
"""

from __future__ import annotations

import os
import platform
import time
from datetime import datetime, timezone

__all__ = ["simulation_phase", "merge_simulations", "SIMULATED"]

SIMULATED = "simulated"  # the status of a simulation row


def _wanted(cells, rows: list[dict], key_of, retry_errors: bool, ll: str | None = None) -> list[tuple]:
    """(cell, key, timing row) for every cell to simulate now at LL size ``ll`` (None: the cell's own)."""
    timed: dict[str, dict] = {}  # key -> the newest result row (ok or error)
    simulated: dict[str, dict] = {}  # key -> the newest simulation row
    for row in rows:
        if row.get("status") in ("ok", "error"):
            timed[row.get("key")] = row
        elif row.get("status") == SIMULATED and row.get("ll") == ll:
            simulated[row.get("key")] = row
    wanted = []
    for cell in cells:
        if not cell.simulate_cache or (ll is not None and ll not in cell.extra_caches):
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
    from fff.explain.cache_geometry import MACHINE
    from fff.study.store import read_rows

    rows = read_rows(store.path).rows
    sizes = [None, *dict.fromkeys(extra for cell in cells for extra in cell.extra_caches)]
    if simulate is None:
        from fff.explain.simulation_phase import simulate_targets as simulate
    started = time.monotonic()
    phase_started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    counts = {"simulated": 0, "cells": set(), "failed_cells": set()}
    roofs: dict = {}
    for ll in sizes:  # the cells' own LL, then each further size: one valgrind run per cell and size
        wanted = _wanted(cells, rows, key_of, retry_errors, ll)
        if wanted:
            _simulate_at(ll, None if ll is None else None if ll == MACHINE else ll, store, config, wanted,
                         bookkeeping, bar, simulate, counts, roofs, started, phase_started)
    return (len(counts["cells"]), len(counts["failed_cells"]),
            time.monotonic() - started if counts["simulated"] else 0.0)


def _simulate_at(ll, spec, store, config, wanted, bookkeeping, bar, simulate, counts, roofs, started,
                 phase_started) -> None:
    """Simulate ``wanted`` at one LL size: ``ll`` names it in the rows (None: the cells' own LL,
    config.cache), ``spec`` is what valgrind is given (None: the machine's own)."""
    from fff.profiling import build_options_of
    from fff.explain.simulation_phase import SimulationTarget

    if ll is None:
        spec = config.cache
    by_key = {}
    items = []
    for cell, key, timing in wanted:
        options = config.profile_options(cell)
        records = timing["records"]
        by_key[key] = (cell, records)
        items.append(SimulationTarget(key, cell.target, build_options_of(options), tuple(r["backend"] for r in records),
                                      cell.precision, max((r.get("flops") or 0) for r in records) or None))
    # The roofs now, while the cores are idle: measured among the valgrind servers they would be contended.
    # A what-if LL places no roofline point (the roofs are this machine's): only the cells' own LL needs them.
    from fff.explain.roofline import machine_roofline

    if ll is None:
        roofs.update({threads: machine_roofline(threads) for threads in
                      {r.get("threads") for _, records in by_key.values() for r in records
                       if r.get("roofline") is not None}})

    done_here = [0]  # cells simulated at this size

    def done(item, fields: dict, errors: dict) -> None:
        cell, records = by_key[item.key]
        if ll is None:
            fields = _with_roofline(records, fields, roofs)
        store.append({**bookkeeping(cell), "status": SIMULATED, **({} if ll is None else {"ll": ll}),
                      "simulations": fields, "errors": errors or None,
                      "phase_started": phase_started, "phase_seconds": round(time.monotonic() - started, 3),
                      "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      "host": platform.node(), "pid": os.getpid()})
        counts["simulated"] += 1  # one per cell and LL size
        done_here[0] += 1
        counts["cells"].add(item.key)
        if errors:
            counts["failed_cells"].add(item.key)
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
        at = "" if ll is None else f" at {ll}"
        bar.note(f"simulated {done_here[0]}/{len(items)}{at} {cell.label}: " + ", ".join(parts))

    simulate(items, cache=spec, isa_cap=config.simulate_isa, progress=bar.note, on_done=done)


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
    simulation (a copy: the rows given are not changed); a further LL size's simulation goes into
    the records' ``ll_sizes`` under its size."""
    newest: dict[str, dict] = {}  # key -> LL size (None: the cell's own) -> the newest simulation row
    for row in rows:
        if row.get("status") == SIMULATED:
            newest.setdefault(row.get("key"), {})[row.get("ll")] = row
    merged = []
    for row in rows:
        if row.get("status") == SIMULATED:
            continue
        simulations = newest.get(row.get("key"))
        if simulations and row.get("status") == "ok":
            row = {**row, "records": [_merged(record, simulations) for record in row.get("records") or []]}
        merged.append(row)
    return merged


def _merged(record: dict, simulations: dict) -> dict:
    backend = record.get("backend")
    own = simulations.get(None)
    record = {**record, **((own.get("simulations") or {}).get(backend) or {})} if own else dict(record)
    sizes = {ll: (row.get("simulations") or {}).get(backend) for ll, row in simulations.items() if ll is not None}
    if any(sizes.values()):
        record["ll_sizes"] = {**(record.get("ll_sizes") or {})}
        for ll, fields in sizes.items():
            if fields:
                record["ll_sizes"][ll] = {**record["ll_sizes"].get(ll, {}), **fields}
    return record
