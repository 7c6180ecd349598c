"""What a study's results say: speed-ups per design pattern, their trends with depth and width,
how latency follows FLOPs and last-level-cache misses, achieved GFLOP/s, the architecture
table, and the paper's headline numbers beside this machine's.

Every table keeps a ``machine`` column (the machine fingerprint): results from different
machines are compared side by side, never pooled. Speed-up is baseline latency / accelerated
latency of medians (fff.measure.stats); a cell's speed-up is only read from a cell whose outputs
agreed (failed cells are error rows, kept out of every number here and listed in the report).

A number that was not measured is NaN with a note, never 0: a machine without a PMU has no
LLC-miss counts unless the cache was simulated.

Speed-ups are ratios, so an average over cells is a geometric mean (0.5x and 2x average to 1x),
with the median beside it, over the cells whose verdict is ``ok`` only (fff.measure.contention): a
``contended`` or ``noisy`` speed-up, or one recorded before fff checked contention
(``unchecked``), is left out of every aggregate and counted as left out, with why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fff.backends import BASELINE, stack_name
from fff.explain.cache_analysis import CACHE_COLUMNS, cache_columns, record_llc
from fff.explain.cache_calibration import calibrate
from fff.errors import UsageError
from fff.study.simulation import merge_simulations
from fff.study.store import read_rows

__all__ = [
    "PAPER", "SPEEDUP_CONVENTION", "StudyResults", "load_results", "accelerated",
    "speedup_by_pattern", "speedup_trend", "correlations", "gflops_by_pattern", "architecture_table",
    "headline", "pearson", "spearman", "suspect_cells", "SUSPECT_FACTOR", "geometric_mean", "trusted",
    "left_out_text", "LLC_SOURCES", "by_stack", "speedup_matrix",
]

# The paper's findings (Abbasi, Shafiee, Chan, Wong 2021), as fff reads them.
PAPER = {
    "average_speedup_percent": 380.0,
    "best_pattern": "dw-bottleneck",
    "best_pattern_percent": 550.0,
    "best_architecture": "darts",
    "best_architecture_percent": 1200.0,
    "fastest_model": "mobilenet_v2",
    "fastest_model_ms": 2.4,
}

SPEEDUP_CONVENTION = (
    "fff reads the paper's percentages as the latency ratio times 100: \"a speed-up of 380%\" means "
    "native latency / OpenVINO latency = 3.8x, i.e. OpenVINO runs at 380% of the native speed. Read the "
    "other way, as a gain of (ratio - 1) x 100, 380% would be 4.8x. Tables show the ratio (x), the ratio as "
    "a percentage (ratio %) and the gain ((ratio - 1) %), so either reading can be checked.")

# A speed-up this many times above or below its machine's median is flagged, not trusted: on a
# shared 2-core machine, a third busy process stalls OpenMP's spinning barriers and one
# PyTorch run can take 500x its quiet time.
SUSPECT_FACTOR = 5.0

RECORD_COLUMNS = [
    "machine", "host", "study", "cell_id", "kind", "target", "pattern", "depth", "width", "model",
    "resolution", "precision", "stack_precision", "threads", "batch", "backend", "stack", "latency_ms", "latency_ci_low",
    "latency_ci_high", "latency_mean", "first_inference_ms", "flops", "params", "gflops_per_s", "speedup",
    "speedup_ci_low", "speedup_ci_high", "llc_misses", "llc_source", "llc_note", "n_samples", "warnings",
    "verdict",
    "uncounted_ops",
]
RECORD_COLUMNS += CACHE_COLUMNS  # fff.explain.cache_analysis: sources of the LLC figure, working set, roofline
# the LL size the row's cache figures are for ("machine", or a what-if spec), its bytes, whether it is
# a what-if, and the PMU's count alone (the machine's own LL only)
RECORD_COLUMNS += ["ll", "ll_bytes", "what_if", "llc_measured"]
# Each source of LLC misses, one column each: figures and correlations never mix them.
LLC_SOURCES = {"measured": "llc_measured", "simulated": "llc_simulated", "calibrated": "llc_calibrated",
               "modelled": "llc_modelled"}
BREAKDOWN_KEYS = ["machine", "cell_id", "kind", "target", "pattern", "depth", "width", "model"]
ERROR_COLUMNS = ["machine", "host", "study", "cell_id", "kind", "target", "resolution", "precision", "threads",
                 "error_type", "message", "seconds", "started", "file"]


@dataclass
class StudyResults:
    records: pd.DataFrame  # one row per successful cell x backend (the cache figures at the cell's own LL)
    errors: pd.DataFrame  # one row per failed cell
    machines: dict[str, dict]  # fingerprint -> {"machine", "versions", "hosts", "files", "cells"}
    notes: list[str] = field(default_factory=list)
    # one row per cell x backend x layer category, from cells measured with breakdown on (fff.explain.breakdown)
    breakdowns: pd.DataFrame = field(default_factory=pd.DataFrame)
    # one row per successful cell x backend x LL size of the study's cache axis (``records`` is the rows
    # at each cell's own LL); a study of one LL size has the same rows as ``records``
    cache_records: pd.DataFrame = field(default_factory=pd.DataFrame)


def _llc(counters: dict | None) -> tuple[float, str | None, str | None]:
    """LLC misses per inference from a record's counters: (value or NaN, "measured"/"simulated", note).

    Any counter named like llc-misses counts (fff.explain.cache_sim gives simulated counts the same name
    with status "simulated"); a hardware count is preferred to a simulated one. Derived ratios
    (llc-miss-ratio, llc-mpki) are not miss counts."""
    found, notes = {}, []
    for name, counter in (counters or {}).items():
        if "llc-misses" not in name.lower() or not isinstance(counter, dict):
            continue
        value = counter.get("per_inference")
        if value is None:
            notes.append(f"{name}: {counter.get('status')}" + (f" ({counter['reason']})" if counter.get("reason") else ""))
            continue
        simulated = "sim" in name.lower() or counter.get("status") == "simulated" or bool(counter.get("simulated"))
        found.setdefault("simulated" if simulated else "measured", float(value))
    for source in ("measured", "simulated"):
        if source in found:
            return found[source], source, None
    return np.nan, None, "; ".join(notes) or "not requested"


def _ll_of(record: dict) -> float:
    return float(((record.get("cache_model") or {}).get("ll") or {}).get("size") or np.nan)


def _record_rows(row: dict, record: dict) -> list[dict]:
    """The record's row at its own LL size (the cell's ``cache``: "machine" or a what-if spec), then
    a row per further LL size of the study's cache axis (``ll_sizes``): the same timing, the cache
    figures of that size. A what-if row has no PMU count (that is the machine's LL) and no roofline
    point (the roofs are the machine's)."""
    from fff.explain.cache_geometry import MACHINE

    own = _record_row(row, record)
    cell_cache = (row.get("cell") or {}).get("cache")
    own.update(ll=cell_cache or MACHINE, ll_bytes=_ll_of(record), what_if=bool(cell_cache), primary=True)
    rows = [own]
    for size, fields in (record.get("ll_sizes") or {}).items():
        # the size's own cache fields only: none of the record's own LL may stand in for a size not simulated
        theirs = ("counters", "roofline", "simulated_counters", "simulation", "modelled_counters", "cache_model")
        at_size = {**{k: v for k, v in record.items() if k not in theirs}, **(fields or {}),
                   "counters": record.get("counters") if size == MACHINE else None}
        extra = _record_row(row, at_size)
        extra.update(ll=size, ll_bytes=_ll_of(at_size), what_if=size != MACHINE, primary=False)
        rows.append(extra)
    for entry in rows:  # a what-if figure says so wherever its source is shown, simulated ones too
        if entry["what_if"] and entry["llc_source"] and "what-if" not in entry["llc_source"]:
            entry["llc_source"] += " (what-if LL)"
    return rows


def _record_row(row: dict, record: dict) -> dict:
    cell = row.get("cell") or {}
    latency = record.get("latency_ms") or {}
    speedup_ci = record.get("speedup_ci95") or [None, None]
    measured = _llc(record.get("counters"))
    llc, source, note = record_llc(record, measured)
    cache = cache_columns(record)
    if measured[1] == "simulated" and np.isnan(cache["llc_simulated"]):  # a simulated count among the counters
        cache["llc_simulated"] = measured[0]
    return {
        "machine": row.get("machine_fingerprint"), "host": row.get("host"), "study": row.get("study"),
        "cell_id": row.get("cell_id"), "kind": cell.get("kind"), "target": record.get("target", cell.get("target")),
        "pattern": cell.get("pattern"), "depth": cell.get("depth"), "width": cell.get("width"),
        "model": cell.get("model"),
        "resolution": (record.get("input_shape") or [None])[-1] if record.get("input_shape") else cell.get("resolution"),
        # The precision asked for pairs a baseline with its accelerated rows (an int8 stack's baseline
        # computes in f32); ``stack_precision`` is what each row's stack computed in.
        "precision": record.get("precision_asked", record.get("precision", cell.get("precision"))),
        "stack_precision": record.get("precision", cell.get("precision")), "threads": record.get("threads"),
        "batch": record.get("batch"), "backend": record.get("backend"),
        "stack": stack_name(record.get("backend"), record.get("precision", cell.get("precision"))),
        "latency_ms": latency.get("median"), "latency_ci_low": latency.get("ci95_low"),
        "latency_ci_high": latency.get("ci95_high"), "latency_mean": latency.get("mean"),
        "first_inference_ms": record.get("first_inference_ms"), "flops": record.get("flops"),
        "params": record.get("params"), "gflops_per_s": record.get("gflops_per_s"),
        "speedup": record.get("speedup"), "speedup_ci_low": speedup_ci[0], "speedup_ci_high": speedup_ci[1],
        "llc_misses": llc, "llc_source": source, "llc_note": note,
        "llc_measured": measured[0] if measured[1] == "measured" else np.nan,
        "n_samples": latency.get("n"), "warnings": len(record.get("warnings") or []),
        "verdict": record.get("verdict") or "unchecked",  # results from before fff checked contention
        # what the FLOP count leaves out; None in records written before fff recorded it
        "uncounted_ops": None if record.get("uncounted_ops") is None else " ".join(record["uncounted_ops"]),
        **cache,
    }


def _configuration_groups(rows: list[dict], notes: list[str]):
    """Rows measured under different study configurations (fff.study.fingerprint) are never
    pooled: when there is more than one, each machine x configuration is a group of its own,
    kept apart everywhere a machine is, and a note says what differs."""
    from fff.study.fingerprint import describe_differences

    configs = {}
    for row in rows:
        configs.setdefault(row.get("config_fingerprint"), row.get("config") or {})
    if len(configs) < 2:
        return lambda row: row.get("machine_fingerprint")
    (first_fp, first), *others = configs.items()
    label = lambda fp: f"config {fp or 'unrecorded'}"  # noqa: E731
    differences = "; ".join(describe_differences(first, other, f"in {label(first_fp)}", f"in {label(fp)}")
                            or f"{label(fp)} not recorded" for fp, other in others)
    notes.append(f"results come from {len(configs)} study configurations ({differences}); "
                 f"every table and figure keeps them apart")
    return lambda row: f"{row.get('machine_fingerprint')}/{row.get('config_fingerprint') or 'unrecorded'}"


def load_results(paths) -> StudyResults:
    """Rows from one or more results files (shards, machines), merged. A cell finished twice on
    one machine (a retried error, a shard merged twice) counts once: the newest row wins."""
    paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    newest: dict[str, tuple[dict, Path]] = {}
    notes: list[str] = []
    repeated = 0
    for path in paths:
        if not path.is_file():
            raise UsageError(f"results file {path} does not exist" if not path.exists() else f"{path} is not a file")
        outcome = read_rows(path)
        notes += outcome.notes
        for row in merge_simulations(outcome.rows):  # a simulation phase's rows laid over their cells
            if row.get("status") not in ("ok", "error"):  # a sweep's "started"/"interrupted" bookkeeping
                continue
            key = (row.get("key"), row.get("config_fingerprint"))  # one cell measured two ways: both kept
            repeated += key in newest
            newest[key] = (row, path)
    left_out = {}  # precision -> stack -> why (fff.study.config: StudyConfig.left_out)
    for row, _ in newest.values():
        for name, why in (row.get("stacks_left_out") or {}).items():
            left_out.setdefault((row.get("cell") or {}).get("precision"), {})[name] = why
    notes += [f"{precision} cells: {name} not timed: {why}" for precision, stacks in left_out.items()
              for name, why in stacks.items()]
    if repeated:
        notes.append(f"{repeated} row(s) repeat a cell already seen on the same machine (a retried error or a "
                     f"file merged twice); the newest row of each cell is used")

    from fff.explain.breakdown import category_rows

    records, errors, machines, breakdowns = [], [], {}, []
    group = _configuration_groups([row for row, _ in newest.values()], notes)
    for row, path in newest.values():
        fingerprint = group(row)
        entry = machines.setdefault(fingerprint, {"machine": row.get("machine"), "versions": row.get("versions"),
                                                  "hosts": set(), "files": set(), "cells": 0, "failed": 0})
        if fingerprint != row.get("machine_fingerprint"):
            entry["config"] = row.get("config")
            entry["config_label"] = f"config {row.get('config_fingerprint') or 'unrecorded'}"
        entry["hosts"].add(row.get("host"))
        entry["files"].add(str(path))
        entry["cells"] += 1
        if row.get("status") == "ok":
            per_record = [[{**r, "machine": fingerprint} for r in _record_rows(row, record)]
                          for record in row.get("records") or []]
            records += [r for rows in per_record for r in rows]
            breakdowns += [{**{k: v for k, v in rows[0].items() if k in BREAKDOWN_KEYS}, **part,
                            "stack": rows[0]["stack"]}
                           for rows, record in zip(per_record, row.get("records") or []) for part in category_rows(record)]
            continue
        entry["failed"] += 1
        cell, error = row.get("cell") or {}, row.get("error") or {}
        errors.append({"machine": fingerprint, "host": row.get("host"), "study": row.get("study"),
                       "cell_id": row.get("cell_id"), "kind": cell.get("kind"), "target": cell.get("target"),
                       "resolution": cell.get("resolution"), "precision": cell.get("precision"),
                       "threads": cell.get("threads"), "error_type": error.get("type"),
                       "message": error.get("message"), "seconds": row.get("seconds"),
                       "started": row.get("started"), "file": str(path)})
    for entry in machines.values():
        entry["hosts"], entry["files"] = sorted(map(str, entry["hosts"])), sorted(entry["files"])
    machine_count = len({row.get("machine_fingerprint") for row, _ in newest.values()})
    if machine_count > 1:
        notes.append(f"results come from {machine_count} machines; every table and figure keeps them apart")
    every_size = pd.DataFrame(records, columns=[*RECORD_COLUMNS, "primary"])
    for column in ("latency_ms", "speedup", "flops", "params", "gflops_per_s", "llc_misses", "width",
                   "working_set_bytes", "ll_bytes", "llc_measured"):
        every_size[column] = pd.to_numeric(every_size[column], errors="coerce")
    every_size["what_if"] = every_size["what_if"].astype(bool)
    # modelled LLC figures scaled by the cells the study simulated, at the same LL size
    every_size = calibrate(every_size)
    every_size["primary"] = every_size["primary"].astype(bool)  # the row at the cell's own LL
    record_frame = every_size[every_size["primary"]].drop(columns="primary").reset_index(drop=True)
    return StudyResults(record_frame, pd.DataFrame(errors, columns=ERROR_COLUMNS), machines, notes,
                        pd.DataFrame(breakdowns, columns=[*BREAKDOWN_KEYS, "backend", "stack", "category", "ms",
                                                          "share", "coverage", "slowdown"]),
                        every_size.reset_index(drop=True))


# --- correlation without scipy: Spearman is Pearson on average ranks ------------------------------

def pearson(x, y) -> float:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return np.nan
    return float(np.corrcoef(x, y)[0, 1])


def spearman(x, y) -> float:
    return pearson(pd.Series(x).rank(method="average"), pd.Series(y).rank(method="average"))


# --- the tables -----------------------------------------------------------------------------------

def by_stack(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each row's ``backend`` replaced by its stack (fff.backends.stack_name: ``openvino int8``),
    so that every table grouped by backend compares stacks and never pools a backend's f32 and int8 rows.
    At f32 the stack is the backend's name: a single-precision study reads as before. Idempotent."""
    if "stack" not in frame.columns or frame.empty:
        return frame
    return frame.assign(backend=frame["stack"].where(frame["stack"].notna(), frame["backend"]))


def accelerated(records: pd.DataFrame) -> pd.DataFrame:
    """The rows that carry a speed-up: every backend but the baseline."""
    return records[(records["backend"] != BASELINE) & records["speedup"].notna()]


def trusted(records: pd.DataFrame) -> pd.DataFrame:
    """Accelerated rows fit for an aggregate: verdict ``ok``."""
    rows = accelerated(records)
    return rows[rows["verdict"] == "ok"]


def geometric_mean(values) -> float:
    """exp(mean(log x)): the average of ratios; NaN for no values."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    return float(np.exp(np.log(values).mean())) if values.size else np.nan


def left_out_text(rows: pd.DataFrame) -> str:
    """'2 contended, 1 unchecked' for the accelerated rows that are not ``ok``; '' when none."""
    counts = rows.loc[rows["verdict"] != "ok", "verdict"].value_counts()
    order = ["contended", "noisy", "unchecked"]  # worst first; anything else after them
    return ", ".join(f"{counts[v]} {v}" for v in sorted(counts.index, key=lambda v: (order + [v]).index(v)))


def suspect_cells(records: pd.DataFrame) -> pd.DataFrame:
    """Accelerated cells whose speed-up is over SUSPECT_FACTOR times above or below the median
    speed-up of their stack on their machine (a stack 1.5x faster than the baseline is no suspect
    beside one 5x faster); kept in every table, flagged in the report and the headline."""
    records = by_stack(records)
    rows = accelerated(records)
    out = []
    for (machine, _), cells in rows.groupby(["machine", "backend"]):
        median = cells["speedup"].median()
        for _, cell in cells.iterrows():
            if cell["speedup"] > SUSPECT_FACTOR * median or cell["speedup"] < median / SUSPECT_FACTOR:
                baseline = records[(records["machine"] == machine) & (records["cell_id"] == cell["cell_id"])
                                   & (records["backend"] == BASELINE)]["latency_ms"]
                out.append({"machine": machine, "cell_id": cell["cell_id"], "target": cell["target"],
                            "backend": cell["backend"], "speedup": cell["speedup"], "machine_median": median,
                            "baseline_ms": baseline.iloc[0] if len(baseline) else np.nan,
                            "accelerated_ms": cell["latency_ms"]})
    return pd.DataFrame(out, columns=["machine", "cell_id", "target", "backend", "speedup", "machine_median",
                                      "baseline_ms", "accelerated_ms"])


def _with_percent(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    frame[f"{column}_ratio_pct"] = 100 * frame[column]
    frame[f"{column}_gain_pct"] = 100 * (frame[column] - 1)
    return frame


def speedup_by_pattern(records: pd.DataFrame) -> pd.DataFrame:
    """Per machine, accelerated backend and pattern: geometric mean, median, min and max speed-up
    over its ``ok`` cells, and how many of its cells were left out (not ``ok``)."""
    rows = accelerated(by_stack(records))
    rows = rows[rows["kind"] == "pattern"]
    keys = ["machine", "backend", "pattern"]
    ok = rows[rows["verdict"] == "ok"]
    table = (ok.groupby(keys)["speedup"]
             .agg(geomean=geometric_mean, median="median", min="min", max="max", cells="count").reset_index())
    left_out = rows[rows["verdict"] != "ok"].groupby(keys).size().rename("left_out").reset_index()
    table = table.merge(left_out, on=keys, how="left").fillna({"left_out": 0})
    table["left_out"] = table["left_out"].astype(int)
    table = _with_percent(table, "geomean")
    return table.sort_values(["machine", "backend", "geomean"], ascending=[True, True, False], ignore_index=True)


def speedup_trend(records: pd.DataFrame, axis: str) -> pd.DataFrame:
    """Median speed-up per pattern at each value of ``axis`` ("depth" or "width"), over the
    ``ok`` cells that differ in the other dimensions."""
    if axis not in ("depth", "width"):
        raise ValueError(f"axis must be 'depth' or 'width', got {axis!r}")
    rows = trusted(by_stack(records))
    rows = rows[rows["kind"] == "pattern"]
    return (rows.groupby(["machine", "backend", "pattern", axis])["speedup"]
            .agg(median="median", cells="count").reset_index())


def correlations(records: pd.DataFrame) -> pd.DataFrame:
    """Pearson and Spearman correlation of median latency with FLOPs, with LLC misses per inference
    and with the working set, per machine, backend and pattern (cells across depth and width), and
    over all pattern cells. LLC misses are correlated per source (measured, simulated, calibrated,
    modelled: never a mix of them, where a few simulated cells among modelled ones would make the
    correlation an artefact of the mix) and per LL size where ``records`` hold several (fff.analysis'
    cache_records), n = the cells with that source. Too few values, or no LLC counts, give NaN and
    a note."""
    columns = ["machine", "backend", "scope", "against", "ll", "cells", "pearson", "spearman", "source", "note"]
    records = by_stack(records)
    rows = records[records["kind"] == "pattern"]
    if "ll" not in rows.columns or rows["ll"].isna().all():
        rows = rows.assign(ll="machine", primary=True)
    elif "primary" not in rows.columns:
        rows = rows.assign(primary=True)
    out = []

    def add(machine, backend, scope, quantity, ll, known, source, note=""):
        if not note and len(known) < 3:
            note = f"{len(known)} cell(s): too few to correlate"
        elif not note and known[quantity].nunique() == 1:  # no spread, no correlation: say why rather than a bare NaN
            value = known[quantity].iloc[0]
            note = (f"every cell's value is {value:g}" + (" (the model: every working set fits this LL)"
                                                           if value == 0 and source in ("modelled", "calibrated") else ""))
        out.append({"machine": machine, "backend": backend, "scope": scope, "against": quantity, "ll": ll,
                    "cells": len(known), "pearson": pearson(known[quantity], known["latency_ms"]),
                    "spearman": spearman(known[quantity], known["latency_ms"]), "source": source, "note": note})

    for (machine, backend), group in rows.groupby(["machine", "backend"]):
        for scope, cells in [("all patterns", group)] + list(group.groupby("pattern")):
            timed = cells[cells["latency_ms"].notna()]
            own = timed[timed["primary"].astype(bool)]  # FLOPs and the working set do not depend on the LL
            own_ll = own["ll"].iloc[0] if len(own) else None
            add(machine, backend, scope, "flops", own_ll, own[own["flops"].notna()], "")
            for ll, at_size in timed.groupby("ll", sort=False):
                found = False
                for source, column in LLC_SOURCES.items():
                    if column not in at_size.columns:
                        continue
                    known = at_size[at_size[column].notna()].assign(llc_misses=lambda f, c=column: f[c])
                    if known.empty:
                        continue
                    found = True
                    add(machine, backend, scope, "llc_misses", ll, known, source)
                if not found:
                    reasons = at_size["llc_note"].dropna().unique()
                    add(machine, backend, scope, "llc_misses", ll, at_size.iloc[:0], "",
                        "no LLC-miss counts: " + (reasons[0] if len(reasons) else "not requested"))
            add(machine, backend, scope, "working_set_bytes", own_ll, own[own["working_set_bytes"].notna()], "modelled")
    return pd.DataFrame(out, columns=columns)


def gflops_by_pattern(records: pd.DataFrame) -> pd.DataFrame:
    """Achieved GFLOP/s (FLOPs = 2 x multiply-adds / median latency) per machine, backend, pattern."""
    records = by_stack(records)
    rows = records[(records["kind"] == "pattern") & records["gflops_per_s"].notna()]
    return (rows.groupby(["machine", "backend", "pattern"])["gflops_per_s"]
            .agg(median="median", max="max", cells="count").reset_index())


def architecture_table(records: pd.DataFrame) -> pd.DataFrame:
    """Zoo models: baseline and accelerated median latency, speed-up with its CI, GFLOPs, params."""
    records = by_stack(records)
    zoo = records[records["kind"] == "zoo"]
    keys = ["machine", "model", "resolution", "precision", "threads", "batch"]
    base = zoo[zoo["backend"] == BASELINE][keys + ["latency_ms"]].rename(columns={"latency_ms": "baseline_ms"})
    fast = accelerated(zoo)[keys + ["backend", "latency_ms", "speedup", "speedup_ci_low", "speedup_ci_high",
                                    "verdict", "flops", "params"]].rename(columns={"latency_ms": "accelerated_ms"})
    table = base.merge(fast, on=keys, how="inner")
    table["gflops"] = table.pop("flops") / 1e9
    table["mparams"] = table.pop("params") / 1e6
    table = _with_percent(table, "speedup")
    columns = ["machine", "model", "backend", "resolution", "precision", "threads", "baseline_ms", "accelerated_ms",
               "speedup", "speedup_ci_low", "speedup_ci_high", "speedup_ratio_pct", "speedup_gain_pct", "verdict",
               "gflops", "mparams"]
    return table[columns].sort_values(["machine", "speedup"], ascending=[True, False], ignore_index=True)


def _rank_text(ranked: pd.Series, name: str, unit: str, fmt: str) -> str:
    if name not in ranked.index:
        return f"{name}: not among the ok cells (not measured, or left out by its verdict)"
    position = list(ranked.index).index(name) + 1
    return f"{name}: {format(ranked[name], fmt)}{unit} (rank {position} of {len(ranked)})"


def _stacks_per_machine(records: pd.DataFrame):
    """(machine, its rows, one accelerated stack) for every stack measured beside the baseline; a
    machine with none gives one (machine, rows, None), so it still has its headline saying so."""
    for machine, rows in records.groupby("machine"):
        for stack in sorted(set(rows["backend"].dropna()) - {BASELINE}) or [None]:
            yield machine, rows, stack


def headline(records: pd.DataFrame) -> pd.DataFrame:
    """The paper's four headline findings beside each machine's, one row per finding x machine x
    accelerated stack (a backend at a precision: fff.backends.stack_name): each stack is compared with the
    baseline, never pooled with another, nor a backend's f32 rows with its int8 rows."""
    out = []
    records = by_stack(records)
    suspects = suspect_cells(records)
    for machine, rows, stack in _stacks_per_machine(records):
        every = accelerated(rows)
        every = every[every["backend"] == stack]
        fast = every[every["verdict"] == "ok"]  # ok cells only: a contended or noisy speed-up is never in a headline
        average = geometric_mean(fast["speedup"])
        left_out = left_out_text(every)
        flagged = set(suspects.loc[(suspects["machine"] == machine) & (suspects["backend"] == stack), "cell_id"]) \
            & set(fast["cell_id"])
        caveat = (f"; left out: {left_out}" if left_out else "") + \
                 (f"; {len(flagged)} suspect cell(s) among them, geometric mean without them "
                  f"{geometric_mean(fast[~fast['cell_id'].isin(flagged)]['speedup']):.2f}x" if flagged else "") + \
                 (f"; arithmetic mean of the ratios {fast['speedup'].mean():.2f}x" if len(fast) else "")
        out.append({"finding": "average speed-up over the native framework", "machine": machine, "backend": stack,
                    "paper": f"{PAPER['average_speedup_percent']:.0f}%",
                    "paper_ratio": PAPER["average_speedup_percent"] / 100,
                    "this_machine": f"geometric mean over {len(fast)} ok cells (patterns and zoo), median "
                                    f"{fast['speedup'].median():.2f}x{caveat}" if len(fast)
                    else f"no ok cells (left out: {left_out or 'none measured'})",
                    "ratio": average})

        patterns = (fast[fast["kind"] == "pattern"].groupby("pattern")["speedup"].agg(geometric_mean)
                    .sort_values(ascending=False))
        out.append({"finding": "design pattern with the largest speed-up", "machine": machine, "backend": stack,
                    "paper": f"{PAPER['best_pattern']} {PAPER['best_pattern_percent']:.0f}%",
                    "paper_ratio": PAPER["best_pattern_percent"] / 100,
                    "this_machine": (f"{patterns.index[0]} (geometric mean over its ok cells); "
                                     + _rank_text(patterns, PAPER["best_pattern"], "x", ".2f")) if len(patterns)
                    else "no ok pattern cells",
                    "ratio": patterns.iloc[0] if len(patterns) else np.nan})

        zoo = fast[fast["kind"] == "zoo"].groupby("model")["speedup"].agg(geometric_mean).sort_values(ascending=False)
        out.append({"finding": "architecture with the largest speed-up", "machine": machine, "backend": stack,
                    "paper": f"{PAPER['best_architecture']} {PAPER['best_architecture_percent']:.0f}%",
                    "paper_ratio": PAPER["best_architecture_percent"] / 100,
                    "this_machine": (f"{zoo.index[0]}; " + _rank_text(zoo, PAPER["best_architecture"], "x", ".2f"))
                    if len(zoo) else "no ok zoo models",
                    "ratio": zoo.iloc[0] if len(zoo) else np.nan})

        latency = (fast[fast["kind"] == "zoo"].groupby("model")["latency_ms"].min().sort_values())
        out.append({"finding": "lowest inference time (accelerated)", "machine": machine, "backend": stack,
                    "paper": f"{PAPER['fastest_model']} about {PAPER['fastest_model_ms']} ms", "paper_ratio": np.nan,
                    "this_machine": (f"{latency.index[0]} {latency.iloc[0]:.2f} ms; "
                                     + _rank_text(latency, PAPER["fastest_model"], " ms", ".2f")) if len(latency)
                    else "no ok zoo models",
                    "ratio": np.nan, "ms": latency.iloc[0] if len(latency) else np.nan})
    table = pd.DataFrame(out, columns=["finding", "machine", "backend", "paper", "paper_ratio", "this_machine", "ratio",
                                       "ms"])
    table = _with_percent(table, "ratio")
    return table


def speedup_matrix(records: pd.DataFrame) -> pd.DataFrame:
    """The pattern x stack speed-up matrix: per machine, row (a design pattern, or a zoo model as a row of
    its own, ``kind`` says which) and accelerated stack, the geometric mean of the speed-ups of its ``ok``
    cells and their count ``cells``, with ``left_out`` counting its cells that are not ``ok``. A row and
    stack with no ok cell has a NaN mean (a blank in the heat map) or no entry, never a 0."""
    columns = ["machine", "kind", "row", "stack", "geomean", "cells", "left_out"]
    rows = accelerated(by_stack(records))
    if rows.empty:
        return pd.DataFrame(columns=columns)
    rows = rows.assign(row=rows["pattern"].where(rows["kind"] == "pattern", rows["model"]).fillna(rows["target"]),
                       stack=rows["backend"])
    keys = ["machine", "kind", "row", "stack"]
    ok = rows[rows["verdict"] == "ok"]
    table = ok.groupby(keys)["speedup"].agg(geomean=geometric_mean, cells="count").reset_index()
    left_out = rows[rows["verdict"] != "ok"].groupby(keys).size().rename("left_out").reset_index()
    # outer: a row and stack whose every cell was left out keeps its count, with no mean (NaN, a blank)
    table = table.merge(left_out, on=keys, how="outer").fillna({"left_out": 0, "cells": 0})
    table[["cells", "left_out"]] = table[["cells", "left_out"]].astype(int)
    return table[columns].sort_values(["machine", "kind", "row", "stack"], ignore_index=True)  # patterns, then zoo
