"""What every report figure shares: a canvas with no global state, saving, the figure that says why
it is empty, a log scale people read, and the order stacks are listed in. Both figure modules
(fff.report.figures, fff.report.cache_section) and the breakdown figures draw through these, so
none of them imports another's helpers.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator

from fff.backends import BASELINE

__all__ = ["DPI", "new_figure", "save", "empty_figure", "plain_log_scale", "stack_order"]

DPI = 110


def new_figure(width: float = 8, height: float = 4.5) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save(figure: Figure, path: Path) -> Path:
    figure.savefig(path, format="png")
    return path


def empty_figure(path: Path, title: str, reason: str) -> Path:
    """A figure with nothing to show still gets drawn, saying why, so the report never has a broken image."""
    figure = new_figure(8, 3)
    axes = figure.add_subplot()
    axes.set_axis_off()
    axes.set_title(title)
    axes.text(0.5, 0.5, reason, ha="center", va="center", wrap=True, fontsize=11)
    return save(figure, path)


def plain_log_scale(axes, which: str = "y") -> None:
    """Log scale labelled 0.5, 2, 10 rather than 5x10^-1: latencies are read, not admired."""
    getattr(axes, f"set_{which}scale")("log")
    axis = axes.yaxis if which == "y" else axes.xaxis
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(FuncFormatter(lambda *_: ""))


def stack_order(backends) -> list[str]:
    """The baseline first, then the other stacks by name: every figure and legend lists them so."""
    return sorted(set(backends), key=lambda b: (b != BASELINE, b))
