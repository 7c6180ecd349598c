"""The report's figures, one function each, for the results of one machine.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no global state, no display
needed). A figure with nothing to show still gets drawn, saying why it is empty, so the
report never has a broken image.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from fff.analysis import (LLC_SOURCES, PAPER, accelerated, geometric_mean, speedup_by_pattern, speedup_trend,
                          suspect_cells)
from fff.report.cache_section import roofline_figure
from fff.backends import BASELINE, backend_color, backend_label
from fff.report.plotting import empty_figure, new_figure, plain_log_scale, save, stack_order

__all__ = ["FIGURES", "draw_all", "ll_sizes", "ll_caption", "ll_slug", "llc_curves"]

# One colour per design pattern where patterns share a plot (matplotlib's tab10, in order).
PATTERN_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
                  "#17becf"]


def _pattern_grid(patterns: list[str]):
    columns = min(5, len(patterns))
    rows = int(np.ceil(len(patterns) / columns))
    figure = new_figure(max(3.2 * columns, 6.4), 2.7 * rows + 0.6)  # wide enough for the title over one panel
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for extra in axes[len(patterns):]:
        extra.set_axis_off()
    return figure, axes


def _flagged(cells: pd.DataFrame, records: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``cells`` that suspect_cells flags: matched by stack too, since the stacks of one
    cell share its cell_id and one stack's odd speed-up says nothing of another's."""
    keys = ["machine", "cell_id", "backend"]
    suspects = suspect_cells(records)[keys].drop_duplicates()
    return cells[pd.MultiIndex.from_frame(cells[keys]).isin(pd.MultiIndex.from_frame(suspects))]


def speedup_per_pattern(records: pd.DataFrame, path: Path) -> Path:
    title = f"Speed-up over {backend_label(BASELINE)} per design pattern"
    table = speedup_by_pattern(records)
    if table.empty:
        measured = accelerated(records)["kind"].eq("pattern").sum()
        return empty_figure(path, title, f"None of the {measured} design-pattern cells has the verdict ok (contended, "
                                         "noisy, or measured before fff checked contention)." if measured
                            else "No successful design-pattern cells.")
    many = table["backend"].nunique() >= 3  # then the legend goes beside the axes, not over the bars
    figure = new_figure(max(6, 0.8 * table["pattern"].nunique() + 3) + (3.5 if many else 0), 4.5)
    axes = figure.add_subplot()
    every = accelerated(records)
    every = every[every["kind"] == "pattern"]
    cells = every[every["verdict"] == "ok"]
    flagged = _flagged(cells, records)
    order = list(table.groupby("pattern")["geomean"].max().sort_values(ascending=False).index)
    backends = stack_order(table["backend"])
    # each stack's bars side by side around the pattern's tick; its single cells on its own bar
    # (bars as wide as their spacing: with three stacks or more, narrower spacing made them overlap)
    width = 0.6 / len(backends) if len(backends) < 3 else 0.8 / len(backends)
    offsets = dict(zip(backends, np.linspace(-0.15, 0.15, len(backends)) if len(backends) == 2
                       else (np.arange(len(backends)) - (len(backends) - 1) / 2) * width))
    marked = set()  # a legend entry once, however many stacks draw it

    def once(label):
        if label in marked:
            return "_nolegend_"
        marked.add(label)
        return label

    for backend, offset in offsets.items():
        rows = table[table["backend"] == backend]
        positions = np.array([order.index(p) for p in rows["pattern"]])
        axes.bar(positions + offset, rows["geomean"], width=width, color=backend_color(backend),
                 alpha=0.75, label=f"{backend}: geometric mean over its ok cells")
        for position, pattern in zip(positions, rows["pattern"]):
            values = cells[(cells["backend"] == backend) & (cells["pattern"] == pattern)]["speedup"]
            axes.scatter(np.full(len(values), position + offset), values, s=10, color="black", zorder=3)
        left_out = every[(every["backend"] == backend) & (every["verdict"] != "ok") & every["pattern"].isin(order)]
        if len(left_out):
            axes.scatter([order.index(p) + offset for p in left_out["pattern"]], left_out["speedup"], s=18,
                         facecolors="none", edgecolors="grey", zorder=3,
                         label=once("left out: contended, noisy or unchecked"))
        suspect = flagged[flagged["backend"] == backend]
        if len(suspect):
            axes.scatter([order.index(p) + offset for p in suspect["pattern"]], suspect["speedup"], s=50, marker="x",
                         color="#d62728", zorder=4, label=once("suspect cell (see the report)"))
    axes.set_xticks(np.arange(len(order)), order, rotation=35, ha="right")
    axes.axhline(1.0, color="grey", linewidth=1, linestyle=":", label="no speed-up")
    axes.axhline(PAPER["average_speedup_percent"] / 100, color="grey", linestyle="--", linewidth=1,
                 label=f"paper's average ({PAPER['average_speedup_percent']:.0f}% read as 3.8x)")
    plain_log_scale(axes)  # speed-ups are ratios: 0.5x and 2x sit equally far from 1x
    axes.set_ylabel(f"speed-up ({backend_label(BASELINE)} median / accelerated median)")
    axes.set_title(title + " (dots: single cells)")  # the dots are the spread of the cells
    if many:
        figure.legend(fontsize=8, loc="outside right upper", frameon=False)
    else:
        axes.legend(fontsize=8)
    return save(figure, path)


def speedup_against_depth_and_width(records: pd.DataFrame, path: Path) -> Path:
    title = "Speed-up against depth and width"
    by_depth, by_width = speedup_trend(records, "depth"), speedup_trend(records, "width")
    if by_depth.empty:
        return empty_figure(path, title, "No design-pattern cells with the verdict ok.")
    cells = accelerated(records)
    cells = cells[cells["kind"] == "pattern"]
    flagged = _flagged(cells, records)
    figure = new_figure(11, 4.5)
    left, right = figure.subplots(1, 2)
    drawn = {}
    for axes, table, axis in ((left, by_depth, "depth"), (right, by_width, "width")):
        axes.set_title(f"{title.split(' against')[0]} against {axis}")
        values = sorted(table[axis].unique())
        if len(values) == 1:  # one point per line would hide behind its marker: say so instead
            axes.set_axis_off()
            axes.text(0.5, 0.5, f"Every cell has {axis} {values[0]:g}:\nnothing to plot against {axis}.",
                      ha="center", va="center", transform=axes.transAxes, fontsize=11)
            continue
        if table["backend"].nunique() > 2:
            # A line per pattern and stack (60 for ten patterns and six stacks) is a tangle no legend can
            # name: one line per stack, its patterns' medians averaged geometrically (speed-ups are
            # ratios); the per-pattern values are in the tables below and the stacks' heat map.
            for backend, rows in table.groupby("backend"):
                mean = rows.groupby(axis)["median"].agg(geometric_mean)
                label = f"{backend_label(backend)} (geometric mean over {rows['pattern'].nunique()} patterns)"
                drawn[label] = axes.plot(mean.index, mean.to_numpy(), marker="o", color=backend_color(backend),
                                         label=label)[0]
        else:
            for (backend, pattern), rows in table.groupby(["backend", "pattern"]):
                label = pattern if table["backend"].nunique() == 1 else f"{pattern} ({backend})"
                drawn[label] = axes.plot(rows[axis], rows["median"], marker="o", label=label)[0]
        if len(flagged):
            drawn["suspect cell (see the report)"] = axes.scatter(
                flagged[axis], flagged["speedup"], s=50, marker="x", color="#d62728", zorder=4)
        plain_log_scale(axes)  # ratios: one large cell must not flatten every other line
        axes.set_xticks(values)
        axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axes.set_xlabel(axis + (" (blocks)" if axis == "depth" else " (channel multiplier)"))
        axes.set_ylabel("median speed-up over the other axis")
        axes.axhline(1.0, color="grey", linewidth=1, linestyle=":")
    if drawn:
        figure.legend(list(drawn.values()), list(drawn), fontsize=7, loc="outside right center")
    return save(figure, path)


def latency_against_depth(records: pd.DataFrame, path: Path) -> Path:
    title = "Median latency against depth, per pattern"
    rows = records[records["kind"] == "pattern"]
    if rows.empty:
        return empty_figure(path, title, "No successful design-pattern cells.")
    patterns = sorted(rows["pattern"].unique())
    figure, axes = _pattern_grid(patterns)
    widths = sorted(rows["width"].dropna().unique())
    styles = dict(zip(widths, ["-", "--", ":", "-."] * 4))
    for ax, pattern in zip(axes, patterns):
        cells = rows[rows["pattern"] == pattern]
        for (backend, width), line in cells.groupby(["backend", "width"]):
            line = line.groupby("depth")["latency_ms"].median()
            ax.plot(line.index, line.values, marker="o", color=backend_color(backend), linestyle=styles.get(width, "-"),
                    label=f"{backend} w={width:g}")
        ax.set_title(pattern, fontsize=10)
        plain_log_scale(ax)
        ax.set_xticks(sorted(cells["depth"].unique()))
        ax.set_xlabel("depth")
        ax.set_ylabel("ms")
    axes[0].legend(fontsize=7)
    figure.suptitle(title + " (medians over resolutions)")
    return save(figure, path)


def latency_against_flops(records: pd.DataFrame, path: Path) -> Path:
    title = "Median latency against FLOPs (2 x multiply-adds)"
    rows = records[records["flops"].notna() & (records["flops"] > 0)]
    if rows.empty:
        return empty_figure(path, title, "No cells with a FLOP count.")
    figure = new_figure(9.5, 5.5)
    axes = figure.add_subplot()
    patterns = sorted(rows.loc[rows["kind"] == "pattern", "pattern"].dropna().unique())
    colors = dict(zip(patterns, PATTERN_COLORS * 2))
    backends = stack_order(rows["backend"])
    # the baseline hollow, the accelerated stacks filled, each in a shape of its own: stacks apart in every colour
    shapes = {BASELINE: "o", **dict(zip([b for b in backends if b != BASELINE], ["o", "s", "D", "v", "P", "*"] * 2))}

    def style(backend, color):
        return dict(facecolors="none", edgecolors=color) if backend == BASELINE else dict(color=color)

    for backend, cells in rows.groupby("backend"):
        for pattern, group in cells[cells["kind"] == "pattern"].groupby("pattern"):
            axes.scatter(group["flops"], group["latency_ms"], s=16, alpha=0.8, marker=shapes[backend],
                         **style(backend, colors[pattern]))
        zoo = cells[cells["kind"] == "zoo"]
        axes.scatter(zoo["flops"], zoo["latency_ms"], s=45, marker="^", linewidths=1.2, **style(backend, "#333333"))
        for _, model in zoo.iterrows():
            axes.annotate(model["model"], (model["flops"], model["latency_ms"]), fontsize=6,
                          xytext=(4, 2), textcoords="offset points", color="#555555" if backend == BASELINE else "black")
    axes.set_xscale("log")
    plain_log_scale(axes)
    axes.set_xlabel("FLOPs per inference")
    axes.set_ylabel("median latency (ms)")
    axes.set_title(title)
    legend = [Line2D([], [], linestyle="", marker="o", color=colors[p], label=p) for p in patterns]
    legend += [Line2D([], [], linestyle="", marker="^", color="#333333", label="zoo model (named)")]
    legend += [Line2D([], [], linestyle="", marker=shapes[b], color="grey",
                      markerfacecolor="none" if b == BASELINE else "grey", label=f"{b}: " + (
                          "hollow" if b == BASELINE else "filled")) for b in backends]
    figure.legend(handles=legend, fontsize=7, loc="outside right center")
    return save(figure, path)


# How each source of LLC misses is drawn: a figure never joins points of two sources into one line.
SOURCE_MARKERS = {"measured": "s", "simulated": "o", "calibrated": "D", "modelled": "D"}


def ll_caption(ll: str, ll_bytes: float, what_if: bool) -> str:
    """'this machine's LL (480 MiB)' or 'what-if LL=12MiB,16way (12 MiB)': every cache figure says which."""
    size = f" ({ll_bytes / 2**20:.3g} MiB)" if np.isfinite(ll_bytes) else ""
    return f"what-if {ll}{size}" if what_if else f"this machine's LL{size}"


def _curve_source(line: pd.DataFrame) -> str | None:
    """The model's source for one curve: calibrated where the whole curve is, else the raw model."""
    column = LLC_SOURCES["calibrated"]
    if column in line and len(line) and line[column].notna().all():
        return "calibrated"
    column = LLC_SOURCES["modelled"]
    return "modelled" if column in line and line[column].notna().any() else None


def llc_curves(rows: pd.DataFrame) -> pd.DataFrame:
    """What the LLC figure draws, one row per curve: pattern, backend, width, source, the depths and
    values (medians over resolution), and whether its points are joined by a line. Each curve has one
    source: the model's (calibrated where every point of the curve is, else raw), and the simulated
    and measured figures each on their own, joined only where every depth of the curve has one."""
    out = []
    rows = rows[(rows["kind"] == "pattern") & rows["depth"].notna()]
    columns = [c for c in LLC_SOURCES.values() if c in rows]
    for (pattern, backend, width), cells in rows.groupby(["pattern", "backend", "width"]):
        line = cells.groupby("depth")[columns].median(numeric_only=True).reindex(columns=columns)
        model = _curve_source(line)
        sources = ([model] if model else []) + [s for s in ("simulated", "measured") if LLC_SOURCES[s] in line]
        for source in sources:
            known = line[LLC_SOURCES[source]].dropna()
            if known.empty:
                continue
            out.append({"pattern": pattern, "backend": backend, "width": width, "source": source,
                        "depths": known.index.tolist(), "values": known.tolist(),
                        "joined": len(known) == len(line) and len(known) > 1})
    return pd.DataFrame(out, columns=["pattern", "backend", "width", "source", "depths", "values", "joined"])


def _lines_text(value: float) -> str:
    """0, 500, 1k, 10k, 1M: an axis of line counts read at a glance."""
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:g}{unit}"
    return f"{value:g}"


def llc_misses_against_depth(records: pd.DataFrame, path: Path) -> Path:
    """LLC misses per inference against depth, per pattern, a line per backend and width, for the
    records of one LL size. One source per curve: the model's curve (calibrated where its backend
    and size have a factor, else raw) is a line with hollow markers; simulated and measured figures
    are markers of their own, joined only where every point of that curve has one. Below
    fff.explain.cache_calibration.FLOOR_LINES the axis is linear (symlog), so a model's 0 and the
    simulation's few hundred cold misses both show."""
    from fff.explain.cache_calibration import FLOOR_LINES

    title = "Last-level-cache misses per inference against depth and width"
    has_any = [c for c in LLC_SOURCES.values() if c in records]
    rows = records[(records["kind"] == "pattern")]
    rows = rows[rows[has_any].notna().any(axis=1)] if has_any else rows.iloc[:0]
    if rows.empty or rows["depth"].isna().all():
        notes = records["llc_note"].dropna().unique()
        reason = textwrap.shorten(notes[0] if len(notes) else "no cells", 150, placeholder=" ...")
        return empty_figure(path, title, "\n".join(textwrap.wrap(f"No LLC-miss counts in these results ({reason}).", 90))
                            + "\nHardware counters need a PMU; without one, simulate the caches:\n"
                            "fff-study --counters llc-misses --simulate-cache (in a study file: simulate_cache = true).")
    patterns = sorted(rows["pattern"].unique())
    figure, axes = _pattern_grid(patterns)
    widths = sorted(rows["width"].dropna().unique())
    styles = dict(zip(reversed(widths), ["-", "--", ":", "-."] * 4))  # the widest solid
    curves = llc_curves(rows)
    for ax, pattern in zip(axes, patterns):
        cells = rows[rows["pattern"] == pattern]
        for curve in curves[curves["pattern"] == pattern].itertuples():
            color, style = backend_color(curve.backend), styles.get(curve.width, "-")
            model = curve.source in ("modelled", "calibrated")
            ax.plot(curve.depths, curve.values, linestyle=style if curve.joined else "", color=color,
                    marker=SOURCE_MARKERS[curve.source], markersize=4 if model else 6, zorder=2 if model else 3,
                    markerfacecolor="none" if curve.source == "modelled" else "white" if model else color,
                    linewidth=1.1)
        ax.set_title(pattern, fontsize=10)
        ax.set_yscale("symlog", linthresh=FLOOR_LINES)
        ax.set_ylim(0, max(ax.get_ylim()[1] * 1.5, 1.5 * FLOOR_LINES))  # the floor always on the axis
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: _lines_text(value)))
        ax.set_xticks(sorted(cells["depth"].dropna().unique()))
        ax.set_xlabel("depth")
        ax.set_ylabel("misses (lines)")
    legend = [Line2D([], [], color=backend_color(b), label=backend_label(b)) for b in stack_order(rows["backend"])]
    legend += [Line2D([], [], color="grey", linestyle=styles[w], label=f"width {w:g}") for w in reversed(widths)]
    what = {"modelled": "modelled (raw model)", "calibrated": "model, calibrated at this size",
            "simulated": "simulated (joined only if every depth is)", "measured": "measured (PMU)"}
    legend += [Line2D([], [], color="grey", linestyle="", marker=SOURCE_MARKERS[s], label=what[s],
                      markerfacecolor="none" if s == "modelled" else "white" if s == "calibrated" else "grey")
               for s in LLC_SOURCES if s in set(curves["source"])]
    figure.legend(handles=legend, fontsize=7, loc="outside lower center", ncols=2 if len(patterns) < 3 else 4,
                  frameon=False)
    ll = ""
    if "ll" in rows and rows["ll"].notna().any():
        first = rows.iloc[0]
        ll = " at " + ll_caption(first["ll"], first["ll_bytes"], bool(first["what_if"]))
        if bool(first["what_if"]):
            ll += ": figures of a what-if cache, latency timed on this machine's own"
    figure.suptitle("\n".join(textwrap.wrap(f"{title}{ll} (medians over resolution; linear below {FLOOR_LINES:,} "
                                             "lines, logarithmic above)", int(figure.get_figwidth() * 11))))
    return save(figure, path)


def architectures(records: pd.DataFrame, path: Path) -> Path:
    from fff.analysis import architecture_table

    table = architecture_table(records)
    fast = stack_order(table["backend"])
    # wrapped: with three stacks or more one line ran past the figure's edge
    title = textwrap.fill(f"Architectures: median latency, {backend_label(BASELINE)} against "
                          f"{', '.join(map(backend_label, fast)) or 'the accelerated stacks'}", 70)
    if table.empty:
        return empty_figure(path, title, "No successful zoo-model cells.")
    # one group of bars per model (and setting, where a model was measured in several): the baseline's
    # on top, then each accelerated stack's, labelled with its speed-up
    settings = table.drop_duplicates(["model", "resolution", "precision", "threads"]).groupby("model").size()
    table = table.assign(group=[f"{r.model} ({r.resolution} px, {r.precision}, {r.threads} threads)"
                                if settings[r.model] > 1 else r.model for r in table.itertuples()])
    groups = list(table.groupby("group")["speedup"].max().sort_values().index)
    height = 0.8 / (len(fast) + 1)
    offsets = 0.4 - height / 2 - height * np.arange(len(fast) + 1)  # 0.2, -0.2 for one accelerated stack
    figure = new_figure(9, 0.38 * len(groups) * (len(fast) + 1) / 2 + 1.6)
    axes = figure.add_subplot()
    positions = np.arange(len(groups))
    baseline = table.groupby("group")["baseline_ms"].first().reindex(groups)
    axes.barh(positions + offsets[0], baseline, height=height, color=backend_color(BASELINE), label=BASELINE)
    for offset, backend in zip(offsets[1:], fast):
        rows = table[table["backend"] == backend].set_index("group")
        at = np.array([groups.index(g) for g in rows.index]) + offset
        axes.barh(at, rows["accelerated_ms"], height=height, color=backend_color(backend), label=backend)
        for y, (group, row) in zip(at, rows.iterrows()):
            verdict = "" if row["verdict"] == "ok" else f" ({row['verdict']})"
            # one stack: beside the baseline's bar, the longer one; several: each at the end of its own bar
            where = (row["baseline_ms"], groups.index(group) + offsets[0]) if len(fast) == 1 else (row["accelerated_ms"], y)
            axes.annotate(f"{row['speedup']:.2f}x{verdict}", where, fontsize=7, xytext=(3, -3), textcoords="offset points")
    axes.set_yticks(positions, groups, fontsize=8)
    plain_log_scale(axes, "x")
    axes.set_xlabel("median latency (ms); label: speed-up")
    axes.set_title(title)
    low = min(table["accelerated_ms"].min(), table["baseline_ms"].min())
    axes.set_xlim(low / 2, table["baseline_ms"].max() * 2)  # room for the speed-up labels
    figure.legend(fontsize=8, loc="outside lower center", ncols=min(len(fast) + 1, 4), frameon=False)
    return save(figure, path)


# file stem -> (caption, drawing function); the report shows them in this order
FIGURES = {
    "speedup_per_pattern": ("Speed-up per design pattern", speedup_per_pattern),
    "speedup_depth_width": ("Speed-up against depth and width", speedup_against_depth_and_width),
    "latency_vs_depth": ("Latency against depth, per pattern and backend", latency_against_depth),
    "latency_vs_flops": ("Latency against FLOPs", latency_against_flops),
    "llc_vs_depth": ("LLC misses against depth", llc_misses_against_depth),
    "architectures": ("Architectures", architectures),
    "roofline": ("Roofline: each cell's points, the baseline's joined to each accelerated stack's", roofline_figure),
}


def ll_sizes(cache_records: pd.DataFrame) -> list[tuple[str, float, bool]]:
    """(LL size, bytes, what-if) of each size a machine's records have, the cells' own LL first."""
    if cache_records is None or cache_records.empty or "ll" not in cache_records or cache_records["ll"].isna().all():
        return []
    sizes = cache_records.drop_duplicates("ll")
    if "primary" in sizes:
        sizes = sizes.sort_values("primary", ascending=False, kind="stable")
    return [(r.ll, r.ll_bytes, bool(r.what_if)) for r in sizes.itertuples()]


def ll_slug(ll: str) -> str:
    """A file name's part for an LL size: 'LL=12MiB,16way' -> 'll-12MiB-16way'."""
    return "ll-" + "".join(c if c.isalnum() else "-" for c in ll.split("=", 1)[-1]).strip("-")


def draw_all(records: pd.DataFrame, directory: Path, suffix: str = "",
             cache_records: pd.DataFrame | None = None) -> list[tuple[str, Path]]:
    """Every figure for one machine's records; returns (caption, path) in report order. With
    ``cache_records`` of several LL sizes (a study's cache axis), the LLC figure is drawn once per
    size, each captioned with its size."""
    directory.mkdir(parents=True, exist_ok=True)
    sizes = ll_sizes(cache_records)
    drawn = []
    for stem, (caption, draw) in FIGURES.items():
        if stem == "llc_vs_depth" and len(sizes) > 1:
            for index, (ll, size, what_if) in enumerate(sizes):
                at = cache_records[cache_records["ll"] == ll]
                name = stem if index == 0 else f"{stem}.{ll_slug(ll)}"  # the cells' own LL keeps the usual name
                drawn.append((f"{caption} at {ll_caption(ll, size, what_if)}", draw(at, directory / f"{name}{suffix}.png")))
            continue
        drawn.append((caption, draw(records, directory / f"{stem}{suffix}.png")))
    return drawn
