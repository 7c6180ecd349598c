"""The f32 IR -> an int8 IR through NNCF post-training quantization, cached by content.

``prepare_int8_ir(model, f32_ir)`` quantizes the static-shape f32 IR (fff.backends.openvino.conversion)
with ``nncf.quantize`` on a calibration set and stores the result beside the f32 IR's cache entry.
The key hashes the f32 IR's own key (target, shape, structure, weights, fff/torch/openvino versions),
NNCF's version and the calibration, so a second run quantizes nothing afresh; entries carry the
same checksum as f32 IRs (a damaged one is quantized afresh, with a note).

Calibration (fff.backends.calibration, shared with ONNX Runtime's int8): **synthetic** by default,
``CALIBRATION["samples"]`` standard-normal inputs from a fixed seed, sound for timing but not for
accuracy, and every record says ``calibration: synthetic``; or a directory of the user's images
(``--calibration DIR``), whose digest goes into the key.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import warnings
from pathlib import Path

from fff.backends.calibration import SYNTHETIC, calibration_digest, calibration_set
from fff.backends.openvino.conversion import IR_NAME, IrEntry, entry_damage, store_ir
from fff.errors import CompileError, FffError

__all__ = ["CALIBRATION", "prepare_int8_ir", "int8_key"]

CALIBRATION = SYNTHETIC  # the default calibration set (its record, as every int8 record says it)


def _nncf_version() -> str:
    import nncf

    return nncf.__version__


def int8_key(f32_entry: Path, calibration: dict = CALIBRATION) -> str:
    """Hex digest over the f32 IR's cache key (its directory name), NNCF's version and the calibration
    (its record: an images record carries its digest)."""
    # Images by their digest (the same files found in another directory are the same calibration);
    # the synthetic record as it is, as it always was (entries already cached keep their key).
    calibration = calibration if calibration["source"] == "synthetic" else calibration_digest(calibration)
    header = {"f32_ir": f32_entry.name, "nncf": _nncf_version(), "calibration": calibration}
    return hashlib.sha256(json.dumps(header, sort_keys=True).encode()).hexdigest()[:32]


def _quantize(name: str, f32_xml: Path, inputs: list):
    import nncf
    import openvino as ov

    ov_model = ov.Core().read_model(str(f32_xml))
    dataset = nncf.Dataset(inputs)
    # NNCF draws progress bars on stdout/stderr and warns about its own internals: nothing the user
    # acts on, and the builder child's output is not the place for it.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            return nncf.quantize(ov_model, dataset, subset_size=len(inputs))
        except Exception as error:  # NNCF raises its own and plain exceptions for graphs it cannot handle
            raise CompileError(f"{name}: NNCF could not quantize it to int8 ({str(error).splitlines()[0]})") from None


def prepare_int8_ir(model, f32_ir: IrEntry, *, fresh: bool = False, calibration_dir: str | None = None
                    ) -> tuple[IrEntry, dict]:
    """(``model``'s int8 IR, quantized from ``f32_ir`` on a cache miss (``fresh``: regardless), the
    calibration's record); ``calibration_dir``: the user's images, else synthetic inputs."""
    calibration, inputs = calibration_set(model.input_shape, calibration_dir, who=f"openvino: {model.name}")
    entry = f32_ir.xml.parent.parent / f"int8-{int8_key(f32_ir.xml.parent, calibration)}"
    damage = entry_damage(entry)
    if damage is None and not fresh:
        return IrEntry(entry / IR_NAME, cached=True), calibration
    notes = ()
    if damage not in (None, "absent"):
        notes = (f"{model.name}: the cached int8 IR in {entry} {damage}; quantized afresh",)
    quantized = _quantize(model.name, f32_ir.xml, inputs)
    meta = {"target": model.name, "input_shape": list(model.input_shape), "quantized_from": str(f32_ir.xml),
            "nncf": _nncf_version(), "calibration": calibration}
    try:
        store_ir(quantized, entry, meta, replace=damage != "absent")
    except (OSError, RuntimeError) as error:
        raise FffError(f"{model.name}: cannot write the int8 IR into the cache at {entry.parent} ({error}); "
                       "set FFF_CACHE_DIR to a writable directory") from error
    return IrEntry(entry / IR_NAME, cached=False, notes=notes), calibration
