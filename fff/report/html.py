"""The report page: the headline comparison with the paper, then per machine its metadata,
figures and tables, then every failed cell. Plain HTML with one small stylesheet, readable
offline and from a results directory copied anywhere (figures are linked relatively).
"""

from __future__ import annotations

import html
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from fff.analysis import (PAPER, SPEEDUP_CONVENTION, SUSPECT_FACTOR, StudyResults, accelerated, architecture_table,
                          correlations, gflops_by_pattern, headline, speedup_by_pattern, speedup_trend, suspect_cells)

from fff.backends import BASELINE, backend_label
from fff.measure.contention import NOISY_CI

from fff.report.cache_efficacy import cache_efficacy_html
from fff.report.cache_section import cache_section_html
from fff.report.stacks_section import stacks_section_html

__all__ = ["render_report", "machine_label"]

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; line-height: 1.4; }
table { border-collapse: collapse; margin: 0.6em 0 1.4em; font-size: 0.85em; }
/* a table wider than the page scrolls inside its own box instead of widening the page */
table { display: block; max-width: 100%; overflow-x: auto; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; vertical-align: top; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.4em 0 1.2em; }
.note { color: #555; font-size: 0.9em; } .error { color: #a00; }
"""


def machine_label(fingerprint: str, entry: dict) -> str:
    hosts = ", ".join(entry.get("hosts") or []) or "unknown host"
    config = f" {entry['config_label']}" if entry.get("config_label") else ""  # studies measured differently
    return f"{hosts} [{str(fingerprint)[:8]}]{config}"


def _table(frame: pd.DataFrame, empty: str = "nothing to show") -> str:
    if frame is None or frame.empty:
        return f'<p class="note">{html.escape(empty)}</p>'
    # Headings break at the underscores (speedup_ci_low -> "speedup ci low"), so wide tables fit the page.
    frame = frame.rename(columns=lambda column: str(column).replace("_", " "))
    return frame.to_html(index=False, border=0, na_rep="–", escape=True,
                         float_format=lambda value: f"{value:.4g}")


def _with_footnotes(frame: pd.DataFrame, column: str) -> tuple[pd.DataFrame, str]:
    """A note that repeats down a column is said once under the table; the cells point to it."""
    notes = [note for note in dict.fromkeys(frame[column].dropna()) if note]
    if not notes:
        return frame, ""
    numbers = {note: f"note {i}" for i, note in enumerate(notes, 1)}
    frame = frame.assign(**{column: frame[column].map(lambda note: numbers.get(note, note))})
    return frame, _paragraphs(f"{numbers[note]}: {note}" for note in notes)


def _paragraphs(lines, css: str = "note") -> str:
    return "".join(f'<p class="{css}">{html.escape(str(line))}</p>' for line in lines)


def _headline_side_by_side(results: StudyResults) -> pd.DataFrame:
    table = headline(results.records)
    if table.empty:
        return table
    side = table.groupby("finding", sort=False).first()[["paper", "paper_ratio"]].rename(
        columns={"paper": "paper says", "paper_ratio": "paper as ratio (x)"})
    side.insert(2, "paper as gain: ratio (x)", side["paper as ratio (x)"] + 1)
    # a column per machine; with more than one accelerated stack, per machine and stack
    several = table["backend"].nunique() > 1
    for (fingerprint, stack), rows in table.groupby(["machine", "backend"], sort=False, dropna=False):
        label = machine_label(fingerprint, results.machines.get(fingerprint, {}))
        if several and isinstance(stack, str):
            label += f": {backend_label(stack)}"
        rows = rows.set_index("finding")

        def cell(row):
            if pd.notna(row["ratio"]):
                number = f"{row['ratio']:.2f}x = {row['ratio_ratio_pct']:.0f}% (gain {row['ratio_gain_pct']:.0f}%)"
            elif pd.notna(row.get("ms")):
                number = f"{row['ms']:.2f} ms"
            else:
                number = "–"
            return f"{number}; {row['this_machine']}"
        side[label] = rows.apply(cell, axis=1)
    return side.reset_index()


def _machines_side_by_side(results: StudyResults) -> str:
    """Per-pattern and per-architecture speed-ups with one column per machine."""
    labels = {fp: machine_label(fp, entry) for fp, entry in results.machines.items()}
    parts = []
    for title, table, index, value in (
            ("Geometric-mean speed-up per design pattern (ok cells), machines side by side",
             speedup_by_pattern(results.records), ["backend", "pattern"], "geomean"),
            ("Speed-up per architecture, machines side by side", architecture_table(results.records),
             ["backend", "model"], "speedup")):
        if table.empty:
            continue
        wide = table.assign(machine=table["machine"].map(labels)).pivot_table(
            index=index, columns="machine", values=value, aggfunc="mean")
        parts += [f"<h3>{html.escape(title)}</h3>", _table(wide.reset_index().rename_axis(columns=None))]
    return "\n".join(parts)


def _machine_table(fingerprint: str, entry: dict) -> pd.DataFrame:
    machine, software = entry.get("machine") or {}, entry.get("versions") or {}
    caches = machine.get("caches") or {}
    facts = {
        "fingerprint": fingerprint,
        "hosts": ", ".join(entry.get("hosts") or []),
        "CPU": machine.get("cpu_model"),
        "logical CPUs / available": f"{machine.get('logical_cpus')} / {machine.get('cpus_available')}",
        "caches": ", ".join(f"{name} {c.get('size_bytes', 0) // 1024} KiB" for name, c in caches.items()
                            if c.get("size_bytes")),
        "ISA": ", ".join(flag for flag, present in (machine.get("isa") or {}).items() if present),
        "kernel": machine.get("kernel"),
        "governor": machine.get("governor"),
        "virtualized": machine.get("virtualized"),
        "perf_event_paranoid": machine.get("perf_event_paranoid"),
        "memory": f"{(machine.get('memory_bytes') or 0) / 2**30:.1f} GiB",
        "versions": ", ".join(f"{k} {v}" for k, v in software.items() if v),
        "cells (failed)": f"{entry.get('cells')} ({entry.get('failed')})",
        "results files": ", ".join(entry.get("files") or []),
    }
    return pd.DataFrame({"": list(facts), "value": [str(v) for v in facts.values()]})


def _pivot(trend: pd.DataFrame, axis: str) -> pd.DataFrame:
    if trend.empty:
        return trend
    table = trend.pivot_table(index=["backend", "pattern"], columns=axis, values="median")
    table.columns = [f"{axis} {value:g}" for value in table.columns]
    return table.reset_index()


def _machine_section(fingerprint: str, results: StudyResults, figures: list[tuple[str, Path]], directory: Path) -> str:
    entry = results.machines.get(fingerprint, {})
    records = results.records[results.records["machine"] == fingerprint]
    every_size = (results.cache_records[results.cache_records["machine"] == fingerprint]
                  if not results.cache_records.empty else records)
    drop = ["machine"]
    parts = [f"<h2>Machine {html.escape(machine_label(fingerprint, entry))}</h2>", _table(_machine_table(fingerprint, entry))]
    for caption, path in figures:
        relative = path.relative_to(directory).as_posix()
        parts.append(f"<h3>{html.escape(caption)}</h3><img src=\"{html.escape(relative)}\" alt=\"{html.escape(caption)}\">")
    breakdowns = results.breakdowns[results.breakdowns["machine"] == fingerprint]
    parts += [
        stacks_section_html(records, breakdowns, _table, results.notes),
        "<h3>Speed-up per design pattern, table</h3>",
        '<p class="note">Geometric mean over the pattern\'s ok cells (depths x widths x resolutions), median, '
        'min and max beside it; left_out counts its contended, noisy or unchecked cells. ratio % = 100 x geomean, '
        'gain % = 100 x (geomean - 1).</p>',
        _table(speedup_by_pattern(records).drop(columns=drop), "no successful pattern cells"),
        "<h3>Median speed-up against depth</h3>", _table(_pivot(speedup_trend(records, "depth"), "depth")),
        "<h3>Median speed-up against width</h3>", _table(_pivot(speedup_trend(records, "width"), "width")),
        "<h3>Correlation of latency with FLOPs, with LLC misses and with working set</h3>",
        '<p class="note">Pearson (linear) and Spearman (rank) over the cells of each pattern across depth and '
        'width, n = cells; missing LLC counts are left out, never read as zero. LLC misses are correlated per '
        'source (measured, simulated, calibrated model, raw model: never a mix) and per LL size (ll; a what-if '
        'size is the cache model or simulation of that cache for the same timed run), each over the cells that '
        'have that source.</p>',
        *_correlation_table(every_size),
        cache_efficacy_html(every_size, _table),
        cache_section_html(records, _table, every_size),
        "<h3>Achieved GFLOP/s per pattern</h3>", _table(gflops_by_pattern(records).drop(columns=drop)),
        "<h3>Architectures, table</h3>",
        _table(architecture_table(records).drop(columns=drop), "no successful zoo models"),
    ]
    return "\n".join(parts)


def _correlation_table(records: pd.DataFrame) -> list[str]:
    table, notes = _with_footnotes(correlations(records).drop(columns=["machine"]), "note")
    return [_table(table), notes]


def _flops_note(records: pd.DataFrame) -> str:
    """What the FLOP counts leave out, from the records themselves (fff.models.flops, graph_flops)."""
    recorded = records["uncounted_ops"].dropna() if "uncounted_ops" in records else pd.Series(dtype=object)
    if recorded.empty:
        return "These results do not record which operators their FLOP counts leave out."
    left_out = sorted({op for ops in recorded for op in ops.split()})
    return ("FLOPs count convolutions and matrix products only; every other operator that computes, left out of "
            "the counts here: " + (", ".join(left_out) or "none") + ".")


def render_report(results: StudyResults, figures: dict[str, list[tuple[str, Path]]], directory: Path,
                  sources: list[Path]) -> str:
    """The whole page; ``figures`` maps each machine fingerprint to its (caption, path) list."""
    generated = datetime.now(timezone.utc).isoformat(timespec="seconds")
    parts = [
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>fff study report</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>Does form follow function? fff study report</h1>",
        _paragraphs([f"Generated {generated} from " + ", ".join(str(p) for p in sources) + ".",
                     f"{len(results.records)} measurements (cell x backend), {len(results.errors)} failed cells, "
                     f"{len(results.machines)} machine(s)."]),
        "<h2>The paper's headline findings beside this study's</h2>",
        _paragraphs([SPEEDUP_CONVENTION,
                     f"Speed-up is the {backend_label(BASELINE)} median latency over the accelerated median "
                     "latency, same weights, input and threads, and the same precision unless a stack names its own "
                     "(an int8 stack is compared with the baseline in f32: each record's speedup_precisions); FLOPs "
                     "are 2 x multiply-adds. Machines "
                     "are never pooled: each has its own column and section; nor are accelerated stacks: each is "
                     "compared with the baseline on its own.",
                     _flops_note(results.records),
                     f"The paper's lowest inference time ({PAPER['fastest_model']}, about {PAPER['fastest_model_ms']} ms) "
                     "was measured on its own hardware; compare the ranking more than the milliseconds."]),
        _table(_headline_side_by_side(results), "no successful cells"),
    ]
    if len(results.machines) > 1:
        parts.append(_machines_side_by_side(results))
    if results.notes:
        parts += ["<h2>Notes on the results files</h2>", _paragraphs(results.notes)]
    for fingerprint in results.machines:
        parts.append(_machine_section(fingerprint, results, figures.get(fingerprint, []), directory))
    suspects = suspect_cells(results.records)
    parts.append(f"<h2>Suspect cells ({len(suspects)})</h2>")
    parts.append(_paragraphs([
        f"Speed-ups more than {SUSPECT_FACTOR:g}x above or below their stack's median on their machine. They stay in "
        "every table (means are sensitive to them; medians much less). The usual cause on a small shared machine is "
        "another process competing for the cores while a stack's threads spin at barriers; measure these targets "
        "again on a quiet machine (a new study file naming them) before trusting them."]))
    suspects["machine"] = suspects["machine"].astype(str).str[:8]
    parts.append(_table(suspects.drop(columns=["cell_id"]), "none"))
    every = accelerated(results.records)
    left_out = every[every["verdict"] != "ok"][["machine", "target", "backend", "speedup", "verdict"]].copy()
    parts.append(f"<h2>Cells left out of the averages ({len(left_out)})</h2>")
    parts.append(_paragraphs([
        "A speed-up enters an average (a geometric mean, with the median beside it) only when its verdict is ok. "
        "contended: too few of its rounds got the CPU they asked for (other processes or the hypervisor took it); "
        f"noisy: measured cleanly but its 95% CI is wider than +-{100 * NOISY_CI:g}%; "
        "unchecked: recorded before fff checked "
        "contention. They stay in the per-cell tables and figures."]))
    left_out["machine"] = left_out["machine"].astype(str).str[:8]
    parts.append(_table(left_out, "none: every speed-up is ok"))
    parts.append(f"<h2>Failed cells ({len(results.errors)})</h2>")
    errors = results.errors.drop(columns=["file"]).copy()
    errors["machine"] = errors["machine"].astype(str).str[:8]
    parts.append(_table(errors, "none: every cell finished"))
    parts.append("</body></html>")
    return "\n".join(parts)
