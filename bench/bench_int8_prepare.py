"""What --precision int8 costs before timing: the f32 IR and its NNCF quantization, first run and cached.

    python bench/bench_int8_prepare.py [--models resnet18,mobilenet_v2] [--resolution N]

Each model is prepared twice into a fresh cache directory, as the builder child does
(OpenVINOBackend.prepare_artifact with precision="int8"): the first run converts and quantizes,
the second must find both in the cache. Prints wall seconds of each and the quantized IR's
SQNR and cosine against PyTorch f32 on the profiler's fixed-seed input.
"""

from __future__ import annotations

import argparse
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet18,mobilenet_v2")
    parser.add_argument("--resolution", type=int, default=None)
    args = parser.parse_args()

    import openvino as ov
    import torch

    from fff.backends.base import fixed_seed_input
    from fff.backends.openvino.backend import OpenVINOBackend
    from fff.measure.parity import compare, tolerance_for
    from fff.models import build

    print("| model | input | first prepare s (convert + quantize) | cached prepare s | SQNR dB | cosine |")
    print("|---|---|---|---|---|---|")
    for name in args.models.split(","):
        model = build(name, resolution=args.resolution)
        with tempfile.TemporaryDirectory() as cache_dir:
            started = time.perf_counter()
            first = OpenVINOBackend.prepare_artifact(model, cache_dir=cache_dir, precision="int8")
            first_s = time.perf_counter() - started
            started = time.perf_counter()
            again = OpenVINOBackend.prepare_artifact(model, cache_dir=cache_dir, precision="int8")
            cached_s = time.perf_counter() - started
            assert not first["cached"] and again["cached"]
            example = fixed_seed_input(model.input_shape)
            with torch.no_grad():
                reference = model.module.eval()(torch.from_numpy(example)).numpy()
            compiled = ov.Core().compile_model(first["xml"], "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
            parity = compare(reference, compiled(example)[0], tolerance=tolerance_for("int8", "f32"))
        shape = "x".join(map(str, model.input_shape))
        print(f"| {name} | {shape} | {first_s:.1f} | {cached_s:.2f} | {parity.sqnr_db:.1f} | {parity.cosine:.4f} |",
              flush=True)


if __name__ == "__main__":
    main()
