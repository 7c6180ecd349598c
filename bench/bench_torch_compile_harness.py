"""What does fff's torch-compile stack add over a bare loop of the compiled callable, and what does compiling cost?

1. Compile seconds, first run and cached: the stack's worker (fff.measure.worker, as fff-profile starts
   it) prepares TARGET twice in fresh processes against one empty Inductor cache directory
   (TORCHINDUCTOR_CACHE_DIR): the first compiles everything, the second finds what Inductor cached
   on disk. Prints each run's compile seconds and its FX graph cache outcome.
2. Harness against a bare loop, on the same compiled callable in this process, in interleaved rounds
   (order alternating) so drift cancels:

     harness   TorchCompileBackend.round: fff's timed loop (perf_counter_ns around each infer(), which
               calls the compiled module under no_grad), CPU accounting around the loop
     bare      ``with torch.no_grad(): for ...: t = perf_counter_ns(); compiled(x); ...``

   Many short rounds (default 41 of 10 iterations) so that load from other jobs, which comes in
   bursts on a shared machine, falls on both sides alike. Prints each one's median latency over all
   its iterations, their ratio and the median of the per-round ratios (target <= 1.02).

Usage: python bench/bench_torch_compile_harness.py [--target mobilenet_v2] [--threads 2] [--rounds 41]
       [--iterations 10] [--skip-compile-cost]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time


def compile_cost(target: str, threads: int) -> list[dict]:
    """Two fresh workers compiling ``target`` against one empty Inductor cache directory."""
    from fff.backends import backend_class, class_path
    from fff.backends.base import fixed_seed_input
    from fff.builder import Builder
    from fff.measure.worker import Worker

    cls = backend_class("torch-compile")
    options = {"batch": None, "resolution": None, "input_shape": None}
    builder = Builder()
    try:
        model = builder.prepare(target, options, {"torch-compile": class_path(cls)})
    finally:
        builder.close()
    runs = []
    with tempfile.TemporaryDirectory(prefix="fff-inductor-") as cache:
        for run in ("first", "cached"):
            started = time.perf_counter()
            with Worker("torch-compile", served=class_path(cls), env={**cls.environment(threads), "TORCHINDUCTOR_CACHE_DIR": cache},
                        target=target, build_options=options, artifact=model.artifacts["torch-compile"],
                        input_shape=list(model.input_shape), device="CPU", threads=threads, precision="f32") as worker:
                config = worker.call("prepare", inputs=[fixed_seed_input(model.input_shape)], warmup=1)["config"]
            runs.append({"run": run, "compile_s": config["compile"]["seconds"], "worker_s": time.perf_counter() - started,
                         "fx_graph_cache": config["inductor"]["fx_graph_cache"], "graphs": config["graphs"],
                         "graph_breaks": config["graph_breaks"], "cpp_kernels": config["inductor"]["cpp_kernels"]})
            print(f"compile {run:>6}: {runs[-1]['compile_s']:.1f} s compiling (worker {runs[-1]['worker_s']:.1f} s in all), "
                  f"FX graph cache {runs[-1]['fx_graph_cache']}", flush=True)
    return runs


def harness_against_bare(target: str, threads: int, rounds: int, iterations: int) -> dict:
    import numpy as np
    import torch

    from fff.backends import backend_class
    from fff.backends.base import fixed_seed_input
    from fff.models import build

    options = {"batch": None, "resolution": None, "input_shape": None}
    shape = build(target, **options).input_shape
    backend = backend_class("torch-compile")(target=target, build_options=options, artifact={}, input_shape=shape,
                                             device="CPU", threads=threads, precision="f32")
    prepared = backend.prepare([fixed_seed_input(shape)], warmup=5)
    compiled, x = backend._compiled, backend._input  # the very callable and input the harness times

    def bare() -> np.ndarray:
        samples = np.empty(iterations)
        clock = time.perf_counter_ns
        with torch.no_grad():
            for _ in range(3):
                compiled(x)
            for i in range(iterations):
                start = clock()
                compiled(x)
                samples[i] = clock() - start
        return samples

    def harness() -> np.ndarray:
        return np.asarray(backend.round(iterations, warmup=3)["samples_ns"])

    samples = {"harness": [], "bare": []}
    for r in range(rounds):
        order = (("harness", harness), ("bare", bare)) if r % 2 == 0 else (("bare", bare), ("harness", harness))
        for name, run in order:
            samples[name].append(run() / 1e6)
    per_round = np.divide([np.median(s) for s in samples["harness"]], [np.median(s) for s in samples["bare"]])
    harness_ms, bare_ms = (float(np.median(np.concatenate(samples[n]))) for n in ("harness", "bare"))
    result = {"harness_ms": harness_ms, "bare_ms": bare_ms, "ratio_of_medians": harness_ms / bare_ms,
              "median_round_ratio": float(np.median(per_round)),
              "quartiles": (float(np.percentile(per_round, 25)), float(np.percentile(per_round, 75))),
              "threads": prepared["config"]["threads"], "compile_s": prepared["config"]["compile"]["seconds"]}
    print(f"{target}: harness {harness_ms:.3f} ms, bare {bare_ms:.3f} ms, harness / bare {result['ratio_of_medians']:.4f}; "
          f"per-round ratio median {result['median_round_ratio']:.4f} (quartiles {result['quartiles'][0]:.4f} .. "
          f"{result['quartiles'][1]:.4f}, {rounds} rounds x {iterations}); threads read back {result['threads']}; "
          f"this process compiled in {result['compile_s']:.1f} s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="mobilenet_v2")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--skip-compile-cost", action="store_true")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"load average {load:.1f} on {len(os.sched_getaffinity(0))} CPUs", flush=True)
    if not args.skip_compile_cost:
        compile_cost(args.target, args.threads)
    # This process becomes the stack's worker: the same variables, set before torch starts its pools.
    from fff.backends import backend_class

    os.environ.update(backend_class("torch-compile").environment(args.threads))
    harness_against_bare(args.target, args.threads, args.rounds, args.iterations)
    print(f"load average {os.getloadavg()[0]:.1f} at the end", file=sys.stderr)


if __name__ == "__main__":
    main()
