"""Reports: figures, tables and the paper's headline numbers from one or more results files.

    fff.report(["shard1.jsonl", "shard2.jsonl"], out="report/")  # -> report/index.html

The package itself is callable (``fff.report(...)``): it is both the home of the report
modules and the public function, and Python binds ``fff.report`` to whichever was imported
last, so the module must behave as the function too.
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

__all__ = ["report"]

REPORT_PAGE = "index.html"
RECORDS_CSV = "records.csv"
CACHE_RECORDS_CSV = "cache_records.csv"  # a study with an LL-size axis: one row per cell x backend x LL size


def report(results, out) -> Path:
    """Merge the results files, draw every figure per machine, write ``out/index.html`` and
    ``out/records.csv`` (one row per cell x backend; with an LL-size axis also ``out/cache_records.csv``,
    one row per cell x backend x LL size); returns the page's path."""
    from dataclasses import replace

    from fff.analysis import by_stack, load_results
    from fff.errors import UsageError
    from fff.report.breakdown_figures import draw_breakdown
    from fff.report.figures import draw_all
    from fff.report.html import render_report
    from fff.report.stacks_section import stacks_figures
    from fff.safe_write import write_text  # the layer below both report and cli: report never imports cli

    sources = [Path(p) for p in ([results] if isinstance(results, (str, Path)) else results)]
    if not sources:
        raise UsageError("no results files given")
    raw = load_results(sources)
    if not raw.machines:
        raise UsageError(f"no study results in {', '.join(map(str, sources))} (empty, or not fff-study output)")
    # Every table and figure compares stacks (a backend at a precision), never a backend's f32 and int8 rows
    # pooled; the CSV files keep the registry's backend name beside the stack.
    loaded = replace(raw, records=by_stack(raw.records), cache_records=by_stack(raw.cache_records),
                     breakdowns=by_stack(raw.breakdowns))
    directory = Path(out)
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"--out {directory} exists and is not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    several = len(loaded.machines) > 1
    figures = {}
    for fingerprint in loaded.machines:
        records = loaded.records[loaded.records["machine"] == fingerprint]
        every_size = loaded.cache_records[loaded.cache_records["machine"] == fingerprint]
        figures[fingerprint] = draw_all(records, directory, suffix=f".{str(fingerprint)[:8]}" if several else "",
                                        cache_records=every_size)
        breakdowns = loaded.breakdowns[loaded.breakdowns["machine"] == fingerprint]
        figures[fingerprint] += draw_breakdown(breakdowns, directory, suffix=f".{str(fingerprint)[:8]}" if several else "")
        figures[fingerprint] += stacks_figures(records, breakdowns, directory,
                                               suffix=f".{str(fingerprint)[:8]}" if several else "")
    page = directory / REPORT_PAGE
    write_text(directory / RECORDS_CSV, raw.records.to_csv(index=False))
    written = [page, directory / RECORDS_CSV]
    if loaded.cache_records["ll"].nunique() > 1:  # the further sizes' cache figures, beside the records' own
        write_text(directory / CACHE_RECORDS_CSV, raw.cache_records.to_csv(index=False))
        written.append(directory / CACHE_RECORDS_CSV)
    write_text(page, render_report(loaded, figures, directory, sources))
    umask = os.umask(0)
    os.umask(umask)
    for path in written:  # a report is for sharing: the PNGs' permissions, not 0600
        path.chmod(0o666 & ~umask)
    return page


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return report(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
