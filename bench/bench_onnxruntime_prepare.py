"""What does the onnxruntime stack's preparation cost, first time and cached?

For each target, in this process (as the builder child does it): build the model, then
OnnxRuntimeBackend.prepare_artifact into an empty cache (the export: torch.onnx.export's
TorchScript exporter, then the checksum), then again (a cache hit: the key over the weights and
the checksum), and the session's creation in fff's configuration (graph optimisation, NCHWc).

Usage: python bench/bench_onnxruntime_prepare.py [TARGET ...]  (default: mobilenet_v2 resnet18 darts)
"""

from __future__ import annotations

import os
import sys
import tempfile
import time


def main() -> None:
    from fff.backends.ort.backend import OnnxRuntimeBackend
    from fff.backends.ort.session import make_session
    from fff.models import build

    targets = sys.argv[1:] or ["mobilenet_v2", "resnet18", "darts"]
    print(f"{'target':<16} {'export s':>9} {'cached s':>9} {'session s':>10} {'onnx MB':>8}")
    for target in targets:
        model = build(target)
        with tempfile.TemporaryDirectory() as cache:
            start = time.perf_counter()
            first = OnnxRuntimeBackend.prepare_artifact(model, cache_dir=cache)
            exported = time.perf_counter() - start
            start = time.perf_counter()
            again = OnnxRuntimeBackend.prepare_artifact(model, cache_dir=cache)
            cached = time.perf_counter() - start
            assert not first["cached"] and again["cached"]
            start = time.perf_counter()
            make_session(first["onnx"], 1)
            session = time.perf_counter() - start
            size = os.path.getsize(first["onnx"]) / 1e6
        print(f"{target:<16} {exported:>9.2f} {cached:>9.2f} {session:>10.2f} {size:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
