"""Do the two sides compute the same function? Outputs compared relative to the output's scale,
with a tolerance that follows the lower precision of the two sides.

``max_rel_err`` is the largest absolute difference divided by the reference output's largest
magnitude, not elementwise: logits near zero would make an elementwise ratio explode for
differences that are pure rounding.

Why each tolerance (bench/bench_parity_precision.py, bench/README.md: every design pattern at
depth 1-2, width 0.5, 32x32, and 14 zoo models at 64x64, random weights, the profiler's
fixed-seed input, OpenVINO against PyTorch eager under autocast and against PyTorch f32):

- f32, ``1e-4``: both sides differ only by the order of summation, at most 3e-6 of scale
  (mobilenet_v2); a runtime that silently picked bf16 (OpenVINO does on CPUs with AVX512_BF16 or
  AMX) or f16 lands at 2e-3 and above, so it fails f32 parity.
- f16, ``2e-2``: 11 significant bits; measured up to 1.0e-2 (mobilenet_v3_large), 2x under it.
- bf16, ``1e-1``: 8 significant bits, eight times f16's rounding; measured up to 6.2e-2
  (mobilenet_v2, OpenVINO bf16 against PyTorch f32), 1.6x under it.
- A real disagreement (one weight tensor's output channels rolled by one, as a layout bug in a
  conversion does) gives at least 0.16 (darts) at every precision, 1.6x over the bf16 limit: bf16's
  limit sits at the geometric middle of its noise and the smallest real disagreement. A subtle one
  (one weight tensor scaled by 1.05) gives 0.011 to 0.093: caught at f32, about half the time at
  f16, and not at bf16, whose own rounding reaches as far.
- Several outputs (a tuple, list or dict of tensors, fff.models.outputs): each is compared with
  the same tolerance relative to its own scale (a segmentation map and an auxiliary head differ in
  scale), and the whole model is ok only when every output is; the record lists each output.
- int8, ``sqnr_db >= 10`` and ``cosine >= 0.95``: a quantized output differs from f32 by the
  quantization noise of every layer, so its error is judged as signal to noise (SQNR, dB, over the
  whole output) and direction (cosine similarity), not by the largest element. Measured with
  NNCF's synthetic calibration (fff.backends.openvino.quantization) at 32-64 px: resnet18 32.7 dB /
  0.9997, plain 25.4 dB / 0.9986, dw-bottleneck 21.0 dB / 0.9962, mobilenet_v2 16.3 dB / 0.988 (the
  worst: depthwise layers quantize badly on noise ranges); a wrong int8 graph (the f32 side's
  channels rolled) falls far under both (tests/test_int8.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fff.errors import ParityError, ShapeError, UsageError

__all__ = ["Parity", "Tolerance", "compare", "compare_outputs", "check_parity", "tolerance_for", "non_finite",
           "RTOL"]


@dataclass(frozen=True)
class Tolerance:
    metric: str  # the Parity field that is compared with ``limit``
    limit: float
    reason: str
    min_cosine: float | None = None  # also required of the cosine similarity (int8)

    @property
    def higher_is_better(self) -> bool:
        return self.metric == "sqnr_db"


_TOLERANCES = {
    "f32": Tolerance("max_rel_err", 1e-4,
                     "f32 on both sides differs only by the order of summation: measured up to 3e-6 of the "
                     "output's scale over the patterns and zoo models; bf16 or f16 silently picked by a "
                     "runtime gives 2e-3 and more"),
    "f16": Tolerance("max_rel_err", 2e-2,
                     "f16 keeps 11 significant bits (rounding 4.9e-4 per value): measured up to 1.0e-2 of the "
                     "output's scale over the patterns and zoo models (mobilenet_v3_large), limit 2x over it; "
                     "a layout bug (one weight tensor's channels rolled) gives 0.16 or more"),
    "bf16": Tolerance("max_rel_err", 1e-1,
                      "bf16 keeps 8 significant bits (rounding 3.9e-3 per value): measured up to 6.2e-2 of the "
                      "output's scale over the patterns and zoo models (mobilenet_v2), limit 1.6x over it; a "
                      "layout bug (one weight tensor's channels rolled) gives 0.16 or more, but a 5% error in "
                      "one weight tensor (0.01-0.09) is within bf16's own rounding"),
    "int8": Tolerance("sqnr_db", 10.0,
                      "int8 adds quantization noise in every layer: judged by SQNR over the whole output (at "
                      "least 10 dB) and cosine similarity (at least 0.95); measured with synthetic calibration "
                      "from 16.3 dB / 0.988 (mobilenet_v2) to 32.7 dB / 0.9997 (resnet18)", min_cosine=0.95),
}
# Lowest precision first: the looser tolerance of the two sides governs.
_BY_LOOSENESS = ("int8", "bf16", "f16", "f32")

RTOL = _TOLERANCES["f32"].limit


def tolerance_for(precision: str, baseline_precision: str) -> Tolerance:
    """The tolerance for a side at ``precision`` compared with a baseline at ``baseline_precision``:
    the lower precision of the two decides."""
    for name in (precision, baseline_precision):
        if name not in _TOLERANCES:
            raise UsageError(f"no parity tolerance for precision '{name}' (choose {', '.join(_TOLERANCES)})")
    return _TOLERANCES[min(precision, baseline_precision, key=_BY_LOOSENESS.index)]


@dataclass(frozen=True)
class Parity:
    max_abs_err: float
    max_rel_err: float  # max_abs_err / max |reference|
    ok: bool
    rtol: float = RTOL  # the limit, kept under its old name
    metric: str = "max_rel_err"
    tolerance_reason: str = ""
    sqnr_db: float | None = None  # 10 log10(sum ref^2 / sum (ref - out)^2); inf when identical
    cosine: float | None = None
    min_cosine: float | None = None

    @property
    def tolerance(self) -> float:
        return self.rtol

    def as_record(self) -> dict:
        """The record's ``parity`` field: plain floats (inf and nan as JSON cannot hold them: None)."""
        record = {"max_abs_err": _json_float(self.max_abs_err), "max_rel_err": _json_float(self.max_rel_err),
                  "ok": bool(self.ok), "metric": self.metric, "tolerance": float(self.rtol),
                  "tolerance_reason": self.tolerance_reason}
        if self.metric == "sqnr_db":
            record.update(sqnr_db=None if self.sqnr_db is None else _json_float(self.sqnr_db),
                          cosine=None if self.cosine is None else _json_float(self.cosine),
                          min_cosine=self.min_cosine)
        return record


def _json_float(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def compare(reference: np.ndarray, candidate: np.ndarray, *, rtol: float | None = None,
            tolerance: Tolerance | None = None) -> Parity:
    """Compare any output pair against ``tolerance`` (default: f32's), or a bare ``rtol`` on
    max_rel_err; NaN or infinity anywhere is never ok."""
    if rtol is not None and tolerance is not None:
        raise UsageError("give compare() a tolerance or an rtol, not both")
    if tolerance is None:
        tolerance = _TOLERANCES["f32"] if rtol is None else Tolerance("max_rel_err", float(rtol), "given by the caller")
    if tolerance.metric not in ("max_rel_err", "sqnr_db"):
        raise UsageError(f"parity metric '{tolerance.metric}' is not implemented")
    limit, reason = tolerance.limit, tolerance.reason
    reference = np.asarray(reference, dtype=np.float64)
    candidate = np.asarray(candidate, dtype=np.float64)
    if reference.shape != candidate.shape:
        if reference.size != candidate.size:
            raise ShapeError(f"outputs differ in shape: reference {reference.shape}, candidate {candidate.shape}")
        candidate = candidate.reshape(reference.shape)  # e.g. (1, 1000) against (1000,): same values
    extra = {"min_cosine": tolerance.min_cosine}
    if reference.size == 0:
        return Parity(0.0, 0.0, True, limit, tolerance.metric, reason, **extra)
    if not (np.isfinite(reference).all() and np.isfinite(candidate).all()):
        return Parity(float("inf"), float("inf"), False, limit, tolerance.metric, reason, **extra)
    max_abs = float(np.max(np.abs(reference - candidate)))
    scale = float(np.max(np.abs(reference)))
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    if tolerance.metric == "max_rel_err":
        return Parity(max_abs, max_rel, max_rel <= limit, limit, tolerance.metric, reason, **extra)
    sqnr, cosine = _sqnr_db(reference, candidate), _cosine(reference, candidate)
    ok = sqnr >= limit and (tolerance.min_cosine is None or cosine >= tolerance.min_cosine)
    return Parity(max_abs, max_rel, ok, limit, tolerance.metric, reason, sqnr_db=sqnr, cosine=cosine, **extra)


def _sqnr_db(reference: np.ndarray, candidate: np.ndarray) -> float:
    noise = float(np.sum((reference - candidate) ** 2))
    signal = float(np.sum(reference ** 2))
    if noise == 0:
        return float("inf")
    return 10 * math.log10(signal / noise) if signal > 0 else float("-inf")


def _cosine(reference: np.ndarray, candidate: np.ndarray) -> float:
    norms = float(np.linalg.norm(reference) * np.linalg.norm(candidate))
    if norms == 0:
        return 1.0 if not reference.any() and not candidate.any() else 0.0
    return float(np.sum(reference * candidate)) / norms


def non_finite(output) -> str | None:
    """What is not finite in ``output``, an array or a list of a model's outputs ("2 NaN and 1
    infinite of 1000 values", "output 1: ..." where there are several); None when all of it is."""
    outputs = output if isinstance(output, list) else [output]
    for index, one in enumerate(outputs):
        values = np.asarray(one, dtype=np.float64)
        nan, infinite = int(np.isnan(values).sum()), int(np.isinf(values).sum())
        if nan or infinite:
            parts = [f"{nan} NaN"] * bool(nan) + [f"{infinite} infinite"] * bool(infinite)
            return (f"output {index}: " if len(outputs) > 1 else "") + f"{' and '.join(parts)} of {values.size} values"
    return None


def compare_outputs(reference, candidate, *, tolerance: Tolerance | None = None, names=(),
                    sides: tuple[str, str] = ("reference", "candidate")) -> dict:
    """The record's ``parity`` field for one output (an array) or several (a list of arrays, in
    the model's order, named by ``names``): the worst output's errors, ``ok`` only when every
    output is, and ``outputs`` listing each output's errors when there are several. A differing
    number of outputs (a conversion that dropped one) is a ShapeError naming both ``sides``."""
    references = reference if isinstance(reference, list) else [reference]
    candidates = candidate if isinstance(candidate, list) else [candidate]
    if len(references) != len(candidates):
        raise ShapeError(f"{sides[0]} gave {len(references)} output(s), {sides[1]} {len(candidates)}: "
                         "the two sides do not compute the same function")
    names = list(names) if len(names) == len(references) else [str(i) for i in range(len(references))]
    compared = [compare(r, c, tolerance=tolerance) for r, c in zip(references, candidates)]
    worst = max(compared, key=lambda p: (not p.ok, p.max_rel_err if math.isfinite(p.max_rel_err) else math.inf))
    record = worst.as_record()
    record["ok"] = all(p.ok for p in compared)
    if len(compared) > 1:
        record["max_abs_err"] = _json_float(max(p.max_abs_err for p in compared))
        record["outputs"] = [{"name": name, **{k: v for k, v in p.as_record().items()
                                              if k in ("max_abs_err", "max_rel_err", "sqnr_db", "cosine", "ok")}}
                             for name, p in zip(names, compared)]
    return record


def fixed_seed_input(shape, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(tuple(shape)).astype(np.float32)


def check_parity(model, xml_path, seed: int = 0, *, precision: str = "f32", rtol: float | None = None) -> Parity:
    """Run PyTorch (eval, no_grad, f32) and OpenVINO (CPU, ``precision`` hint) on one fixed-seed
    input; returns the Parity, raises ParityError when the outputs differ by more than
    ``tolerance_for(precision, precision)`` (or ``rtol`` of the output's scale, when given)."""
    import openvino as ov
    import torch

    tolerance = tolerance_for(precision, precision) if rtol is None else None
    if model.module is None:
        raise ShapeError(f"{model.name}: a model file has no PyTorch reference to compare with")
    from fff.models.outputs import named_outputs

    example = fixed_seed_input(model.input_shape, seed)
    with torch.no_grad():
        references = [t.numpy() for _, t in named_outputs(model.module.eval()(torch.from_numpy(example)), model.name)]
    compiled = ov.Core().compile_model(str(xml_path), "CPU", {"INFERENCE_PRECISION_HINT": precision})
    result = compiled(example)
    if len(compiled.outputs) != len(references):
        raise ShapeError(f"{model.name}: PyTorch gave {len(references)} output(s), the IR {len(compiled.outputs)}")
    # several outputs (a tuple or dict): each against its own scale, the worst one reported
    parity = max((compare(r, result[i], rtol=rtol, tolerance=tolerance) for i, r in enumerate(references)),
                 key=lambda p: (not p.ok, p.max_rel_err))
    if not parity.ok:
        raise ParityError(f"{model.name}: OpenVINO ({precision}) differs from PyTorch by {parity.max_abs_err:.3g} "
                          f"absolute, {parity.max_rel_err:.3g} of the output's scale (tolerance {parity.tolerance:g})")
    return parity
