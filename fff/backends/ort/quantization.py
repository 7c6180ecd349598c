"""The f32 ONNX export -> an int8 ONNX model through onnxruntime's ``quantize_static``, cached by content.

``prepare_int8_onnx(model, f32_entry)`` quantizes the cached static-shape export (fff.backends.ort.export)
on the calibration set both int8 stacks share (fff.backends.calibration: fixed-seed synthetic inputs,
or the user's images) and stores the result in fff.backends.artifact_cache. The key hashes the f32
export's own key (its entry's name: target, shape, structure, weights, exporter, versions),
onnxruntime's version, the calibration's digest and ``SETTINGS``, so a second run quantizes nothing.

The settings, and why:

- **pre-processing** (``quant_pre_process``: ONNX shape inference and onnxruntime's basic graph
  optimisation): the TorchScript exporter shares equal constants through ``Identity`` nodes (a
  batch-norm bias folded into two convolutions), and ``quantize_static`` quantizes only a bias that
  is an initializer; without it 4 of 9 convolutions of ``plain:depth=1,width=0.5`` stayed f32
  Conv nodes fed by DequantizeLinear (dequantizing their weights on every inference), with it all 9
  run as ``QLinearConv``.
- **QDQ format**: QuantizeLinear/DequantizeLinear pairs around the f32 operators, which onnxruntime's
  graph optimiser fuses into its integer kernels (``QLinearConv``, ``QGemm``,
  ``QLinearGlobalAveragePool``, ... in the profile); onnxruntime's own recommendation for the CPU.
- **uint8 activations, int8 weights** (U8S8): what the x86 VNNI kernels take; ``reduce_range`` off,
  since it only avoids an overflow of CPUs without VNNI and costs a bit of precision.
- **per-channel weights**: one scale per output channel, as NNCF quantizes. Both hold parity, and
  per-channel keeps about 2 dB more of it at no cost in speed (bench/bench_ort_int8.py at 224 px:
  resnet18 35.0 against 32.9 dB, mobilenet_v2 22.5 against 20.4 dB, whose depthwise channels
  differ most in range).
- **MinMax calibration** on the shared set (16 inputs), as NNCF's default range estimator does on noise.

A failure of ``quantize_static`` (an operator it cannot handle) is a one-line CompileError naming
the stack; whether the quantized model computes the same function is the profiler's parity check
(SQNR and cosine, fff.measure.parity), which refuses the stack in the record if it does not.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import tempfile
import warnings
from pathlib import Path

from fff.backends.artifact_cache import entry_damage, entry_path, store_entry
from fff.backends.calibration import calibration_digest, calibration_set
from fff.errors import CompileError, FffError

__all__ = ["SETTINGS", "QUANTIZED_BY", "prepare_int8_onnx", "int8_key", "quantize_onnx"]

SETTINGS = {"format": "QDQ", "activations": "QUInt8", "weights": "QInt8", "per_channel": True,
            "reduce_range": False, "calibrate_method": "MinMax", "pre_process": "quant_pre_process"}
QUANTIZED_BY = "onnxruntime quantize_static (QDQ, uint8 activations, int8 per-channel weights, MinMax)"
INT8_NAME = "model.int8.onnx"
INT8_FILES = (INT8_NAME, "meta.json")


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def int8_key(f32_entry: Path, calibration: dict) -> str:
    """The int8 entry's name: a digest over the f32 export's key, onnxruntime's version, the
    calibration's digest and the quantization settings."""
    header = {"f32_onnx": f32_entry.name, "onnxruntime": _ort_version(),
              "calibration": calibration_digest(calibration), "settings": SETTINGS}
    return "onnx-int8-" + hashlib.sha256(json.dumps(header, sort_keys=True).encode()).hexdigest()[:32]


class _Reader:
    """quantize_static's CalibrationDataReader protocol over fff's calibration inputs."""

    def __init__(self, input_name: str, inputs: list):
        self._feeds = iter([{input_name: array} for array in inputs])

    def get_next(self):
        return next(self._feeds, None)


@contextlib.contextmanager
def _quiet():
    """quantize_static logs advice through the root logger and warns about its own internals:
    nothing the user acts on, and the builder child's output is not the place for it."""
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(logging.NOTSET)


def quantize_onnx(name: str, f32_path: Path, out: Path, inputs: list) -> None:
    """``f32_path`` quantized with ``SETTINGS`` on ``inputs`` into ``out``; a CompileError naming the
    stack when onnxruntime cannot."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with _quiet(), tempfile.TemporaryDirectory(prefix="fff-ort-int8-") as directory:
        try:
            input_name = onnx.load(str(f32_path), load_external_data=False).graph.input[0].name
            prepared = Path(directory) / "prepared.onnx"
            # Static shapes already: the symbolic shape inference (for dynamic dims) has nothing to do.
            quant_pre_process(str(f32_path), str(prepared), skip_symbolic_shape=True)
            quantize_static(str(prepared), str(out), _Reader(input_name, inputs), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            per_channel=SETTINGS["per_channel"], reduce_range=SETTINGS["reduce_range"],
                            calibrate_method=CalibrationMethod.MinMax)
        except Exception as error:  # onnx, the optimiser and the quantizer raise many types
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise CompileError(f"onnxruntime: {name}: quantize_static could not quantize it to int8 ({reason})") from None


def prepare_int8_onnx(model, f32_path: Path, *, cache_dir=None, fresh: bool = False,
                      calibration_dir: str | None = None) -> tuple[Path, bool, tuple[str, ...], dict]:
    """(the int8 model's path, whether it came from the cache, notes, the calibration's record),
    quantized from the f32 export at ``f32_path`` on a cache miss (``fresh``: regardless)."""
    calibration, inputs = calibration_set(model.input_shape, calibration_dir, who=f"onnxruntime: {model.name}")
    entry = entry_path(int8_key(f32_path.parent, calibration), cache_dir)
    damage = entry_damage(entry, INT8_FILES)
    if damage is None and not fresh:
        return entry / INT8_NAME, True, (), calibration
    notes = ()
    if damage not in (None, "absent"):
        notes = (f"{model.name}: the cached int8 ONNX model in {entry} {damage}; quantized afresh",)
    meta = {"target": model.name, "input_shape": list(model.input_shape), "quantized_from": str(f32_path),
            "onnxruntime": _ort_version(), "settings": SETTINGS, "calibration": calibration}
    try:
        store_entry(entry, INT8_FILES, lambda staging: quantize_onnx(model.name, f32_path, staging / INT8_NAME, inputs),
                    meta, replace=damage != "absent")
    except OSError as error:
        raise FffError(f"{model.name}: cannot write the int8 ONNX model into the cache at {entry.parent} ({error}); "
                       "set FFF_CACHE_DIR to a writable directory") from error
    return entry / INT8_NAME, False, notes, calibration
