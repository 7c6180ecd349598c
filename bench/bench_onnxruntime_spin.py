"""Should fff's onnxruntime sessions spin? onnxruntime's pool spins after work by default.

Two measurements, each with spinning on (onnxruntime's default) and off (fff's choice), THREADS
intra-op threads, fff's session otherwise (fff.backends.ort.session):

1. idle burn: after one inference, the process's CPU time (every thread) over an IDLE_MS sleep,
   the median over windows: what the pool takes from the machine while it has nothing to do,
   that is, from the stack whose interleaved round comes next.
2. the neighbour: fff's interleaving in miniature: an onnxruntime round, then at once a round of
   PyTorch eager in another process (THREADS threads, as fff's baseline worker), alternating; the
   median latency of each side per policy.

Usage: python bench/bench_onnxruntime_spin.py [--target mobilenet_v2] [--resolution 112] [--threads 2] [--rounds 8]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import subprocess
import sys
import tempfile
import time

import numpy as np

EXPORT = """
import json, sys
from fff.models import build
from fff.backends.ort.backend import OnnxRuntimeBackend
model = build(sys.argv[1], resolution=int(sys.argv[3]))
artifact = OnnxRuntimeBackend.prepare_artifact(model, cache_dir=sys.argv[2])
print(json.dumps({"path": artifact["onnx"], "input_shape": list(model.input_shape)}))
"""
IDLE_MS = 100


def _session(path: str, threads: int, spinning: bool, shape):
    from fff.backends.base import fixed_seed_input
    from fff.backends.ort.session import make_session

    session, _ = make_session(path, threads, spinning=spinning)
    feed = {session.get_inputs()[0].name: fixed_seed_input(shape)}
    for _ in range(5):
        session.run(None, feed)
    return session, feed


def idle_burn(path: str, threads: int, spinning: bool, shape, windows: int = 10) -> float:
    """Median CPU milliseconds the process used during an IDLE_MS sleep right after an inference."""
    session, feed = _session(path, threads, spinning, shape)
    burnt = []
    for _ in range(windows):
        session.run(None, feed)
        cpu = time.process_time()
        time.sleep(IDLE_MS / 1e3)
        burnt.append((time.process_time() - cpu) * 1e3)
    return float(np.median(burnt))


def _ort_side(connection, path, threads, spinning, shape, iterations):
    session, feed = _session(path, threads, spinning, shape)
    while connection.recv():
        samples = []
        for _ in range(iterations):
            start = time.perf_counter_ns()
            session.run(None, feed)
            samples.append(time.perf_counter_ns() - start)
        connection.send(float(np.median(samples)))


def _torch_side(connection, target, resolution, threads, iterations):
    import torch

    from fff.backends.base import fixed_seed_input
    from fff.models import build

    torch.set_num_threads(threads)
    model = build(target, resolution=resolution)
    x = torch.from_numpy(fixed_seed_input(model.input_shape))
    with torch.inference_mode():
        for _ in range(3):
            model.module(x)
        while connection.recv():
            samples = []
            for _ in range(iterations):
                start = time.perf_counter_ns()
                model.module(x)
                samples.append(time.perf_counter_ns() - start)
            connection.send(float(np.median(samples)))


def neighbour(path, shape, args, spinning: bool) -> tuple[float, float]:
    """(onnxruntime median ms, PyTorch median ms) over interleaved rounds."""
    context = multiprocessing.get_context("spawn")
    ort_end, ort_child = context.Pipe()
    torch_end, torch_child = context.Pipe()
    ort = context.Process(target=_ort_side, args=(ort_child, path, args.threads, spinning, shape, args.iterations))
    other = context.Process(target=_torch_side, args=(torch_child, args.target, args.resolution, args.threads,
                                                      max(args.iterations // 4, 3)))
    ort.start(), other.start()
    ort_ms, torch_ms = [], []
    try:
        for _ in range(args.rounds):
            ort_end.send(True)
            ort_ms.append(ort_end.recv() / 1e6)
            torch_end.send(True)  # at once, as fff's interleaved rounds follow each other
            torch_ms.append(torch_end.recv() / 1e6)
    finally:
        ort_end.send(False), torch_end.send(False)
        ort.join(), other.join()
    return float(np.median(ort_ms)), float(np.median(torch_ms))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="mobilenet_v2")
    parser.add_argument("--resolution", type=int, default=112)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        out = subprocess.run([sys.executable, "-c", EXPORT, args.target, cache, str(args.resolution)], check=True,
                             capture_output=True, text=True).stdout
        built = json.loads(out.strip().splitlines()[-1])
        path, shape = built["path"], built["input_shape"]
        print(f"{args.target} at {args.resolution}, {args.threads} threads")
        for spinning in (True, False, True, False):  # twice each, alternating: drift shows as disagreement
            label = "spinning on " if spinning else "spinning off"
            burn = idle_burn(path, args.threads, spinning, shape)
            ort_ms, torch_ms = neighbour(path, shape, args, spinning)
            print(f"{label}: idle burn {burn:6.1f} ms CPU per {IDLE_MS} ms idle; interleaved: onnxruntime "
                  f"{ort_ms:.3f} ms, PyTorch eager right after it {torch_ms:.3f} ms", flush=True)


if __name__ == "__main__":
    main()
