"""The study's answer on cache efficacy, per LL size: which cells' working sets exceed the size, at
which depth and width each pattern stops fitting, and whether latency follows LLC misses there (the
paper's claim), in a sentence written from the data.

A study with an LL-size axis (``cache = ["machine", "LL=12MiB,16way"]``) has its cache figures at
each size from one timed run (fff.analysis' cache_records); a study of one size has one. The
latency is always this machine's; at a what-if size only the cache figures are the what-if's, so
"latency follows misses there" reads: the cells that would miss more on that cache are the cells
that take longer here.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from fff.analysis import LLC_SOURCES, spearman
from fff.backends import BASELINE, backend_label
from fff.report.plotting import stack_order

__all__ = ["exceeding_share", "first_exceeding", "latency_follows", "ll_answer", "cache_efficacy_html",
           "FOLLOWS", "LOOSELY"]

# Spearman's rho of latency with LLC misses over a size's pattern cells: at or above FOLLOWS latency
# "follows" the misses, at or above LOOSELY "loosely", below that it does not.
FOLLOWS, LOOSELY = 0.7, 0.4


def _patterns(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[(rows["kind"] == "pattern") & rows["working_set_bytes"].notna() & rows["ll_bytes"].notna()]


def exceeding_share(rows: pd.DataFrame) -> pd.DataFrame:
    """Per backend, of one LL size's pattern cells with a modelled working set: how many exceed the LL."""
    cells = _patterns(rows)
    out = [{"backend": backend, "cells": len(group),
            "exceeding": int((group["working_set_bytes"] > group["ll_bytes"]).sum())}
           for backend in stack_order(cells["backend"]) for group in [cells[cells["backend"] == backend]]]
    table = pd.DataFrame(out, columns=["backend", "cells", "exceeding"])
    table["share_pct"] = 100 * table["exceeding"] / table["cells"].where(table["cells"] > 0)
    return table


def first_exceeding(rows: pd.DataFrame) -> pd.DataFrame:
    """Per pattern and width, the smallest depth at which each backend's working set exceeds the LL
    (NaN: it fits at every depth measured)."""
    cells = _patterns(rows)
    out = []
    for (pattern, width), group in cells.groupby(["pattern", "width"]):
        entry = {"pattern": pattern, "width": width}
        for backend, own in group.groupby("backend"):
            over = own[own["working_set_bytes"] > own["ll_bytes"]]["depth"]
            entry[backend] = over.min() if len(over) else np.nan
        out.append(entry)
    return pd.DataFrame(out)


def _model_source(rows: pd.DataFrame) -> str | None:
    """The one source a size's correlation is taken from: measured or simulated where every cell
    has one, else the calibrated model where every cell has it, else the raw model."""
    for source in ("measured", "simulated", "calibrated", "modelled"):
        column = LLC_SOURCES[source]
        if column in rows and len(rows) and rows[column].notna().all():
            return source
    return None


def latency_follows(rows: pd.DataFrame, patterns=None) -> pd.DataFrame:
    """Per backend at one LL size, over the pattern cells (of ``patterns``, default all): Spearman's
    rho of latency with LLC misses (one source for all the cells, named) and with FLOPs beside it,
    n, and how many cells miss at all."""
    cells = rows[(rows["kind"] == "pattern") & rows["latency_ms"].notna()]
    if patterns is not None:
        cells = cells[cells["pattern"].isin(list(patterns))]
    out = []
    for backend in stack_order(cells["backend"]):
        group = cells[cells["backend"] == backend]
        source = _model_source(group)
        misses = group[LLC_SOURCES[source]] if source else pd.Series(dtype=float)
        out.append({"backend": backend, "source": source or "none", "cells": len(group),
                    "missing_cells": int((misses >= 1).sum()) if source else 0,
                    "rho_misses": spearman(misses, group["latency_ms"]) if source else np.nan,
                    "rho_flops": spearman(group["flops"], group["latency_ms"])})
    return pd.DataFrame(out, columns=["backend", "source", "cells", "missing_cells", "rho_misses", "rho_flops"])


def _depths(values) -> str:
    return "fits at every depth" if np.isnan(values) else f"from depth {values:g}"


def _verdict(rho: float) -> str:
    if not np.isfinite(rho):
        return "cannot be said (too few cells, or no cell misses)"
    if rho >= FOLLOWS:
        return f"follows them (Spearman {rho:.2f})"
    if rho >= LOOSELY:
        return f"follows them loosely (Spearman {rho:.2f})"
    return f"does not follow them (Spearman {rho:.2f})"


def ll_answer(rows: pd.DataFrame, caption: str) -> str:
    """The sentence for one LL size, from its rows: how many pattern cells exceed it, where each
    pattern stops fitting, and whether latency follows the misses there, per backend."""
    share = exceeding_share(rows)
    if share.empty:
        return f"At {caption}: no pattern cell has a modelled working set, so nothing can be said of this size."
    counts = ", ".join(f"{backend_label(r.backend)} {r.exceeding} of {r.cells}" for r in share.itertuples())
    first = first_exceeding(rows)
    backends = [b for b in first.columns if b not in ("pattern", "width")]
    reference = BASELINE if BASELINE in backends else backends[0]  # the working sets differ little between stacks
    stops, fits, crossing = [], [], []
    for pattern, group in first.groupby("pattern"):
        depths = group.set_index("width")[reference]
        if depths.isna().all():
            fits.append(pattern)
        else:
            crossing.append(pattern)
            stops.append(f"{pattern} " + ", ".join(f"{_depths(d)} at width {w:g}" for w, d in depths.items()
                                                   if not np.isnan(d)))
    sentence = f"At {caption}, the working sets of {counts} pattern cells exceed it. "
    if stops:
        sentence += f"Stops fitting ({backend_label(reference)}'s working set): " + "; ".join(stops) + ". "
    if fits:
        sentence += f"Fits at every depth and width: {', '.join(fits)}. "
    follows = latency_follows(rows, crossing)
    if stops and not follows.empty:
        parts = [f"{backend_label(r.backend)} latency {_verdict(r.rho_misses)} over their {r.cells} cells "
                 f"({r.source} misses; {r.missing_cells} cells miss; FLOPs {r.rho_flops:.2f})"
                 for r in follows.itertuples()]
        held = {backend_label(r.backend): r.rho_misses >= FOLLOWS for r in follows.itertuples()
                if np.isfinite(r.rho_misses)}
        claim = "the paper's claim that latency follows LL cache efficacy "
        if not held:
            claim += "cannot be checked at this size"
        elif all(held.values()):
            claim += "holds here"
        elif not any(held.values()):
            claim += "does not hold here"
        else:
            claim += (f"holds for {', '.join(b for b, ok in held.items() if ok)}, not for "
                      f"{', '.join(b for b, ok in held.items() if not ok)}")
        sentence += "In the patterns that stop fitting, " + "; ".join(parts) + f": {claim}."
    elif not stops:
        sentence += "No pattern stops fitting at this size, so its LLC misses cannot explain latency here."
    return sentence


def cache_efficacy_html(cache_records: pd.DataFrame, table) -> str:
    """The report's cache-efficacy section for one machine: per LL size, the sentence, the share of
    cells exceeding it, the depth each pattern stops fitting at, and the correlations behind the sentence."""
    from fff.report.figures import ll_caption, ll_sizes

    sizes = ll_sizes(cache_records)
    if not sizes:
        return ""
    parts = ["<h3>Cache efficacy per LL size: the study's answer</h3>",
             '<p class="note">Working set: the bytes of a cell\'s weights and of the activations alive at once '
             '(fff.explain.cache_model). A cell "exceeds" an LL size when its working set is larger. Latency is '
             "always this machine's; at a what-if size the cache figures are those of a smaller (or larger) cache "
             f"for the same run. Spearman's rho of latency with LLC misses, one source for all the cells of a stack "
             f"(measured, else simulated, else the calibrated model, else the raw model): >= {FOLLOWS} follows, "
             f">= {LOOSELY} loosely, below that not. FLOPs' rho beside it: depth grows both.</p>"]
    for ll, size, what_if in sizes:
        rows = cache_records[cache_records["ll"] == ll]
        caption = ll_caption(ll, size, what_if)
        parts += [f"<h4>{html.escape(caption)}</h4>",
                  f'<p><b>{html.escape(ll_answer(rows, caption))}</b></p>',
                  table(exceeding_share(rows).round(1), "no pattern cell has a modelled working set"),
                  table(_first_table(first_exceeding(rows)), "no pattern cell"),
                  table(latency_follows(rows).round(3), "no timed pattern cell")]  # every pattern, beside the sentence's
    return "\n".join(parts)


def _first_table(first: pd.DataFrame) -> pd.DataFrame:
    if first.empty:
        return first
    shown = first.copy()
    for column in shown.columns[2:]:
        shown[column] = shown[column].map(lambda d: "fits" if pd.isna(d) else f"depth {d:g}")
    return shown.rename(columns={c: f"{c}: exceeds from" for c in shown.columns[2:]})
