"""The f32 IR -> an int8 IR through NNCF post-training quantization, cached by content.

``prepare_int8_ir(model, f32_ir)`` quantizes the static-shape f32 IR (fff.backends.openvino.conversion)
with ``nncf.quantize`` on a calibration set and stores the result beside the f32 IR's cache entry.
The key hashes the f32 IR's own key (target, shape, structure, weights, fff/torch/openvino versions),
NNCF's version and the calibration, so a second run quantizes nothing afresh; entries carry the
same checksum as f32 IRs (a damaged one is quantized afresh, with a note).

Calibration is **synthetic**: ``CALIBRATION["samples"]`` standard-normal inputs from a fixed seed.
That is sound for timing (the quantized graph, its kernels and its memory traffic do not depend
on the calibration values) but not for accuracy: the quantization ranges are those of noise, not
of images, and every record says ``calibration: synthetic``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import warnings
from pathlib import Path

from fff.backends.openvino.conversion import IR_NAME, IrEntry, entry_damage, store_ir
from fff.errors import CompileError, FffError

__all__ = ["CALIBRATION", "prepare_int8_ir", "int8_key"]

# What the calibration set is: part of the cache key and of every int8 record.
CALIBRATION = {"source": "synthetic", "distribution": "standard normal", "seed": 1, "samples": 16,
               "sound_for": "timing, not accuracy (quantization ranges of noise, not of images)"}


def _nncf_version() -> str:
    import nncf

    return nncf.__version__


def int8_key(f32_entry: Path) -> str:
    """Hex digest over the f32 IR's cache key (its directory name), NNCF's version and the calibration."""
    header = {"f32_ir": f32_entry.name, "nncf": _nncf_version(), "calibration": CALIBRATION}
    return hashlib.sha256(json.dumps(header, sort_keys=True).encode()).hexdigest()[:32]


def _calibration_inputs(input_shape) -> list:
    import numpy as np

    rng = np.random.default_rng(CALIBRATION["seed"])
    return [rng.standard_normal(tuple(input_shape)).astype(np.float32) for _ in range(CALIBRATION["samples"])]


def _quantize(name: str, f32_xml: Path, input_shape):
    import nncf
    import openvino as ov

    ov_model = ov.Core().read_model(str(f32_xml))
    dataset = nncf.Dataset(_calibration_inputs(input_shape))
    # NNCF draws progress bars on stdout/stderr and warns about its own internals: nothing the user
    # acts on, and the builder child's output is not the place for it.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            return nncf.quantize(ov_model, dataset, subset_size=CALIBRATION["samples"])
        except Exception as error:  # NNCF raises its own and plain exceptions for graphs it cannot handle
            raise CompileError(f"{name}: NNCF could not quantize it to int8 ({str(error).splitlines()[0]})") from None


def prepare_int8_ir(model, f32_ir: IrEntry, *, fresh: bool = False) -> IrEntry:
    """``model``'s int8 IR, quantized from ``f32_ir`` on a cache miss (``fresh``: regardless)."""
    entry = f32_ir.xml.parent.parent / f"int8-{int8_key(f32_ir.xml.parent)}"
    damage = entry_damage(entry)
    if damage is None and not fresh:
        return IrEntry(entry / IR_NAME, cached=True)
    notes = ()
    if damage not in (None, "absent"):
        notes = (f"{model.name}: the cached int8 IR in {entry} {damage}; quantized afresh",)
    quantized = _quantize(model.name, f32_ir.xml, model.input_shape)
    meta = {"target": model.name, "input_shape": list(model.input_shape), "quantized_from": str(f32_ir.xml),
            "nncf": _nncf_version(), "calibration": CALIBRATION}
    try:
        store_ir(quantized, entry, meta, replace=damage != "absent")
    except (OSError, RuntimeError) as error:
        raise FffError(f"{model.name}: cannot write the int8 IR into the cache at {entry.parent} ({error}); "
                       "set FFF_CACHE_DIR to a writable directory") from error
    return IrEntry(entry / IR_NAME, cached=False, notes=notes)
