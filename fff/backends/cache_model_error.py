"""What bench/bench_cache_model.py measured of the cache model's error on each built-in stack.

The report quotes it for a stack none of whose cells a study simulated (so nothing calibrated the
model there). It is knowledge about the stacks, so it lives with them, not in the report or the
calibration; a stack the bench has not measured is said to have no figure, never given another's.
"""

from __future__ import annotations

__all__ = ["SOURCE", "NO_FIGURE", "cache_model_error"]

SOURCE = ("bench/bench_cache_model.py against valgrind (bench/README.md; depth 1, width 0.5, 64 px, "
          "1 MiB LL): the model errs low")

# (modelled - simulated) / simulated, depth 1, width 0.5, 64 px, 1 MiB LL, valgrind 3.19, 2026-11-25
_MEASURED = {
    "openvino": "-5% to -20% per pattern (plain -5.4%, residual -6.0%, dw-bottleneck -9.2%, inception -19.9%)",
    "torch": "-19% to -46% per pattern (plain -18.6%, dw-bottleneck -46.0%)",
}
NO_FIGURE = "no bench figure for this stack"


def cache_model_error(backend: str) -> str:
    """The bench's figure for ``backend``, or NO_FIGURE."""
    return _MEASURED.get(backend, NO_FIGURE)
