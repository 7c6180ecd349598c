"""The report's per-layer figures: where each backend spends its time per design pattern, and which
layer categories the time saved comes from. Drawn from StudyResults.breakdowns (cells measured with
``breakdown = true``); without any, each figure says so instead of being left out.

Every number is a mean over a group's cells of per-cell shares (a share of the backend's profiled
total, or of the time the cell saved), so large and small cells weigh the same and shares add up
to 100%.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps

from fff.backends import BASELINE, backend_label
from fff.explain.breakdown import CATEGORIES
from fff.report.plotting import empty_figure, new_figure, save, stack_order

__all__ = ["draw_breakdown", "category_shares", "saved_shares", "saved_shares_per_stack", "time_saved_per_stack"]

NO_BREAKDOWN = ("No cell in these results was profiled layer by layer.\n"
                "Set breakdown = true in the study's [measure] table (or fff-profile --breakdown).")


def _color(category: str):
    return colormaps["tab20"](CATEGORIES.index(category) / len(CATEGORIES) if category in CATEGORIES else 0.99)


def _group(frame: pd.DataFrame) -> pd.Series:
    """A pattern cell groups under its pattern, a zoo cell under its model."""
    return frame["pattern"].where(frame["kind"] == "pattern", frame["model"]).fillna(frame["target"])


def category_shares(breakdowns: pd.DataFrame) -> pd.DataFrame:
    """group x backend x category -> mean share of the backend's profiled time, and the cell count."""
    if breakdowns.empty:
        return pd.DataFrame(columns=["group", "backend", "category", "share", "cells"])
    frame = breakdowns.assign(group=_group(breakdowns))
    # a category a cell does not have is a share of 0 there, not a missing value
    wide = frame.pivot_table(index=["group", "backend", "cell_id"], columns="category", values="share",
                             aggfunc="sum", fill_value=0.0)
    mean = wide.groupby(level=["group", "backend"]).mean()
    cells = wide.groupby(level=["group", "backend"]).size()
    long = mean.stack().rename("share").reset_index()
    return long.merge(cells.rename("cells").reset_index(), on=["group", "backend"])


def _cell_saved_shares(breakdowns: pd.DataFrame) -> pd.DataFrame:
    """One row per cell x accelerated stack x category: (baseline ms - the stack's ms) / the time the
    stack saved in that cell, with the ms saved; cells in which a stack saved no time are left out."""
    columns = ["group", "backend", "cell_id", "category", "share", "saved_ms"]
    if breakdowns.empty or BASELINE not in set(breakdowns["backend"]):
        return pd.DataFrame(columns=columns)
    frame = breakdowns.assign(group=_group(breakdowns))
    wide = frame.pivot_table(index=["group", "cell_id", "backend"], columns="category", values="ms",
                             aggfunc="sum", fill_value=0.0)
    rows = []
    for (group, cell), cell_frame in wide.groupby(level=["group", "cell_id"]):
        per_backend = cell_frame.droplevel(["group", "cell_id"])
        if BASELINE not in per_backend.index:
            continue
        for backend in per_backend.index.drop(BASELINE):
            saved = per_backend.loc[BASELINE] - per_backend.loc[backend]
            if saved.sum() <= 0:
                continue  # no time saved: no share to split
            rows += [{"group": group, "backend": backend, "cell_id": cell, "category": c, "share": s / saved.sum(),
                      "saved_ms": s} for c, s in saved.items()]
    return pd.DataFrame(rows, columns=columns)


def saved_shares(breakdowns: pd.DataFrame) -> pd.DataFrame:
    """group x accelerated stack x category -> mean over cells of (baseline ms - the stack's ms) / the
    time the stack saved in that cell; each stack against the baseline, never pooled with another."""
    columns = ["group", "backend", "category", "share", "cells"]
    shares = _cell_saved_shares(breakdowns)
    if shares.empty:
        return pd.DataFrame(columns=columns)
    out = shares.groupby(["group", "backend", "category"])["share"].mean().reset_index()
    cells = shares.groupby(["group", "backend"])["cell_id"].nunique().rename("cells").reset_index()
    return out.merge(cells, on=["group", "backend"])[columns]


def time_per_category(breakdowns: pd.DataFrame, path: Path) -> Path:
    title = "Where each backend spends its time, per design pattern"
    table = category_shares(breakdowns)
    if table.empty:
        return empty_figure(path, title, NO_BREAKDOWN)
    groups = sorted(table["group"].unique())
    backends = stack_order(table["backend"])
    # one horizontal bar per group and backend: a study has 20-30 groups, which side by side in
    # columns made a figure too wide to read on a page
    rows = [(group, backend) for group in groups for backend in backends]
    positions = np.array([i * (len(backends) + 0.6) + j for i in range(len(groups)) for j in range(len(backends))])
    figure = new_figure(10, 0.28 * len(rows) + 2)
    axes = figure.add_subplot()
    left = np.zeros(len(rows))
    for category in CATEGORIES:
        shares = table[table["category"] == category].set_index(["group", "backend"])["share"]
        values = np.array([shares.get(row, 0.0) for row in rows]) * 100
        if not values.any():
            continue
        axes.barh(positions, values, 0.9, left=left, color=_color(category), label=category, edgecolor="white",
                  linewidth=0.4)
        left += values
    axes.set_yticks(positions, [f"{group} ({backend})" for group, backend in rows], fontsize=7)
    axes.invert_yaxis()  # groups read top to bottom in alphabetical order
    axes.set_xlabel("share of the backend's profiled time (%)")
    axes.set_xlim(0, 105)
    coverage = breakdowns.groupby("backend")["coverage"].median()
    slowdown = breakdowns.groupby("backend")["slowdown"].median()
    def shown(value, text):  # a figure the record does not hold (a stack that profiles another build) is "-"
        return "-" if pd.isna(value) else text.format(value)

    caption = ("median coverage " + ", ".join(f"{b} {shown(100 * coverage.get(b, np.nan), '{:.0f}%')}" for b in backends)
               + "; profiling slowdown " + ", ".join(f"{b} {shown(slowdown.get(b, np.nan), '{:.2f}x')}"
                                                     for b in backends))
    axes.set_title("\n".join([title, *textwrap.wrap(caption, 90, break_on_hyphens=False)]), fontsize=9)
    handles, names = axes.get_legend_handles_labels()
    unique = dict(zip(names, handles))
    figure.legend(unique.values(), unique.keys(), fontsize=7, loc="outside right upper", frameon=False)
    return save(figure, path)


def _signed_share_bars(axes, shares: pd.DataFrame, keys: list) -> tuple[np.ndarray, np.ndarray]:
    """A horizontal bar per key (``shares``' index) of each category's share of the saved time, in %,
    stacked category after category: a category that got slower extends to the left of 0. Returns how
    far the bars reach to the left and to the right."""
    right, left = np.zeros(len(keys)), np.zeros(len(keys))
    for category in CATEGORIES:
        values = shares.loc[shares["category"] == category, "share"]
        values = values.reindex(keys).fillna(0.0).to_numpy() * 100
        if not values.any():
            continue
        start = np.where(values >= 0, right, left)
        axes.barh(np.arange(len(keys)), values, left=start, color=_color(category), label=category,
                  edgecolor="white", linewidth=0.4)
        right += np.where(values >= 0, values, 0)
        left += np.where(values < 0, values, 0)
    return left, right


def where_time_saved(breakdowns: pd.DataFrame, path: Path) -> Path:
    title = (f"Where the time saved comes from: share of ({backend_label(BASELINE)} - accelerated) time per layer "
             "category")
    table = saved_shares(breakdowns)
    if table.empty:
        return empty_figure(path, title, NO_BREAKDOWN if breakdowns.empty else
                            "No cell with both backends profiled saved time.")
    # a bar per group, or per group and stack where more than one stack saved time
    keys = sorted(set(zip(table["group"], table["backend"])))  # the baseline saves nothing: no row of its own
    several = len({backend for _, backend in keys}) > 1
    figure = new_figure(10, 0.45 * len(keys) + 2)
    axes = figure.add_subplot()
    positions = np.arange(len(keys))
    _signed_share_bars(axes, table.set_index(["group", "backend"]), keys)
    cells = table.groupby(["group", "backend"])["cells"].first().reindex(keys)
    axes.set_yticks(positions, [f"{g}{f', {b}' if several else ''} ({n} cell{'s' if n != 1 else ''})"
                                for (g, b), n in zip(keys, cells)], fontsize=8)
    axes.axvline(0, color="black", linewidth=0.6)
    axes.set_xlabel("share of the time saved (%); mean over cells; left of 0: categories that got slower")
    axes.set_title(title, fontsize=9)
    figure.legend(fontsize=7, loc="outside right upper", frameon=False)
    return save(figure, path)


def saved_shares_per_stack(breakdowns: pd.DataFrame) -> pd.DataFrame:
    """Accelerated stack x category -> mean over the stack's cells (patterns and zoo models) of the
    category's share of the time the stack saved in the cell; ``cells``: how many cells saved time, and
    ``saved_ms``: the mean ms saved per cell in the category. Give it fff.analysis.by_stack(breakdowns)
    so that a backend's f32 and int8 cells are separate stacks."""
    columns = ["backend", "category", "share", "saved_ms", "cells"]
    shares = _cell_saved_shares(breakdowns)
    if shares.empty:
        return pd.DataFrame(columns=columns)
    out = shares.groupby(["backend", "category"])[["share", "saved_ms"]].mean().reset_index()
    cells = shares.groupby("backend")["cell_id"].nunique().rename("cells").reset_index()
    return out.merge(cells, on="backend")[columns]


def time_saved_per_stack(breakdowns: pd.DataFrame, path: Path) -> Path:
    title = (f"Where each stack saves time over {backend_label(BASELINE)}:\nshare of the saved ms per layer category "
             "(mean over cells)")
    table = saved_shares_per_stack(breakdowns)
    if table.empty:
        return empty_figure(path, title, NO_BREAKDOWN if breakdowns.empty else
                            "No cell with both the baseline and a stack profiled saved time.")
    stacks = [s for s in stack_order(table["backend"]) if s != BASELINE]
    figure = new_figure(10, 0.5 * len(stacks) + 2)
    axes = figure.add_subplot()
    positions = np.arange(len(stacks))
    left, right = _signed_share_bars(axes, table.set_index("backend"), stacks)
    axes.set_xlim(min(left.min(), 0) - 3, max(right.max(), 100) + 3)  # every bar whole, however far it reaches
    cells = table.groupby("backend")["cells"].first().reindex(stacks)
    axes.set_yticks(positions, [f"{backend_label(s)} ({n} cell{'s' if n != 1 else ''})" for s, n in zip(stacks, cells)],
                    fontsize=8)
    axes.invert_yaxis()
    axes.axvline(0, color="black", linewidth=0.6)
    axes.set_xlabel("share of the time saved (%); left of 0: categories that got slower")
    axes.set_title(title, fontsize=9)
    figure.legend(fontsize=7, loc="outside right upper", frameon=False)
    return save(figure, path)


BREAKDOWN_FIGURES = {
    "breakdown_per_pattern": ("Time per layer category, per design pattern and backend", time_per_category),
    "breakdown_time_saved": ("Where the time saved comes from, per layer category", where_time_saved),
}


def draw_breakdown(breakdowns: pd.DataFrame, directory: Path, suffix: str = "") -> list[tuple[str, Path]]:
    return [(caption, draw(breakdowns, directory / f"{stem}{suffix}.png"))
            for stem, (caption, draw) in BREAKDOWN_FIGURES.items()]
