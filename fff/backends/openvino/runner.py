"""The accelerated side: a typed wrapper over the native OpenVINO runner.

The timed loop, the clock and the effective configuration come from ``fff._native``;
this module only checks and converts what crosses the boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from os import fspath
from typing import Mapping, Sequence

import numpy as np

from fff.errors import ShapeError, UsageError

__all__ = ["Runner", "RunResult", "clock_info"]

Shape = Sequence[int]


@dataclass(frozen=True)
class RunResult:
    """One call of ``Runner.run``: raw per-iteration samples, warm-up excluded."""

    latencies_ns: np.ndarray
    first_inference_ns: float
    warmup: int
    config: Mapping[str, str] = field(repr=False)
    clock: Mapping[str, object] = field(repr=False)
    # fff.measure.counters.CounterResults over the timed iterations (every thread), when asked for.
    counters: object = field(default=None, repr=False)

    @property
    def latencies_ms(self) -> np.ndarray:
        return self.latencies_ns / 1e6

    @property
    def median_ms(self) -> float:
        return float(np.median(self.latencies_ns)) / 1e6


def clock_info() -> dict:
    """Which clock times the loop ("tsc" or "steady_clock"), why, and its calibration."""
    from fff import _native

    return dict(_native.clock_info())


def _normalise_shapes(input_shape) -> list[list[int]]:
    if input_shape is None:
        return []
    shapes = [input_shape] if input_shape and isinstance(input_shape[0], (int, np.integer)) else input_shape
    try:
        return [[int(d) for d in shape] for shape in shapes]
    except (TypeError, ValueError):
        raise ShapeError(f"input shape must be a sequence of integers (or one per input), got {input_shape!r}") from None


class Runner:
    """An OpenVINO model compiled with an explicit configuration, ready to time.

    ``input_shape`` is one shape, or one per model input in the model's order; every
    dynamic dimension must be resolved by it. ``precision=None`` leaves the choice to the
    device (bf16 on CPUs with AVX512_BF16 or AMX). ``threads=0`` and ``streams=0`` mean the
    device's default. Inputs start filled with fixed-seed random values.
    """

    def __init__(
        self,
        model_path,
        input_shape: Shape | Sequence[Shape] | None = None,
        *,
        device: str = "CPU",
        precision: str | None = "f32",
        threads: int = 0,
        streams: int = 1,
    ):
        from fff import _native

        config = _native.RunnerConfig()
        config.device = device
        config.precision = precision or ""
        config.threads = _whole_number("threads", threads)
        config.streams = _whole_number("streams", streams)
        self.model_path = fspath(model_path)
        self.device = device
        self._native = _native.Runner(self.model_path, _normalise_shapes(input_shape), config)
        self.inputs: list[dict] = list(self._native.inputs)
        self.outputs: list[dict] = list(self._native.outputs)

    def set_input(self, index: int, array) -> None:
        """Copy ``array`` into input ``index``; its shape must match exactly."""
        if not 0 <= index < len(self.inputs):
            raise UsageError(f"input index {index} out of range (model has {len(self.inputs)} input(s))")
        array = np.asarray(array)
        expected = np.dtype(_NUMPY_TYPES.get(self.inputs[index]["element_type"], array.dtype))
        if array.dtype != expected:
            if not np.can_cast(array.dtype, expected, casting="same_kind"):
                raise ShapeError(f"input {index} expects {expected}, got {array.dtype}")
            array = array.astype(expected)
        self._native.set_input(index, np.ascontiguousarray(array))

    def set_inputs(self, *arrays) -> None:
        if len(arrays) != len(self.inputs):
            raise ShapeError(f"model has {len(self.inputs)} input(s), {len(arrays)} array(s) given")
        for index, array in enumerate(arrays):
            self.set_input(index, array)

    def run(self, iterations: int, warmup: int = 10, *, counters: Sequence[str] = (),
            per_iteration_counters: bool = False, callgrind: bool = False) -> RunResult:
        """``warmup`` untimed inferences, then ``iterations`` timed ones (GIL released).

        ``counters``: perf counter names counted over every thread around the timed loop (see
        fff.measure.counters); ``per_iteration_counters`` adds one reading per iteration, read between
        iterations outside the timed bracket. ``callgrind``: under valgrind's callgrind, simulate
        caches from the warm-up on and keep costs of the timed loop only (see fff.explain.cache_sim).
        """
        names = list(counters)
        if names:
            from fff.measure.counters import validate_names

            validate_names(names)
        raw = self._native.run(_whole_number("warmup", warmup), _whole_number("iterations", iterations),
                               names, bool(per_iteration_counters), bool(callgrind))
        counted = None
        if raw["counters"] is not None:
            from fff.measure.counters import counter_results

            counted = counter_results(raw["counters"], inferences=iterations)
        return RunResult(
            latencies_ns=raw["latencies_ns"],
            first_inference_ns=raw["first_inference_ns"],
            warmup=warmup,
            config=self.effective_config,
            clock=clock_info(),
            counters=counted,
        )

    def profile_layers(self, iterations: int = 5, warmup: int = 2) -> dict:
        """Per-node profiles from a second compilation with ``ov::enable_profiling`` (this runner's
        timed model is untouched): ``iterations`` lists of node dicts (node_name, node_type,
        exec_type, status, real_time_ns, cpu_time_ns), their end-to-end ``latencies_ns``, and
        ``original_names``: runtime node -> the model nodes fused into it (comma-separated)."""
        return dict(self._native.profile_layers(_whole_number("warmup", warmup),
                                                _whole_number("iterations", iterations)))

    def output(self, index: int = 0) -> np.ndarray:
        """Output ``index`` of the last inference, copied out."""
        return self._native.output(index)

    @property
    def effective_config(self) -> dict[str, str]:
        """Every property the compiled model reports: what runs, not what was asked."""
        return dict(self._native.effective_config())


_NUMPY_TYPES = {"f32": "float32", "f64": "float64", "f16": "float16", "i64": "int64",
                "i32": "int32", "i8": "int8", "u8": "uint8", "boolean": "bool"}


def _whole_number(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise UsageError(f"{name} must be a whole number, got {value!r}")
    return int(value)
