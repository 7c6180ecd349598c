"""The report's comparison of stacks (a backend at a precision: ``openvino``, ``openvino int8``), drawn
when a machine's results hold more than one accelerated stack: the pattern x stack speed-up matrix as a
heat map and a table (fff.analysis.speedup_matrix: geometric means over ok cells, n in each cell, blank
where none, zoo models as rows of their own below the patterns), and per stack where the time is saved
(fff.report.breakdown_figures.saved_shares_per_stack). A single-stack report has none of it: the
per-pattern figures already say everything there is to compare.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import TwoSlopeNorm

from fff.analysis import accelerated, by_stack, speedup_matrix
from fff.backends import BASELINE, backend_label
from fff.explain.breakdown import CATEGORIES
from fff.report.breakdown_figures import saved_shares_per_stack, time_saved_per_stack
from fff.report.plotting import empty_figure, new_figure, save, stack_order

__all__ = ["several_stacks", "stacks_figures", "stacks_section_html", "speedup_heat_map"]


def several_stacks(records: pd.DataFrame) -> bool:
    """More than one accelerated stack measured (beside the baseline): a comparison of stacks to draw."""
    return accelerated(by_stack(records))["backend"].nunique() > 1


def _matrix_rows(matrix: pd.DataFrame) -> list[tuple[str, str]]:
    """(kind, row) in the order the heat map and table list them: patterns, then zoo models."""
    ordered = matrix.sort_values(["kind", "row"])  # "pattern" before "zoo"
    return list(dict.fromkeys(zip(ordered["kind"], ordered["row"])))


def speedup_heat_map(records: pd.DataFrame, path: Path) -> Path:
    title = f"Speed-up over {backend_label(BASELINE)}: geometric mean over ok cells, per design pattern and stack"
    matrix = speedup_matrix(records)
    if matrix.empty or matrix["geomean"].isna().all():
        return empty_figure(path, title, f"No ok cell of any accelerated stack ({matrix['left_out'].sum()} speed-up(s) "
                                         "left out: contended, noisy or unchecked; the table below lists them).")
    rows = _matrix_rows(matrix)
    stacks = [s for s in stack_order(matrix["stack"]) if s != BASELINE]
    values = np.full((len(rows), len(stacks)), np.nan)
    counts = np.zeros((len(rows), len(stacks)), dtype=int)
    for entry in matrix.itertuples():
        i, j = rows.index((entry.kind, entry.row)), stacks.index(entry.stack)
        values[i, j], counts[i, j] = entry.geomean, entry.cells
    logs = np.log2(values)  # ratios: 0.5x and 2x equally far from 1x
    reach = max(float(np.nanmax(np.abs(logs))), 0.5)
    figure = new_figure(max(6.0, 1.5 * len(stacks) + 3), 0.42 * len(rows) + 2.2)
    axes = figure.add_subplot()
    # no ok cell: a blank, never a colour that reads as a value
    cmap = colormaps["RdYlGn"].with_extremes(bad="white")
    image = axes.imshow(np.ma.masked_invalid(logs), cmap=cmap, norm=TwoSlopeNorm(0.0, -reach, reach), aspect="auto")
    for i in range(len(rows)):
        for j in range(len(stacks)):
            if np.isfinite(values[i, j]):
                dark = abs(logs[i, j]) > 0.7 * reach
                axes.text(j, i, f"{values[i, j]:.2f}x\nn={counts[i, j]}", ha="center", va="center", fontsize=7,
                          color="white" if dark else "black")
    zoo_start = next((i for i, (kind, _) in enumerate(rows) if kind == "zoo"), None)
    if zoo_start not in (None, 0):  # the zoo models are a block of their own
        axes.axhline(zoo_start - 0.5, color="black", linewidth=1.2)
    axes.set_xticks(range(len(stacks)), [backend_label(s) for s in stacks], fontsize=8, rotation=20, ha="right")
    axes.set_yticks(range(len(rows)), [row + (" (zoo)" if kind == "zoo" else "") for kind, row in rows], fontsize=8)
    bar = figure.colorbar(image, ax=axes, shrink=0.8)
    step = max(1, round(reach / 3))  # a handful of ticks, whatever the range
    ticks = [t for t in range(-8 * step, 8 * step + 1, step) if abs(t) <= reach]
    bar.set_ticks(ticks, labels=[f"{2.0 ** t:g}x" for t in ticks])
    bar.set_label("speed-up (log scale; 1x = as fast as the baseline)", fontsize=8)
    axes.set_title(title + "\nblank: no ok cell; n: ok cells in the mean", fontsize=9)
    return save(figure, path)


STACK_FIGURES = {
    "stacks_speedup_matrix": ("Speed-up per design pattern and stack (heat map)", speedup_heat_map),
}


def stacks_figures(records: pd.DataFrame, breakdowns: pd.DataFrame, directory: Path,
                   suffix: str = "") -> list[tuple[str, Path]]:
    """The heat map and the time saved per stack, when the records hold several stacks; else none."""
    if not several_stacks(records):
        return []
    figures = [(caption, draw(records, directory / f"{stem}{suffix}.png"))
               for stem, (caption, draw) in STACK_FIGURES.items()]
    figures.append(("Where each stack saves time, per layer category",
                    time_saved_per_stack(by_stack(breakdowns), directory / f"stacks_time_saved{suffix}.png")))
    return figures


def matrix_table(records: pd.DataFrame) -> pd.DataFrame:
    """The heat map as a table: a row per pattern (then zoo model), a column per stack, 'geomean x (n=cells)'."""
    matrix = speedup_matrix(records)
    if matrix.empty:
        return matrix
    rows = _matrix_rows(matrix)
    stacks = [s for s in stack_order(matrix["stack"]) if s != BASELINE]

    def text(entry) -> str:
        if pd.isna(entry.geomean):  # measured, but no cell ok
            return f"no ok cell ({entry.left_out} left out)" if entry.left_out else ""
        left = f", {entry.left_out} left out" if entry.left_out else ""
        return f"{entry.geomean:.2f}x (n={entry.cells}{left})"

    cells = {(e.kind, e.row, e.stack): text(e) for e in matrix.itertuples()}
    table = pd.DataFrame([{"kind": kind, "pattern or model": row,
                           **{backend_label(s): cells.get((kind, row, s), "") for s in stacks}} for kind, row in rows])
    return table


def saved_table(breakdowns: pd.DataFrame) -> pd.DataFrame:
    """Per stack, each category's share of the time saved (%), and the cells behind it."""
    shares = saved_shares_per_stack(by_stack(breakdowns))
    if shares.empty:
        return shares
    wide = shares.pivot_table(index="backend", columns="category", values="share", aggfunc="first") * 100
    wide = wide[[c for c in CATEGORIES if c in wide.columns]]
    wide = wide.loc[:, (wide.abs() >= 0.5).any()]  # categories under half a percent everywhere say nothing
    wide.columns = [f"{c} %" for c in wide.columns]
    cells = shares.groupby("backend")["cells"].first()
    saved = shares.groupby("backend")["saved_ms"].sum()
    wide = wide.round(1)
    wide.insert(0, "mean ms saved per cell", saved.round(3))
    wide.insert(0, "cells", cells)
    wide = wide.reindex([s for s in stack_order(wide.index) if s != BASELINE])
    wide.index = [backend_label(s) for s in wide.index]
    return wide.rename_axis("stack").reset_index()


def stacks_section_html(records: pd.DataFrame, breakdowns: pd.DataFrame, table, notes: list[str]) -> str:
    """The tables beside the stack figures; ``table`` renders a DataFrame (fff.report.html's), ``notes``
    are the results' notes, of which those on stacks left out of a precision are repeated here."""
    if not several_stacks(records):
        return ""
    left_out = [note for note in notes if " not timed: " in note]
    return "\n".join([
        "<h3>Speed-up per design pattern and stack, table</h3>",
        '<p class="note">A stack is a backend at a precision (int8 beside f32 is another stack, never pooled with '
        "it). Geometric mean of the speed-ups over the ok cells of each pattern (depths x widths x resolutions) or "
        "zoo model; n = those cells; left out = its contended, noisy or unchecked cells; blank: not measured. "
        "Each stack is compared with the baseline at the precision it computed in (an int8 stack with the "
        "baseline in f32: each record's speedup_precisions).</p>",
        *(f'<p class="note">{html.escape(note)}</p>' for note in left_out),
        table(matrix_table(records), "no accelerated cells"),
        "<h3>Where each stack saves time, table</h3>",
        '<p class="note">Per stack, the mean over its cells of each layer category\'s share of the time it saved '
        "against the baseline (a negative share: that category got slower); cells = cells profiled on both sides "
        "that saved time; mean ms saved per cell is summed over the categories.</p>",
        table(saved_table(breakdowns), "no cell profiled layer by layer on the baseline and a stack"),
    ])
