"""The cache model calibrated, and validated, against the cells a study simulated.

A study simulates a subset of its cells under valgrind (``calibrate_every = N``) and models every
cell (fff.explain.cache_model). The model errs low (it streams each tensor once per operation; kernels
re-read some), by an amount that depends mostly on the backend: bench/bench_cache_model.py
measured OpenVINO -5% to -20% and PyTorch -19% to -46% per pattern (the figures the report quotes
for an uncalibrated stack: each Backend's cache_model_error). So a scale factor per
backend and pattern, simulated / modelled LL misses over the simulated cells, corrects most of
it; the validation says how much is left, per pattern, from cells the factor was not fitted on.

Every calibrated figure says so (its source names the factor and the cells behind it); the raw
modelled value stays in ``llc_modelled`` beside ``llc_calibrated``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["FLOOR_LINES", "BENCH_SOURCE", "calibrate", "calibration_factors", "calibration_validation",
           "calibration_status", "zero_model_reading"]

# Where each stack's cache_model_error (quoted for an uncalibrated stack) was measured.
BENCH_SOURCE = ("bench/bench_cache_model.py against valgrind (bench/README.md; depth 1, width 0.5, 64 px, "
                "1 MiB LL): the model errs low")

# Below this many simulated lines a cell's misses are the interpreter's and the runtime's own data
# (~125 lines when the network fits the LL): no ratio to the model means anything there, and the
# errors are taken against this floor (as fff.explain.cache_analysis.model_error does).
FLOOR_LINES = 1000
# A pattern with a simulated cell of its own gets its own factor (the median of its cells' ratios);
# a pattern with none, and every zoo model, gets the backend's pooled median. Why not pool
# everything, the steadier estimate with few cells: the model's error depends on what the kernels
# re-read, which is the pattern's, and between patterns it varies far more than within one across
# depth. Measured here (tiny study, 64 px, width 0.5, 1 MiB LL): PyTorch plain 1.24 (depth 1) and
# 1.19 (depth 3), dw-bottleneck 1.87; OpenVINO 1.01-1.05. Pooled, PyTorch plain erred +23% to +30%
# leave-one-out; by its own pattern about +-4%. A single cell per pattern is noisier than a median of
# many, but that noise (a few %) is smaller than the bias of pooling; the leave-one-out table shows
# both: a pattern with two or more simulated cells validates its own factor, a pattern with one
# validates the pooled fallback an unsimulated pattern gets.
MIN_PATTERN_CELLS = 1


def _keys(records: pd.DataFrame) -> list[str]:
    """What a factor is fitted within: machine and backend, and the LL size where the study has an LL
    axis (fff.analysis' ``ll`` column): a model at 12 MiB is calibrated by cells simulated at 12 MiB."""
    return ["machine", "backend"] + (["ll"] if "ll" in records.columns else [])


def _pattern(records: pd.DataFrame) -> pd.Series:
    return records["pattern"].fillna("zoo")


def _both(records: pd.DataFrame) -> pd.DataFrame:
    """Records simulated and modelled: the calibration subset. A simulation that failed has no
    value (NaN), never 0, so it is not among them."""
    both = records[records["llc_simulated"].notna() & records["llc_modelled"].notna()].copy()
    both["pattern"] = _pattern(both)
    return both


def _fit_rows(both: pd.DataFrame) -> pd.DataFrame:
    """The cells a ratio means something on: the model predicts misses and the simulation saw more
    than its own floor."""
    return both[(both["llc_simulated"] >= FLOOR_LINES) & (both["llc_modelled"] > 0)]


def _factor(fit: pd.DataFrame, pattern: str) -> tuple[float, int, str | None]:
    """(simulated / modelled factor, cells it rests on, the pattern when it is the pattern's own).

    The median of the ratios: with three or more cells one odd cell (a kernel valgrind's CPU made
    the runtime pick) cannot move it as it would a mean; for an odd n it is also the median of the
    log-ratios, so it favours neither side of 1."""
    own = fit[fit["pattern"] == pattern]
    if pattern != "zoo" and len(own) >= MIN_PATTERN_CELLS:  # zoo models share no structure: pooled only
        return float((own["llc_simulated"] / own["llc_modelled"]).median()), len(own), pattern
    if fit.empty:
        return np.nan, 0, None
    return float((fit["llc_simulated"] / fit["llc_modelled"]).median()), len(fit), None


def _label(backend: str, factor: float, cells: int, pattern: str | None) -> str:
    what = f"{backend} {pattern}" if pattern else backend
    return f", calibrated by {cells} simulated {what} cell{'s' if cells != 1 else ''} (factor {factor:.2f})"


def calibration_factors(records: pd.DataFrame) -> pd.DataFrame:
    """Per machine and backend, the pooled factor (scope "all patterns": for patterns with no
    simulated cell, and zoo models) and each pattern's own where it has MIN_PATTERN_CELLS simulated
    cells: cells, factor, and the ratios' range."""
    keys = _keys(records)
    columns = [*keys, "scope", "cells", "factor", "ratio_min", "ratio_max"]
    out = []
    both = _both(records)
    for key, group in (both.groupby(keys) if not both.empty else []):
        fit = _fit_rows(group)
        if fit.empty:
            continue
        ratios = fit["llc_simulated"] / fit["llc_modelled"]
        out.append([*key, "all patterns", len(fit), float(ratios.median()), ratios.min(), ratios.max()])
        for pattern, own in fit.groupby("pattern"):
            factor, cells, scope = _factor(fit, pattern)
            if scope is not None:
                own_ratios = own["llc_simulated"] / own["llc_modelled"]
                out.append([*key, pattern, cells, factor, own_ratios.min(), own_ratios.max()])
    return pd.DataFrame(out, columns=columns)


def calibration_status(records: pd.DataFrame) -> pd.DataFrame:
    """Per machine, backend (and LL size) with modelled cells: how many cells were simulated and how
    many of those a factor could be fitted on, and why the others could not (the model is 0: the
    working set fits, so it predicts no miss; the simulation saw fewer than FLOOR_LINES lines: the
    interpreter's and the runtime's own misses, which no ratio means anything on), with a sentence
    saying so. ``calibrated``: whether the backend's modelled figures were scaled."""
    keys = _keys(records)
    columns = [*keys, "modelled", "simulated", "fitted", "model_zero", "under_floor", "simulated_min",
               "simulated_max", "calibrated", "says"]
    out = []
    modelled = records[records["llc_modelled"].notna()]
    both = _both(records)
    for key, group in (modelled.groupby(keys) if not modelled.empty else []):
        mask = np.ones(len(both), dtype=bool)
        for name, value in zip(keys, key):
            mask &= (both[name] == value).to_numpy()
        sim = both[mask]
        fit = _fit_rows(sim)
        zero, floor = int((sim["llc_modelled"] <= 0).sum()), int((sim["llc_simulated"] < FLOOR_LINES).sum())
        low, high = (sim["llc_simulated"].min(), sim["llc_simulated"].max()) if len(sim) else (np.nan, np.nan)
        backend = key[keys.index("backend")]
        where = f" at LL {key[keys.index('ll')]}" if "ll" in keys else ""
        if sim.empty:
            says = (f"no cell of {backend} was simulated{where}: its "
                    f"{len(group)} modelled figures are the raw model (set calibrate_every in the study file)")
        elif fit.empty:
            says = (f"{len(sim)} cell(s) of {backend} were simulated{where}, none could be fitted: the model is 0 in {zero} "
                    f"(their working sets fit the LL), the simulation saw fewer than {FLOOR_LINES:,} lines in {floor} "
                    f"(simulated {low:,.0f} to {high:,.0f} lines: the interpreter's, the runtime's and the code's own "
                    f"misses, which the tensor model does not count); the {len(group)} modelled figures are the raw model")
        else:
            says = (f"{len(sim)} cell(s) of {backend} simulated{where}, {len(fit)} fitted on"
                    + (f"; left out: model 0 in {zero}, under the {FLOOR_LINES:,}-line floor in {floor}"
                       if len(fit) < len(sim) else ""))
        out.append([*key, len(group), len(sim), len(fit), zero, floor, low, high, not fit.empty, says])
    return pd.DataFrame(out, columns=columns)


def zero_model_reading(modelled: float, simulated: float) -> str:
    """What a raw error means where the model is 0 or the simulation under the floor, '' elsewhere:
    -100% there is not the tensor model erring on the tensors, it is the model saying 0 where the
    simulation saw only cold, instruction and interpreter misses."""
    if not (np.isfinite(modelled) and np.isfinite(simulated)):
        return ""
    if modelled <= 0 and simulated < FLOOR_LINES:
        return (f"model 0 (the working set fits the LL) where the simulation saw under {FLOOR_LINES:,} lines: "
                "cold, instruction and interpreter misses only, which the tensor model does not count; not comparable")
    if modelled <= 0:
        return ("model 0 (the working set fits the LL) where the simulation saw more: misses the tensor model "
                "does not count (code, the runtime's and the interpreter's data, first touches)")
    if simulated < FLOOR_LINES:
        return f"simulated under the {FLOOR_LINES:,}-line floor: the error is taken against the floor"
    return ""


def calibrate(records: pd.DataFrame) -> pd.DataFrame:
    """The study table with ``llc_calibrated`` (the modelled value times its factor, NaN where no
    cell of that machine and backend was simulated) and, for rows whose LLC figure is modelled,
    that figure calibrated and its source saying by what. Measured and simulated figures, and
    ``llc_modelled``, are left as they are.

    Calibration stays within one machine key (fff.analysis keeps study configurations apart there,
    so a what-if LL is calibrated only by cells simulated with that LL)."""
    records = records.copy()
    records["llc_calibrated"] = np.nan
    if records.empty:
        return records
    both = _both(records)
    patterns = _pattern(records)
    keys = _keys(records)
    for key, rows in records.groupby(keys):
        backend = key[keys.index("backend")]
        mask = np.ones(len(both), dtype=bool)
        for name, value in zip(keys, key):
            mask &= (both[name] == value).to_numpy()
        fit = _fit_rows(both[mask])
        if fit.empty:
            continue
        for pattern, index in rows.groupby(patterns[rows.index]).groups.items():
            factor, cells, scope = _factor(fit, pattern)
            records.loc[index, "llc_calibrated"] = records.loc[index, "llc_modelled"] * factor
            modelled = index[records.loc[index, "llc_source"].fillna("").str.startswith("modelled").to_numpy()
                             & records.loc[index, "llc_modelled"].notna().to_numpy()]
            records.loc[modelled, "llc_misses"] = records.loc[modelled, "llc_calibrated"]
            # after the "(what-if LL)" mark fff.explain.cache_analysis.record_llc may have put there
            records.loc[modelled, "llc_source"] = [
                source + _label(backend, factor, cells, scope)
                for source in records.loc[modelled, "llc_source"]]
    return records


def calibration_validation(records: pd.DataFrame) -> pd.DataFrame:
    """Per machine, backend and pattern over its simulated cells: the raw model's error against
    simulation (median, min, max) and the calibrated model's, each cell predicted by a factor
    fitted on the backend's other simulated cells (leave-one-out), so no cell validates a factor
    it helped fit. Errors are 100 x (model - simulated) / max(simulated, FLOOR_LINES)."""
    keys = _keys(records)
    columns = [*keys, "pattern", "cells", "raw_median_pct", "raw_min_pct", "raw_max_pct",
               "calibrated_median_pct", "calibrated_min_pct", "calibrated_max_pct", "validation", "reading"]
    both = _both(records)
    if both.empty:
        return pd.DataFrame(columns=columns)
    floor = both["llc_simulated"].clip(lower=FLOOR_LINES)
    both["raw_pct"] = 100 * (both["llc_modelled"] - both["llc_simulated"]) / floor
    both["calibrated_pct"] = np.nan
    both["predicted_by"] = None
    for _, group in both.groupby(keys):
        fit = _fit_rows(group)
        for index, cell in group.iterrows():
            factor, _, scope = _factor(fit.drop(index, errors="ignore"), cell["pattern"])
            both.loc[index, "predicted_by"] = None if np.isnan(factor) else "own pattern" if scope else "pooled"
            both.loc[index, "calibrated_pct"] = 100 * (cell["llc_modelled"] * factor - cell["llc_simulated"]) / floor[index]
    out = []
    for key, cells in both.groupby([*keys, "pattern"]):
        raw, calibrated = cells["raw_pct"], cells["calibrated_pct"].dropna()
        # a short cell: the table must fit the page; the report's note says what leave-one-out means
        # own pattern: by its pattern's other simulated cells; pooled: by the backend's other patterns
        by = cells["predicted_by"].value_counts()
        missing = len(cells) - len(calibrated)
        validation = ("leave-one-out: " + ", ".join(f"{n} by {how}" for how, n in sorted(by.items()))
                      + (f" ({missing} not predicted)" if missing else "") if len(calibrated) else
                      "none: no other simulated cell to fit on")
        # why a -100% is what it is: said once per pattern, for its cells the model says 0 or the simulation is under the floor
        readings = pd.Series([zero_model_reading(m, s) for m, s in zip(cells["llc_modelled"], cells["llc_simulated"])])
        counted = readings[readings != ""].value_counts(sort=False)
        reading = "; ".join(f"{n} of {len(cells)}: {text}" for text, n in counted.items())
        out.append([*key, len(cells), raw.median(), raw.min(), raw.max(),
                    calibrated.median() if len(calibrated) else np.nan,
                    calibrated.min() if len(calibrated) else np.nan,
                    calibrated.max() if len(calibrated) else np.nan, validation, reading])
    return pd.DataFrame(out, columns=columns)
