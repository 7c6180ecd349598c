"""What --precision int8 on ONNX Runtime costs and gains: quantize_static first and cached, parity, int8 vs f32.

    python bench/bench_ort_int8.py [--models resnet18,mobilenet_v2] [--resolution N] [--threads N] [--rounds N]

Each model is prepared as the builder child does (OnnxRuntimeBackend.prepare_artifact with
precision="int8") into a fresh cache directory: the first run exports and quantizes, the second
must find both in the cache. Then the int8 model's SQNR and cosine against PyTorch f32 on the
profiler's fixed-seed input, the same with per-tensor weight scales (why fff quantizes per channel),
and the median latency of the f32 and int8 sessions (fff's session options, spinning off) in
alternating blocks of 20 inferences, so that drift and neighbours' load fall on both alike. Prints
the machine's load average before and after: this is a shared machine.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def _latencies(session, feed, outputs, count):
    samples = []
    for _ in range(count):
        start = time.perf_counter_ns()
        session.run(outputs, feed)
        samples.append(time.perf_counter_ns() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet18,mobilenet_v2")
    parser.add_argument("--resolution", type=int, default=None)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--rounds", type=int, default=10, help="alternating blocks of 20 inferences per session")
    args = parser.parse_args()

    import numpy as np
    import torch

    import fff.backends.ort.quantization as quantization
    from fff.backends.base import fixed_seed_input
    from fff.backends.calibration import calibration_set
    from fff.backends.ort.backend import OnnxRuntimeBackend
    from fff.backends.ort.session import make_session
    from fff.measure.parity import compare, tolerance_for
    from fff.models import build

    print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}; {args.threads} thread(s)")
    print("| model | input | f32 export s | int8 first prepare s (quantize; export cached) | int8 cached prepare s | SQNR dB / cosine "
          "(per-channel) | SQNR dB / cosine (per-tensor) | f32 ms | int8 ms | int8 vs f32 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    tolerance = tolerance_for("int8", "f32")
    for name in args.models.split(","):
        model = build(name, resolution=args.resolution)
        example = fixed_seed_input(model.input_shape)
        with torch.no_grad():
            reference = model.module.eval()(torch.from_numpy(example)).numpy()
        with tempfile.TemporaryDirectory() as cache_dir:
            started = time.perf_counter()
            f32 = OnnxRuntimeBackend.prepare_artifact(model, cache_dir=cache_dir)
            export_s = time.perf_counter() - started
            started = time.perf_counter()
            first = OnnxRuntimeBackend.prepare_artifact(model, cache_dir=cache_dir, precision="int8")
            first_s = time.perf_counter() - started
            started = time.perf_counter()
            again = OnnxRuntimeBackend.prepare_artifact(model, cache_dir=cache_dir, precision="int8")
            cached_s = time.perf_counter() - started
            assert not first["cached"] and again["cached"]

            sessions = {precision: make_session(path, args.threads)[0]
                        for precision, path in (("f32", f32["onnx"]), ("int8", first["onnx"]))}
            feed = {sessions["f32"].get_inputs()[0].name: example}
            outputs = [sessions["f32"].get_outputs()[0].name]
            parity = compare(reference, sessions["int8"].run(outputs, feed)[0], tolerance=tolerance)

            per_tensor = Path(cache_dir) / "per-tensor.onnx"
            settings = dict(quantization.SETTINGS)
            quantization.SETTINGS["per_channel"] = False
            try:
                quantization.quantize_onnx(name, Path(f32["onnx"]), per_tensor, calibration_set(model.input_shape)[1])
            finally:
                quantization.SETTINGS.update(settings)
            tensor_output = make_session(per_tensor, 1)[0].run(outputs, feed)[0]
            tensor_parity = compare(reference, tensor_output, tolerance=tolerance)

            samples = {"f32": [], "int8": []}
            for session in sessions.values():
                _latencies(session, feed, outputs, 5)  # warm-up
            for _ in range(args.rounds):
                for precision, session in sessions.items():
                    samples[precision] += _latencies(session, feed, outputs, 20)
        f32_ms, int8_ms = (float(np.median(samples[p])) / 1e6 for p in ("f32", "int8"))
        shape = "x".join(map(str, model.input_shape))
        print(f"| {name} | {shape} | {export_s:.1f} | {first_s:.1f} | {cached_s:.2f} | "
              f"{parity.sqnr_db:.1f} / {parity.cosine:.4f} | {tensor_parity.sqnr_db:.1f} / {tensor_parity.cosine:.4f} | "
              f"{f32_ms:.2f} | {int8_ms:.2f} | {f32_ms / int8_ms:.2f}x |", flush=True)
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
