"""Does fff's timed round add anything over a bare loop of onnxruntime's own Python API?

One ONNX export (fff's, made in a child process so that torch never shares this process with the
session), one session (fff's options: THREADS intra-op threads, inter-op 1, sequential, spinning
off), timed three ways in interleaved rounds so that machine drift cancels:

  harness   fff's OnnxRuntimeBackend.round: the base class's Python loop, perf_counter_ns around
            each call, with the round's CPU accounting (RoundMeter) around the loop
  bare      for each iteration: perf_counter_ns; session.run(outputs, feed); perf_counter_ns
  bare sum  the whole loop of session.run timed once, divided by the iterations (no clock inside)

Prints each round's medians and the harness's median against each bare one, the median of the
per-round ratios. Target: harness / bare <= 1.02.
Usage: python bench/bench_onnxruntime_harness.py [--target mobilenet_v2] [--threads 1] [--rounds 7] [--iterations 100]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

import numpy as np

EXPORT = """
import json, sys
from fff.models import build
from fff.backends.ort.backend import OnnxRuntimeBackend
model = build(sys.argv[1])
artifact = OnnxRuntimeBackend.prepare_artifact(model, cache_dir=sys.argv[2])
print(json.dumps({"artifact": artifact, "input_shape": list(model.input_shape)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="mobilenet_v2")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iterations", type=int, default=100)
    args = parser.parse_args()

    from fff.backends.base import fixed_seed_input
    from fff.backends.ort.backend import OnnxRuntimeBackend

    with tempfile.TemporaryDirectory() as cache:
        out = subprocess.run([sys.executable, "-c", EXPORT, args.target, cache], check=True, capture_output=True,
                             text=True).stdout
        built = json.loads(out.strip().splitlines()[-1])
        backend = OnnxRuntimeBackend(target=args.target, build_options={}, artifact=built["artifact"],
                                     input_shape=built["input_shape"], device="CPU", threads=args.threads,
                                     precision="f32")
        backend.prepare([fixed_seed_input(built["input_shape"])], warmup=10)
        assert "torch" not in sys.modules  # the session runs alone in this process
        session, outputs, feed = backend._session, backend._output_names, backend._feed  # noqa: SLF001 - the same session
        clock = time.perf_counter_ns

        def bare(n: int) -> np.ndarray:
            samples = np.empty(n)
            for i in range(n):
                start = clock()
                session.run(outputs, feed)
                samples[i] = clock() - start
            return samples

        def bare_sum(n: int) -> float:
            start = clock()
            for _ in range(n):
                session.run(outputs, feed)
            return (clock() - start) / n

        rows = []
        for r in range(args.rounds):
            harness = float(np.median(backend.round(args.iterations, warmup=2)["samples_ns"]))
            session.run(outputs, feed), session.run(outputs, feed)
            plain = float(np.median(bare(args.iterations)))
            session.run(outputs, feed), session.run(outputs, feed)
            whole = bare_sum(args.iterations)
            rows.append((harness, plain, whole))
            print(f"round {r + 1}: harness {harness / 1e6:.3f} ms, bare {plain / 1e6:.3f} ms, "
                  f"bare sum {whole / 1e6:.3f} ms", flush=True)
        rows = np.array(rows)
        print(f"{args.target}, {args.threads} thread(s), config {backend.config()}")
        print(f"median over rounds: harness {np.median(rows[:, 0]) / 1e6:.3f} ms, bare {np.median(rows[:, 1]) / 1e6:.3f} "
              f"ms, bare sum {np.median(rows[:, 2]) / 1e6:.3f} ms")
        print(f"harness / bare:     {np.median(rows[:, 0] / rows[:, 1]):.4f} (median of per-round ratios; target <= 1.02)")
        print(f"harness / bare sum: {np.median(rows[:, 0] / rows[:, 2]):.4f}")


if __name__ == "__main__":
    main()
