"""Do the two sides compute the same function? Outputs compared relative to the output's scale.

``max_rel_err`` is the largest absolute difference divided by the reference output's largest
magnitude, not elementwise: logits near zero would make an elementwise ratio explode for
differences that are pure f32 rounding.

The tolerance, ``RTOL = 1e-4`` of the output's scale, sits between the two regimes measured on
this project's CPU (random weights, one fixed-seed input): f32 on both sides differs only by the
order of summation, 1e-7 to 8e-6 of scale over every zoo model and every pattern (worst:
mobilenet_v3_large); OpenVINO's bf16 inference lands at 3e-3 to 1.5e-1. A runtime that silently
picked a lower precision fails parity with an order of magnitude to spare on either side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fff.errors import ParityError, ShapeError

__all__ = ["Parity", "compare", "check_parity", "RTOL"]

RTOL = 1e-4


@dataclass(frozen=True)
class Tolerance:
    metric: str
    limit: float
    reason: str


def tolerance_for(precision: str, baseline_precision: str) -> Tolerance:  # placeholder until the parity branch lands
    return Tolerance("max_rel_err", RTOL, "f32")


@dataclass(frozen=True)
class Parity:
    max_abs_err: float
    max_rel_err: float  # max_abs_err / max |reference|
    ok: bool
    rtol: float = RTOL

    def as_record(self) -> dict:
        return {"max_abs_err": self.max_abs_err, "max_rel_err": self.max_rel_err, "ok": self.ok}


def compare(reference: np.ndarray, candidate: np.ndarray, *, rtol: float = RTOL, tolerance=None) -> Parity:
    rtol = tolerance.limit if tolerance is not None else rtol
    """Compare any output pair; NaN or infinity anywhere is never ok."""
    reference = np.asarray(reference, dtype=np.float64)
    candidate = np.asarray(candidate, dtype=np.float64)
    if reference.shape != candidate.shape:
        if reference.size != candidate.size:
            raise ShapeError(f"outputs differ in shape: reference {reference.shape}, candidate {candidate.shape}")
        candidate = candidate.reshape(reference.shape)  # e.g. (1, 1000) against (1000,): same values
    if reference.size == 0:
        return Parity(0.0, 0.0, True, rtol)
    if not (np.isfinite(reference).all() and np.isfinite(candidate).all()):
        return Parity(float("inf"), float("inf"), False, rtol)
    max_abs = float(np.max(np.abs(reference - candidate)))
    scale = float(np.max(np.abs(reference)))
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    return Parity(max_abs, max_rel, max_rel <= rtol, rtol)


def fixed_seed_input(shape, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(tuple(shape)).astype(np.float32)


def check_parity(model, xml_path, seed: int = 0, *, precision: str = "f32", rtol: float = RTOL) -> Parity:
    """Run PyTorch (eval, no_grad) and OpenVINO (CPU, ``precision`` hint) on one fixed-seed input;
    returns the Parity, raises ParityError when the outputs differ by more than ``rtol``."""
    import openvino as ov
    import torch

    if model.module is None:
        raise ShapeError(f"{model.name}: a model file has no PyTorch reference to compare with")
    example = fixed_seed_input(model.input_shape, seed)
    with torch.no_grad():
        reference = model.module.eval()(torch.from_numpy(example)).numpy()
    compiled = ov.Core().compile_model(str(xml_path), "CPU", {"INFERENCE_PRECISION_HINT": precision})
    candidate = compiled(example)[0]
    parity = compare(reference, candidate, rtol=rtol)
    if not parity.ok:
        raise ParityError(f"{model.name}: OpenVINO ({precision}) differs from PyTorch by {parity.max_abs_err:.3g} "
                          f"absolute, {parity.max_rel_err:.3g} of the output's scale (tolerance {rtol:g})")
    return parity
