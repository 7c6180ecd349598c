"""A study's cache figures: each record's LLC misses from its best source, its working set and
its place under the machine's roofline, and the model's error against simulation.

Sources, best first: ``measured`` (a PMU count), ``simulated`` (valgrind, fff.explain.cache_sim) and
``modelled`` (fff.explain.cache_model). A record has whichever were asked for; the study's cache
figures are never empty on a PMU-less machine because every profile carries the modelled one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["CACHE_COLUMNS", "record_llc", "cache_columns", "model_error", "cache_sources"]

CACHE_COLUMNS = ["llc_simulated", "llc_modelled", "weight_bytes", "working_set_bytes", "arithmetic_intensity",
                 "intensity_source", "attained_fraction", "fma_peak_gflops", "gemm_peak_gflops",
                 "triad_gbytes_per_s", "roof_verdict"]


def _per_inference(counters: dict | None, name: str = "llc-misses") -> float | None:
    counter = (counters or {}).get(name)
    if not isinstance(counter, dict):
        return None
    value = counter.get("per_inference")
    # a failed simulation or count is "could not count", never a figure (even if a value slipped in)
    return None if value is None or counter.get("status") == "error" else float(value)


def _simulated(record: dict) -> float | None:
    """The simulated LL misses, or None where the simulation failed (its counter's status, or the
    whole simulation's, is "error"): a failed simulation is no figure, never 0."""
    if (record.get("simulation") or {}).get("status") == "error":
        return None
    return _per_inference(record.get("simulated_counters"))


def record_llc(record: dict, measured: tuple[float, str | None, str | None]) -> tuple[float, str | None, str | None]:
    """(LLC misses per inference, source, note): the PMU's when it counted (``measured`` is
    fff.analysis's reading of the record's counters), else simulated, else modelled."""
    value, source, note = measured
    if source is not None:
        return value, source, note
    simulated = _simulated(record)
    if simulated is not None:
        return simulated, "simulated", None
    modelled = _per_inference(record.get("modelled_counters"))
    if modelled is not None:
        ll = ((record.get("cache_model") or {}).get("ll") or {})
        what_if = " (what-if LL)" if str(ll.get("note", "")).startswith("what-if") else ""
        return modelled, "modelled" + what_if, None
    return value, source, note


def cache_columns(record: dict) -> dict:
    """The study table's cache and roofline columns for one record (NaN where absent)."""
    work = (record.get("cache_model") or {}).get("working_set") or {}
    roof = record.get("roofline") or {}

    def number(value):
        return np.nan if value is None else float(value)

    simulated = _simulated(record)
    modelled = _per_inference(record.get("modelled_counters"))
    return {
        "llc_simulated": number(simulated), "llc_modelled": number(modelled),
        "weight_bytes": number(work.get("weight_bytes")), "working_set_bytes": number(work.get("working_set_bytes")),
        "arithmetic_intensity": number(roof.get("arithmetic_intensity")),
        "intensity_source": roof.get("intensity_source"),
        "attained_fraction": number(roof.get("attained_fraction")),
        "fma_peak_gflops": number(roof.get("fma_peak_gflops")), "gemm_peak_gflops": number(roof.get("gemm_peak_gflops")),
        "triad_gbytes_per_s": number(roof.get("triad_gbytes_per_s")),
        # fff.explain.roofline: "ok", "contended" (measured low, not cached) or "unchecked" (a point made before the check)
        "roof_verdict": roof.get("roof_verdict", "unchecked") if roof else None,
    }


def model_error(records: pd.DataFrame) -> pd.DataFrame:
    """Modelled against simulated LLC misses per backend and pattern (zoo models as "zoo"), over the
    cells that have both: median and worst relative error, and n."""
    both = records[records["llc_simulated"].notna() & records["llc_modelled"].notna()].copy()
    columns = ["machine", "backend", "pattern", "cells", "median_error_pct", "worst_error_pct"]
    if both.empty:
        return pd.DataFrame(columns=columns)
    both["pattern"] = both["pattern"].fillna("zoo")
    # Below 1,000 simulated lines the interpreter's own misses dominate; compare against that floor.
    both["error_pct"] = 100 * (both["llc_modelled"] - both["llc_simulated"]) / both["llc_simulated"].clip(lower=1000)
    table = (both.groupby(["machine", "backend", "pattern"])["error_pct"]
             .agg(cells="count", median_error_pct="median",
                  worst_error_pct=lambda e: e.iloc[int(np.argmax(np.abs(e.to_numpy())))]).reset_index())
    return table[columns]


def cache_sources(records: pd.DataFrame) -> pd.DataFrame:
    """How many records per backend (and LL size, where there are several) take their LLC figure
    from each source."""
    known = records[records["llc_source"].notna()]
    keys = (["ll"] if "ll" in known and known["ll"].nunique() > 1 else []) + ["backend", "llc_source"]
    return known.groupby(keys).size().rename("records").reset_index()
