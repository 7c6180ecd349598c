"""What an int8 stack calibrates its quantization ranges on: fixed-seed noise, or a user's images.

Both int8 stacks (OpenVINO through NNCF, fff.backends.openvino.quantization; ONNX Runtime through
quantize_static, fff.backends.ort.quantization) take their calibration inputs from here, so the two
quantize on the same inputs and their records describe them the same way.

- **synthetic** (the default): ``SYNTHETIC["samples"]`` standard-normal inputs from a fixed seed.
  Sound for timing (the quantized graph, its kernels and its memory traffic do not depend on the
  calibration values) but not for accuracy: the ranges are those of noise, not of images.
- **images** (``--calibration DIR``): the first ``SYNTHETIC["samples"]`` image files of DIR in sorted
  name order (reproducible), each read with PIL as RGB, resized (bilinear) so that it covers the
  model's input H x W, centre-cropped to it and normalised with ImageNet's mean and standard
  deviation; one image fills every item of a batch. The record is ``{"source": "images", "dir",
  "count", "digest"}``, the digest over each file's name and bytes and the preprocessing, and it goes
  into both stacks' cache keys.

A study records ``images_digest`` of the directory among its settings (fff.study.fingerprint), so a
study resumed after the images changed is refused rather than keeping int8 cells of the old ones.

``check_calibration_dir`` is the door's check (fff.profiling, fff-study): the directory exists, holds
images, and every one that would be used can be decoded, before anything is built or measured.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from fff.errors import UsageError

__all__ = ["SYNTHETIC", "IMAGE_SUFFIXES", "check_calibration_dir", "calibration_set", "calibration_digest",
           "images_digest"]

# What the synthetic calibration set is: part of the cache keys and of every int8 record.
SYNTHETIC = {"source": "synthetic", "distribution": "standard normal", "seed": 1, "samples": 16,
             "sound_for": "timing, not accuracy (quantization ranges of noise, not of images)"}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
_MEAN, _STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # ImageNet's, as torchvision's weights expect
_PREPROCESSING = "RGB, bilinear resize to cover H x W, centre crop, ImageNet mean/std"


def calibration_digest(record: dict) -> str:
    """Hex digest of a calibration record (an images record carries its own)."""
    return record.get("digest") or hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:32]


def _image_files(directory: str) -> list[Path]:
    path = Path(directory).expanduser()
    if not path.exists():
        raise UsageError(f"--calibration {directory}: no such directory")
    if not path.is_dir():
        raise UsageError(f"--calibration {directory}: not a directory")
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UsageError(f"--calibration {directory}: no images in it (looked for {', '.join(IMAGE_SUFFIXES)})")
    return files[:SYNTHETIC["samples"]]


def _read_rgb(path: Path, directory: str):
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.convert("RGB")  # decodes the whole file: a truncated one fails here
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise UsageError(f"--calibration {directory}: cannot read the image {path.name} ({error})") from None


def check_calibration_dir(directory: str) -> None:
    """A one-line UsageError unless ``directory`` holds images that can all be decoded."""
    for path in _image_files(directory):
        _read_rgb(path, directory)


def _digest_files(digest, files: list[Path]):
    """``digest`` updated with each file's name, size and bytes, in order."""
    for path in files:
        digest.update(f"{path.name}:{path.stat().st_size};".encode())
        digest.update(path.read_bytes())
    return digest


def images_digest(directory: str) -> str:
    """Hex digest of the image files calibration would use (names and bytes), whatever the model's
    input: what a study records, so that a study resumed on other images is refused, not mixed."""
    return _digest_files(hashlib.sha256(), _image_files(directory)).hexdigest()[:16]


def _image_array(image, height: int, width: int):
    import numpy as np
    from PIL import Image

    scale = max(height / image.height, width / image.width)
    resized = image.resize((max(width, round(image.width * scale)), max(height, round(image.height * scale))),
                           Image.Resampling.BILINEAR)
    left, top = (resized.width - width) // 2, (resized.height - height) // 2
    pixels = np.asarray(resized.crop((left, top, left + width, top + height)), dtype=np.float32) / 255.0
    return ((pixels - np.array(_MEAN, dtype=np.float32)) / np.array(_STD, dtype=np.float32)).transpose(2, 0, 1)


def calibration_set(input_shape, directory: str | None = None, *, who: str = "") -> tuple[dict, list]:
    """(the record that describes it, the float32 inputs of ``input_shape``) to calibrate on:
    synthetic without ``directory``, else its images (``who`` names the model in an error)."""
    import numpy as np

    shape = tuple(int(d) for d in input_shape)
    if directory is None:
        rng = np.random.default_rng(SYNTHETIC["seed"])
        return dict(SYNTHETIC), [rng.standard_normal(shape).astype(np.float32) for _ in range(SYNTHETIC["samples"])]
    if len(shape) != 4 or shape[1] != 3:
        raise UsageError(f"{who or 'the model'}: --calibration images need an input of [N, 3, H, W] images; "
                         f"its input is {list(shape)}")
    files = _image_files(directory)
    digest = _digest_files(hashlib.sha256(f"{_PREPROCESSING} {shape[2]}x{shape[3]};".encode()), files)
    inputs = []
    for path in files:
        one = _image_array(_read_rgb(path, directory), shape[2], shape[3])
        inputs.append(np.ascontiguousarray(np.broadcast_to(one, shape), dtype=np.float32))
    record = {"source": "images", "dir": str(Path(directory).expanduser().resolve()), "count": len(files),
              "digest": digest.hexdigest()[:32], "preprocessing": _PREPROCESSING}
    return record, inputs
