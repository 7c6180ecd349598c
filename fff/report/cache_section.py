"""The report's cache section: where each LLC figure comes from, the cache model's error against
simulation, and the roofline figure (each cell's PyTorch and OpenVINO points joined, so
acceleration shows as a move toward the roof)."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

from fff.cache_analysis import cache_sources
from fff.cache_calibration import (FLOOR_LINES, KNOWN_ERROR, KNOWN_ERROR_SOURCE, calibration_factors,
                                   calibration_validation)

__all__ = ["roofline_figure", "cache_section_html"]


def roofline_figure(records: pd.DataFrame, path: Path) -> Path:
    from fff.report.figures import _color, _empty, _new_figure, _save

    title = "Roofline: attained GFLOP/s against arithmetic intensity (FLOPs per byte of LL traffic)"
    rows = records[records["arithmetic_intensity"].notna() & records["gflops_per_s"].notna()
                   & records["fma_peak_gflops"].notna()]
    if rows.empty:
        return _empty(path, title, "No record has both an arithmetic intensity and a measured roof\n"
                                   "(profiles made before fff measured the machine's roofline).")
    figure = _new_figure(8, 5.5)
    axes = figure.add_subplot()
    intensity = np.geomspace(max(rows["arithmetic_intensity"].min() / 4, 1e-3), rows["arithmetic_intensity"].max() * 4, 200)
    fma, gemm, bandwidth = (rows[c].median() for c in ("fma_peak_gflops", "gemm_peak_gflops", "triad_gbytes_per_s"))
    axes.plot(intensity, np.minimum(fma, intensity * bandwidth), color="black",
              label=f"roof: FMA peak {fma:.0f} GFLOP/s, triad {bandwidth:.1f} GB/s")
    axes.axhline(gemm, color="gray", linestyle="--", label=f"OpenVINO GEMM {gemm:.0f} GFLOP/s")
    for _, cell in rows.groupby("cell_id"):
        if len(cell) >= 2:
            axes.plot(cell["arithmetic_intensity"], cell["gflops_per_s"], color="#bbbbbb", linewidth=0.7, zorder=1)
    for backend, points in rows.groupby("backend"):
        axes.scatter(points["arithmetic_intensity"], points["gflops_per_s"], s=14, color=_color(backend),
                     label=backend, zorder=2)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("FLOPs per byte of LL traffic")
    axes.set_ylabel("GFLOP/s (2 x multiply-adds / median latency)")
    axes.legend(fontsize=8)
    sources = ", ".join(sorted(rows["intensity_source"].dropna().unique()))
    axes.set_title(f"{title}\ntraffic: {sources}; points above the FMA roof do fewer FLOPs than counted "
                   "(e.g. Winograd)", fontsize=9)
    return _save(figure, path)


def _calibration_html(records: pd.DataFrame, table) -> list[str]:
    """The model's calibration by the simulated cells, its validation per pattern, and for each
    backend with no simulated cell, that its figures are uncalibrated and what the bench measured."""
    factors = calibration_factors(records)
    parts = ["<h3>The cache model against simulation</h3>",
             '<p class="note">Calibration: simulated / modelled LL read misses over the simulated cells (those with '
             f'at least {FLOOR_LINES:,} simulated lines and a non-zero model). A pattern with a simulated cell of a '
             'backend gets the median of its own cells\' ratios (the error depends on the pattern\'s kernels); '
             'a pattern with none, and a zoo model, the median over all the backend\'s cells. Modelled figures '
             'elsewhere in this report are multiplied by their factor and say so ("modelled, calibrated by N simulated '
             'cells (factor x)"); the raw modelled value stays beside it in records.csv (llc_modelled, '
             'llc_calibrated). A failed simulation counts as no cell, never as 0.</p>',
             table(factors.drop(columns=["machine"]).round(3), "no simulated cell to calibrate by")]
    calibrated = set(factors["backend"])
    modelled = records[records["llc_modelled"].notna()]
    uncalibrated = [b for b in sorted(modelled["backend"].dropna().unique()) if b not in calibrated]
    if uncalibrated:
        lines = "; ".join(f"{html.escape(b)}: {html.escape(KNOWN_ERROR.get(b, 'not measured by the bench'))}"
                          for b in uncalibrated)
        parts.append(f'<p class="note"><b>Uncalibrated:</b> no cell of {html.escape(", ".join(uncalibrated))} was '
                     f'simulated here (set calibrate_every in the study file), so its modelled LLC figures are the raw '
                     f'model. Its known error, from {html.escape(KNOWN_ERROR_SOURCE)}: {lines}.</p>')
    validation = calibration_validation(records).drop(columns=["machine"]).round(1)
    if validation.empty:
        return parts + ['<p class="note">No cell was both simulated and modelled: nothing validates the model '
                        'here.</p>']
    parts += ['<p class="note">Validation per pattern over the simulated cells: the raw model\'s error and the '
              'calibrated model\'s, 100 x (model - simulated) / simulated (below 1,000 simulated lines, against '
              '1,000). The calibrated error is leave-one-out: each cell is predicted by a factor fitted on the '
              'backend\'s other simulated cells, never on itself: by its own pattern\'s other cells where it has '
              'some, else by the pooled median of the other patterns (what a pattern with no simulated cell gets). '
              'A backend with one simulated cell validates nothing. n = simulated cells.</p>',
              table(validation)]
    if not factors.empty and (records["intensity_source"] == "modelled").any():
        parts.append('<p class="note">The roofline\'s arithmetic intensity uses the LL traffic its record carries; '
                     'where that is modelled it is the raw model, not calibrated.</p>')
    return parts


def cache_section_html(records: pd.DataFrame, table) -> str:
    """HTML for one machine's cache section; ``table`` renders a DataFrame as fff.report.html does."""
    parts = ["<h3>Where the cache figures come from</h3>",
             '<p class="note">LLC misses per inference: measured (a PMU), simulated (valgrind callgrind, on its '
             'virtual CPU without AVX-512) or modelled (fff.cache_model: each operation\'s tensors streamed once '
             'through an LRU of the LL\'s size; no reuse inside an operation, no scratch buffers). The best source '
             'a record has is used; a what-if LL is marked.</p>',
             table(cache_sources(records), "no LLC figures in these results"),
             *_calibration_html(records, table)]
    roof = records[records["attained_fraction"].notna()]
    if not roof.empty:
        summary = (roof.groupby("backend")["attained_fraction"]
                   .agg(cells="count", median="median", max="max").reset_index())
        parts += ["<h3>How close each backend comes to the roof</h3>",
                  f'<p class="note">Attained GFLOP/s over min(FMA peak, intensity x triad bandwidth), the roofs '
                  f'measured on this machine ({html.escape(", ".join(sorted(roof["intensity_source"].dropna().unique())))} '
                  'traffic).</p>', table(summary)]
    return "\n".join(parts)
