"""The cache model's error on the onnxruntime stack against valgrind's simulation.

    python bench/bench_onnxruntime_cache_model.py [--targets T ...] [--ll LL=1MiB,16way ...]

For each target and LL size: fff.explain.cache_model's modelled LL read misses per inference of
the graph onnxruntime runs (fff.backends.ort.cache_trace) next to the simulated ones (valgrind
callgrind, the same ONNX file on one thread, 1 warm-up + 1 measured inference, the same LL
geometry), as bench/bench_cache_model.py does for the other stacks. Relative error where the
simulation counts more than 1,000 lines, else the absolute difference.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

SMALL = ["plain:depth=1,width=0.5,resolution=64", "dw-bottleneck:depth=1,width=0.5,resolution=64"]


def main(argv=None) -> int:
    from fff.backends.ort.backend import OnnxRuntimeBackend
    from fff.backends.ort.cache_trace import trace_onnxruntime
    from fff.explain.cache_model import model_caches
    from fff.explain.cache_sim import parse_cache_spec, simulate_callable
    from fff.models import build

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", nargs="+", default=SMALL)
    parser.add_argument("--ll", nargs="+", default=["LL=1MiB,16way"])
    args = parser.parse_args(argv)
    print(f"{'target':<48} {'LL':>6} {'weights MB':>10} {'modelled':>10} {'simulated':>10} {'error':>9} {'sim s':>6}")
    with tempfile.TemporaryDirectory() as cache:
        for target in args.targets:
            model = build(target)
            path = OnnxRuntimeBackend.prepare_artifact(model, cache_dir=cache)["onnx"]
            warm, counted = trace_onnxruntime(path, model.input_shape)
            for spec in args.ll:
                ll = parse_cache_spec(spec)
                modelled = model_caches({"onnxruntime": (warm, counted, 0.0)}, ll=ll)["onnxruntime"]
                start = time.monotonic()
                sim = simulate_callable("fff.backends.ort.backend:simulated_session",
                                        {"path": path, "input_shape": list(model.input_shape)},
                                        iterations=1, warmup=1, ll=ll, timeout=1800)
                seconds = time.monotonic() - start
                m = modelled["modelled_counters"]["llc-misses"]["per_inference"]
                s = sim.per_inference("llc-misses")
                error = f"{100 * (m - s) / s:+.1f}%" if s > 1000 else f"{m - s:+.0f} ln"
                print(f"{target:<48} {ll.size >> 20:>4}Mi {counted.weight_bytes / 1e6:>10.2f} {m:>10,.0f} {s:>10,.0f} "
                      f"{error:>9} {seconds:>6.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
