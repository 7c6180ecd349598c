"""The report's cache section: where each LLC figure comes from, the cache model's error against
simulation, and the roofline figure (each cell's baseline point joined to each accelerated stack's,
so acceleration shows as a move toward the roof)."""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import pandas as pd

from fff.explain.cache_analysis import cache_sources
from fff.backends import backend_cache_model_error, stack_precision
from fff.explain.cache_calibration import BENCH_SOURCE
from fff.explain.cache_calibration import FLOOR_LINES, calibration_factors, calibration_status, calibration_validation
from fff.backends import BASELINE, backend_color, backend_label
from fff.report.plotting import empty_figure, new_figure, save, stack_order

__all__ = ["roofline_figure", "intensity_axis", "cache_section_html"]


# Past the ridge point a kernel is compute-bound whatever its intensity: two decades beyond it are
# shown, and points further right (a model that fits the LL moves ~0 bytes: 1e8 FLOPs per byte)
# are drawn in a panel of their own on the right instead of stretching the axis over eight decades.
DECADES_PAST_RIDGE = 2


def intensity_axis(intensity: pd.Series, ridge: float) -> tuple[float, float]:
    """The roofline's x range: the ridge a decade inside on the left, at most DECADES_PAST_RIDGE
    decades past it on the right (points further right are drawn on the edge)."""
    right = min(ridge * 10 ** DECADES_PAST_RIDGE, max(intensity.max() * 3, ridge * 10))
    return min(intensity.min() / 3, ridge / 10), right


def _bytes_text(value: float) -> str:
    if value < 2:
        return "~0 bytes"  # fff.explain.roofline divides by max(traffic, 1 byte)
    for unit, size in (("MB", 1e6), ("kB", 1e3)):
        if value >= size:
            return f"{value / size:.3g} {unit}"
    return f"{value:.0f} bytes"


def _short_source(source: str) -> str:
    """"simulated (valgrind's virtual CPU (AVX2, no AVX-512), kernels capped at SSE41)" -> "simulated
    (SSE41 cap)": the full wording is in the cache section's table; a figure title must fit its width."""
    match = re.fullmatch(r"simulated \(valgrind's virtual CPU \(AVX2, no AVX-512\)(?:, kernels capped at (\w+))?\)",
                         source)
    if match:
        return "simulated" + (f" ({match[1]} cap)" if match[1] else "")
    return source


def _source_counts(rows: pd.DataFrame) -> str:
    counts = rows["intensity_source"].fillna("unknown").map(_short_source).value_counts()
    return ", ".join(f"{source} {n}" for source, n in sorted(counts.items()))


def _arrow(figure, start: tuple, end: tuple) -> None:
    """Baseline -> accelerated stack, so acceleration reads as a move toward the roof; ``start`` and
    ``end`` are (axes, x, y), on the same panel or across the two."""
    from matplotlib.patches import ConnectionPatch

    (axes_a, xa, ya), (axes_b, xb, yb) = start, end
    figure.add_artist(ConnectionPatch((xa, ya), (xb, yb), "data", "data", axesA=axes_a, axesB=axes_b,
                                      arrowstyle="-|>", color="#aaaaaa", lw=0.8, shrinkA=4, shrinkB=4, zorder=1))


def roofline_figure(records: pd.DataFrame, path: Path) -> Path:
    from matplotlib.lines import Line2D

    title = "Roofline: attained GFLOP/s against arithmetic intensity (FLOPs per byte of LL traffic)"
    rows = records[records["arithmetic_intensity"].notna() & records["gflops_per_s"].notna()
                   & records["fma_peak_gflops"].notna()].copy()
    if rows.empty:
        return empty_figure(path, title, "No record has both an arithmetic intensity and a measured roof\n"
                                         "(profiles made before fff measured the machine's roofline).")
    fma, gemm, bandwidth = (rows[c].median() for c in ("fma_peak_gflops", "gemm_peak_gflops", "triad_gbytes_per_s"))
    ridge = fma / bandwidth  # FLOPs per byte where the memory roof meets the compute roof
    measured = rows["arithmetic_intensity"]
    left, right = intensity_axis(measured, ridge)
    rows["resident"] = measured > right
    verdicts = set(rows["roof_verdict"].fillna("unchecked")) if "roof_verdict" in rows else {"unchecked"}
    trusted = verdicts == {"ok"}
    roof_style = {"color": "black" if trusted else "#e69f00", "linestyle": "-" if trusted else (0, (6, 3))}

    figure = new_figure(8.5, 6)
    resident = rows[rows["resident"]]
    if resident.empty:
        axes, side = figure.add_subplot(), None
    else:  # LL-resident points in a panel of their own on the right: the x axis stays readable
        axes, side = figure.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [5, 1], "wspace": 0.02})
    intensity = np.geomspace(left, right, 200)
    roof_label = f"roof: FMA peak {fma:.0f} GFLOP/s, triad {bandwidth:.1f} GB/s (ridge {ridge:.1f} FLOPs/byte)"
    if not trusted:
        why = {"contended": "measured while other processes took CPU", "unchecked": "measured before fff checked that"}
        roof_label += "\nNOT TRUSTED, may be low: " + "; ".join(why.get(v, v) for v in sorted(verdicts - {"ok"}))
    axes.plot(intensity, np.minimum(fma, intensity * bandwidth), label=roof_label, **roof_style)
    # a fact about the machine whatever stacks the records compare; the label says how it was measured
    axes.axhline(gemm, color="gray", linestyle="--", label=f"GEMM {gemm:.0f} GFLOP/s (measured through OpenVINO)")
    backends = stack_order(rows["backend"])
    # where each point is drawn: (panel, x); a resident point's x is its backend's column in the side panel
    where = {index: (side, backends.index(row["backend"])) if row["resident"] else (axes, row["arithmetic_intensity"])
             for index, row in rows.iterrows()}
    for backend in backends:
        for index, row in rows[rows["backend"] == backend].iterrows():
            panel, x = where[index]
            modelled = str(row["intensity_source"] or "").startswith("modelled")
            panel.scatter([x], [row["gflops_per_s"]], s=18, marker="o", zorder=3,
                          facecolors="none" if modelled else backend_color(backend), edgecolors=backend_color(backend), linewidths=1.1)
    for _, cell in rows.groupby("cell_id"):
        first = {b: i for b, i in zip(cell["backend"], cell.index)}
        if BASELINE in first:
            start = first[BASELINE]
            for backend, end in first.items():
                if backend != BASELINE:
                    _arrow(figure, (*where[start], rows.at[start, "gflops_per_s"]),
                           (*where[end], rows.at[end, "gflops_per_s"]))
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlim(left, right)
    axes.set_ylim(min(rows["gflops_per_s"].min(), gemm) / 1.5, max(rows["gflops_per_s"].max(), fma) * 1.5)
    axes.set_xlabel("FLOPs per byte of LL traffic")
    axes.set_ylabel("GFLOP/s (2 x multiply-adds / median latency)")
    handles, _ = axes.get_legend_handles_labels()
    handles += [Line2D([], [], marker="o", linestyle="", color=backend_color(b), label=b) for b in backends]
    if rows["intensity_source"].fillna("").str.startswith("modelled").any():
        handles.append(Line2D([], [], marker="o", linestyle="", markerfacecolor="none", markeredgecolor="gray",
                              label="hollow: modelled LL traffic; filled: measured or simulated"))
    if side is not None:
        traffic = (resident["flops"] / resident["arithmetic_intensity"]).max() if "flops" in resident else np.nan
        below = f"at most {_bytes_text(traffic)}" if np.isfinite(traffic) else "near zero"
        side.axhline(fma, **roof_style)  # past the ridge the roof is the compute roof
        side.axhline(gemm, color="gray", linestyle="--")
        side.set_xlim(-0.6, len(backends) - 0.4)
        side.set_xticks(range(len(backends)), backends, fontsize=7.5, rotation=60 if len(backends) > 2 else 0,
                        ha="right" if len(backends) > 2 else "center")  # three names side by side overlap
        side.tick_params(axis="y", which="both", left=False)
        side.set_title(f"LL-resident\n{len(resident)} point(s)", fontsize=8)
        side.set_xlabel(f"intensity > {right:.0f}", fontsize=7.5)
        handles.append(Line2D([], [], linestyle="", label=f"LL-resident (right panel): LL traffic {below}\n"
                                                          f"per inference, intensity off the scale"))
    figure.legend(handles=handles, fontsize=7.5, loc="outside lower center", ncols=2, frameon=False)
    above = int((rows["gflops_per_s"] > np.minimum(fma, rows["arithmetic_intensity"] * bandwidth)).sum())
    figure.suptitle(f"{title}{'' if trusted else ' (roof NOT TRUSTED)'}\nLL traffic per point: {_source_counts(rows)}; "
                    f"grey arrows: {backend_label(BASELINE)} -> "
                    f"{', '.join(backend_label(b) for b in backends if b != BASELINE) or 'no accelerated stack'}"
                    + (f"\n{above} point(s) above the roof: fewer FLOPs than counted (Winograd), traffic overstated, "
                       "or a low roof" if above else "")
                    # the roofs are f32 FMA and GEMM: int8 (VNNI, AMX) and bf16 kernels are not bound by them
                    + ("\nthe roofs are f32's; " + ", ".join(b for b in backends if stack_precision(b) != "f32")
                       + " (not f32) may run above them"
                       if any(stack_precision(b) != "f32" for b in backends) else ""), fontsize=8.5)
    return save(figure, path)


def _calibration_html(records: pd.DataFrame, table) -> list[str]:
    """The model's calibration by the simulated cells, its validation per pattern, and for each
    backend (and LL size) whose figures could not be calibrated, why: no cell simulated, or cells
    simulated that no factor could be fitted on (the model 0, the simulation under the floor), with
    the counts; the model's floor from the simulated cells it predicts 0 for."""
    factors = calibration_factors(records)
    status = calibration_status(records)
    several = "ll" in records and records["ll"].nunique() > 1
    parts = ["<h3>The cache model against simulation</h3>",
             '<p class="note">Calibration: simulated / modelled LL read misses over the simulated cells (those with '
             f'at least {FLOOR_LINES:,} simulated lines and a non-zero model). A pattern with a simulated cell of a '
             'backend gets the median of its own cells\' ratios (the error depends on the pattern\'s kernels); '
             'a pattern with none, and a zoo model, the median over all the backend\'s cells. Modelled figures '
             'elsewhere in this report are multiplied by their factor and say so ("modelled, calibrated by N simulated '
             'cells (factor x)"); the raw modelled value stays beside it in records.csv (llc_modelled, '
             'llc_calibrated). A failed simulation counts as no cell, never as 0.'
             + (' Each LL size is calibrated by the cells simulated at that size only.' if several else '') + '</p>']
    parts.append(table(status.drop(columns=["machine", "says"]), "no modelled LLC figures"))
    parts.append(_paragraphs_html(status["says"]))
    if not factors.empty:
        parts.append(table(factors.drop(columns=["machine"]).round(3)))
    uncalibrated = status[~status["calibrated"].astype(bool)] if not status.empty else status
    if not uncalibrated.empty:
        lines = "; ".join(f"{html.escape(b)}: {html.escape(backend_cache_model_error(b))}"
                          for b in sorted(uncalibrated["backend"].unique()))
        parts.append(f'<p class="note"><b>Uncalibrated</b> where the table says calibrated False: those modelled LLC '
                     f'figures are the raw model. Its known error where it predicts misses, from '
                     f'{html.escape(BENCH_SOURCE)}: {lines}.</p>')
    parts += _floor_html(records)
    validation = calibration_validation(records).drop(columns=["machine"]).round(1)
    if validation.empty:
        return parts + ['<p class="note">No cell was both simulated and modelled: nothing validates the model '
                        'here.</p>']
    validation, notes = _footnoted(validation, "reading")
    parts += ['<p class="note">Validation per pattern over the simulated cells: the raw model\'s error and the '
              'calibrated model\'s, 100 x (model - simulated) / simulated (below 1,000 simulated lines, against '
              '1,000). The calibrated error is leave-one-out: each cell is predicted by a factor fitted on the '
              'backend\'s other simulated cells, never on itself: by its own pattern\'s other cells where it has '
              'some, else by the pooled median of the other patterns (what a pattern with no simulated cell gets). '
              'A backend with one simulated cell validates nothing. n = simulated cells. reading: what an error '
              'near -100% means where the model is 0.</p>',
              table(validation), notes]
    if not factors.empty and (records.get("intensity_source", pd.Series(dtype=object)) == "modelled").any():
        parts.append('<p class="note">The roofline\'s arithmetic intensity uses the LL traffic its record carries; '
                     'where that is modelled it is the raw model, not calibrated.</p>')
    return parts


def _paragraphs_html(lines) -> str:
    return "".join(f'<p class="note">{html.escape(str(line))}</p>' for line in lines)


def _footnoted(frame: pd.DataFrame, column: str) -> tuple[pd.DataFrame, str]:
    """A long text that repeats down a column said once under the table, the cells pointing to it."""
    texts = [t for t in dict.fromkeys(frame[column].dropna()) if t]
    numbers = {t: f"reading {i}" for i, t in enumerate(texts, 1)}
    frame = frame.assign(**{column: frame[column].map(lambda t: numbers.get(t, t))})
    return frame, _paragraphs_html(f"{numbers[t]}: {t}" for t in texts)


def _floor_html(records: pd.DataFrame) -> list[str]:
    """The model's floor, from the data: what the simulation saw where the model says 0 (the working set
    fits the LL, so the tensor model predicts no miss after the warm-up)."""
    both = records[records["llc_simulated"].notna() & records["llc_modelled"].notna()]
    zero = both[both["llc_modelled"] <= 0]
    if zero.empty:
        return []
    lines = [f"{html.escape(str(backend))}: median {cells['llc_simulated'].median():,.0f} lines "
             f"({cells['llc_simulated'].min():,.0f} to {cells['llc_simulated'].max():,.0f}, {len(cells)} cell(s))"
             for backend, cells in zero.groupby("backend")]
    return [f'<p class="note"><b>The model\'s floor.</b> Where a cell\'s working set fits the LL the tensor model '
            f'says 0 misses; the simulation of those cells saw {"; ".join(lines)}: the code\'s, the runtime\'s and the '
            f'interpreter\'s own lines and first touches, which the model does not count. Modelled figures below '
            f'about that many lines, and any below {FLOOR_LINES:,}, are not comparable with a simulated or measured '
            f'count.</p>']


def cache_section_html(records: pd.DataFrame, table, cache_records: pd.DataFrame | None = None) -> str:
    """HTML for one machine's cache section; ``table`` renders a DataFrame as fff.report.html does.
    ``cache_records``: the rows at every LL size of a study's cache axis (calibration is per size)."""
    every = records if cache_records is None or cache_records.empty else cache_records
    parts = ["<h3>Where the cache figures come from</h3>",
             '<p class="note">LLC misses per inference: measured (a PMU), simulated (valgrind callgrind, on its '
             'virtual CPU without AVX-512) or modelled (fff.explain.cache_model: each operation\'s tensors streamed once '
             'through an LRU of the LL\'s size; no reuse inside an operation, no scratch buffers). The best source '
             'a record has is used; a what-if LL is marked.</p>',
             table(cache_sources(every), "no LLC figures in these results"),
             *_calibration_html(every, table)]
    parts += _roof_parts(records, table)
    return "\n".join(parts)


def _roof_parts(records: pd.DataFrame, table) -> list[str]:
    """How close each backend comes to the roof, with where each point's traffic comes from; under
    a roof measured on a busy machine, says so instead of giving fractions."""
    if "arithmetic_intensity" not in records:
        return []
    placed = records[records["arithmetic_intensity"].notna()]
    if placed.empty:
        return []
    parts = ["<h3>How close each backend comes to the roof</h3>",
             '<p class="note">Each point of the roofline figure: its FLOPs over its LL traffic per inference, the '
             'traffic from the best source the record has (measured by a PMU, simulated by valgrind, or modelled by '
             'fff.explain.cache_model); its attained fraction is its GFLOP/s over min(FMA peak, intensity x triad bandwidth), '
             'the roofs measured on this machine in rounds checked for contention. Points per backend and source:</p>',
             table(placed.assign(traffic=placed["intensity_source"].fillna("unknown"))
                   .groupby(["backend", "traffic"]).size().rename("points").reset_index())]
    verdicts = placed["roof_verdict"].fillna("unchecked") if "roof_verdict" in placed else pd.Series("unchecked",
                                                                                                   index=placed.index)
    untrusted = placed[verdicts != "ok"]
    if not untrusted.empty:
        why = {"contended": "measured while other processes took the CPU time it asked for",
               "unchecked": "measured before fff checked its rounds for contention"}
        found = sorted(set(verdicts[verdicts != "ok"]))
        parts.append(f'<p class="note"><b>The roof of {len(untrusted)} record(s) is not trustworthy</b> '
                     f'({html.escape("; ".join(f"{v}: {why.get(v, v)}" for v in found))}): a roof measured so comes '
                     'out low, so no attained fraction is given against it. A contended roof is not cached: profiling '
                     'again on a quiet machine measures it again.</p>')
    roof = placed[placed["attained_fraction"].notna() & (verdicts == "ok")]
    if not roof.empty:
        summary = (roof.groupby("backend")["attained_fraction"]
                   .agg(cells="count", median="median", max="max",
                        above_roof=lambda f: int((f > 1).sum())).reset_index())
        parts.append(table(summary))
        if (roof["attained_fraction"] > 1).any():
            parts.append('<p class="note">above roof: points whose GFLOP/s exceed the roof at their intensity. The '
                         'roof is a bound, so these are not facts about the kernels: their FLOPs are fewer than '
                         'counted (Winograd), their traffic is overstated (the model has no reuse inside an '
                         'operation), or the roof was measured low. Each such record\'s roofline note says so.'
                         '</p>')
    return parts
