"""Studies: design-pattern sweeps and architecture comparisons with crash-safe results.

    fff.study(patterns=["plain", "dw-bottleneck"], depths=[1, 2, 4], out="results.jsonl")
    fff.study("my_study.toml", out="results.jsonl", resume=True, shard=(2, 8))

The package itself is callable (``fff.study(...)``): it is both the home of the study modules
and the public function, and Python binds ``fff.study`` to whichever was imported last, so
the module must behave as the function too.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

__all__ = ["study", "StudyConfig", "Cell", "load_study", "default_study", "run_study", "SweepSummary"]


def study(config=None, *, out, patterns=None, depths=None, widths=None, resolutions=None, zoo=None,
          zoo_resolutions=None, precisions=None, threads=None, counters=None, simulate_cache=None,
          max_seconds=None, resume: bool = False, retry_errors: bool = False, shard=None, measure=None,
          extend: bool = False):
    """Run a study and return its results as a pandas DataFrame (one row per cell x backend,
    see fff.analysis.load_results).

    ``config``: a StudyConfig, a path to a study TOML file, or None for the built-in default
    study. Keyword options override it; naming only ``patterns`` or only ``zoo`` runs only that
    kind. ``shard``: (K, N) or "K/N". ``extend``: with ``resume``, add cells measured under other
    settings (counters, time cap, ...) to the file on purpose (fff.study.fingerprint)."""
    from fff.analysis import load_results
    from fff.study.config import StudyConfig, default_study, load_study
    from fff.study.sweep import parse_shard, run_study

    if config is None:
        base = default_study()
    elif isinstance(config, StudyConfig):
        base = config
    else:
        base = load_study(Path(config))
    chosen = base.with_overrides(
        patterns=patterns, depths=depths, widths=widths, pattern_resolutions=resolutions, zoo=zoo,
        zoo_resolutions=zoo_resolutions, precisions=precisions, threads=threads, counters=counters,
        simulate_cache=simulate_cache, max_seconds=max_seconds)
    if isinstance(shard, str):
        shard = parse_shard(shard)
    run_study(chosen, out, resume=resume, retry_errors=retry_errors, shard=shard, measure=measure, extend=extend)
    return load_results([out]).records


def __getattr__(name):
    # The submodules' names, without importing torch or pandas for `import fff.study`.
    if name in ("StudyConfig", "Cell", "load_study", "default_study"):
        from fff.study import config

        return getattr(config, name)
    if name in ("run_study", "SweepSummary"):
        from fff.study import sweep

        return getattr(sweep, name)
    raise AttributeError(f"module 'fff.study' has no attribute {name!r}")


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return study(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
