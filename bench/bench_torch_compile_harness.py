"""What does fff's aot-inductor stack add over a bare loop of the package, what does compiling cost, and
how do its package and the torch-compile stack's torch.compile compare?

1. Compile seconds, first run and cached: the aot-inductor stack's worker (fff.measure.worker, as fff-profile starts
   it) prepares TARGET twice in fresh processes against one empty fff cache directory and one empty
   Inductor cache directory (TORCHINDUCTOR_CACHE_DIR): the first exports and compiles the package and
   stores it, the second loads it. Prints each run's compile seconds, ``cached`` and how.
2. Harness against a bare loop, on the same compiled callable in this process (the package from
   part 1), in interleaved rounds (order alternating) so drift cancels:

     harness   AOTInductorBackend.round: fff's timed loop (perf_counter_ns around each infer(), which
               calls the compiled module under no_grad), CPU accounting around the loop
     bare      ``with torch.no_grad(): for ...: t = perf_counter_ns(); compiled(x); ...``

   Many short rounds (default 41 of 10 iterations) so that load from other jobs, which comes in
   bursts on a shared machine, falls on both sides alike. Prints each one's median latency over all
   its iterations, their ratio and the median of the per-round ratios (target <= 1.02).
3. The two stacks side by side: aot-inductor's package against the torch-compile stack's compiled
   callable (torch.compile, dynamic=False, freezing; prepared by TorchCompileBackend as its worker
   does) on the same model and input in this process, bare loops in interleaved rounds: the latency
   ratio aot-inductor / torch-compile (the same Inductor lowering; they differ in the wrapper, C++
   against Python, and the guards).

Usage: python bench/bench_torch_compile_harness.py [--target mobilenet_v2] [--threads 2] [--rounds 41]
       [--iterations 10] [--skip-compile-cost] [--skip-jit] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

STACK, JIT_STACK = "aot-inductor", "torch-compile"  # the package, and what a user of torch.compile gets


def compile_cost(target: str, threads: int, cache: str) -> list[dict]:
    """Two fresh workers preparing ``target`` against the empty fff cache ``cache`` and one empty Inductor
    cache directory."""
    from fff.backends import backend_class, class_path
    from fff.backends.base import fixed_seed_input
    from fff.builder import Builder
    from fff.measure.worker import Worker

    cls = backend_class(STACK)
    options = {"batch": None, "resolution": None, "input_shape": None}
    builder = Builder()
    try:
        model = builder.prepare(target, options, {STACK: class_path(cls)})
    finally:
        builder.close()
    runs = []
    artifact = {**model.artifacts[STACK], "cache_dir": cache}
    with tempfile.TemporaryDirectory(prefix="fff-inductor-") as inductor:
        for run in ("first", "cached"):
            started = time.perf_counter()
            with Worker(STACK, served=class_path(cls), env={**cls.environment(threads), "TORCHINDUCTOR_CACHE_DIR": inductor},
                        target=target, build_options=options, artifact=artifact,
                        input_shape=list(model.input_shape), device="CPU", threads=threads, precision="f32") as worker:
                config = worker.call("prepare", inputs=[fixed_seed_input(model.input_shape)], warmup=1)["config"]
            runs.append({"run": run, "compile": config["compile"], "worker_s": time.perf_counter() - started,
                         "graphs": config["graphs"], "graph_breaks": config["graph_breaks"],
                         "cpp_kernels": config["inductor"]["cpp_kernels"]})
            print(f"{STACK} compile {run:>6}: {config['compile']['seconds']:.2f} s preparing, cached {config['compile']['cached']}, "
                  f"{config['compile']['how']} (worker {runs[-1]['worker_s']:.1f} s in all, start and build included)",
                  flush=True)
    return runs


def interleaved(sides: dict, x, rounds: int, iterations: int) -> dict:
    """Per side: its samples (ms) from ``rounds`` rounds of ``iterations``, the order alternating each round."""
    samples = {name: [] for name in sides}
    for r in range(rounds):
        for name in (list(sides) if r % 2 == 0 else list(reversed(sides))):
            samples[name].append(sides[name]() / 1e6)
    return samples


def ratios(samples: dict, a: str, b: str) -> tuple[float, float, float, tuple[float, float]]:
    """Pooled medians of a and b, their ratio, the median per-round ratio and its quartiles."""
    import numpy as np

    per_round = np.divide([np.median(s) for s in samples[a]], [np.median(s) for s in samples[b]])
    a_ms, b_ms = (float(np.median(np.concatenate(samples[n]))) for n in (a, b))
    return a_ms, b_ms, float(np.median(per_round)), (float(np.percentile(per_round, 25)), float(np.percentile(per_round, 75)))


def bare_loop(call, x, iterations: int):
    import numpy as np
    import torch

    def run() -> np.ndarray:
        samples = np.empty(iterations)
        clock = time.perf_counter_ns
        with torch.no_grad():
            for _ in range(3):
                call(x)
            for i in range(iterations):
                start = clock()
                call(x)
                samples[i] = clock() - start
        return samples

    return run


def harness_against_bare(target: str, threads: int, rounds: int, iterations: int, cache: str, jit: bool) -> dict:
    import numpy as np
    import torch

    from fff.backends import backend_class
    from fff.backends.base import fixed_seed_input
    from fff.models import build

    options = {"batch": None, "resolution": None, "input_shape": None}
    shape = build(target, **options).input_shape
    backend = backend_class(STACK)(target=target, build_options=options, artifact={"cache_dir": cache},
                                             input_shape=shape, device="CPU", threads=threads, precision="f32")
    prepared = backend.prepare([fixed_seed_input(shape)], warmup=5)
    compiled, x = backend._compiled, backend._input  # the very callable and input the harness times
    sides = {"harness": lambda: np.asarray(backend.round(iterations, warmup=3)["samples_ns"]),
             "bare": bare_loop(compiled, x, iterations)}
    h_ms, b_ms, median, quartiles = ratios(interleaved(sides, x, rounds, iterations), "harness", "bare")
    config = prepared["config"]
    print(f"{target} {STACK}: harness {h_ms:.3f} ms, bare {b_ms:.3f} ms, harness / bare {h_ms / b_ms:.4f}; per-round ratio "
          f"median {median:.4f} (quartiles {quartiles[0]:.4f} .. {quartiles[1]:.4f}, {rounds} rounds x {iterations}); "
          f"threads read back {config['threads']}; {config['compile']['how']}, cached {config['compile']['cached']}, "
          f"prepared in {config['compile']['seconds']:.2f} s", flush=True)
    result = {"harness_ms": h_ms, "bare_ms": b_ms, "median_round_ratio": median, "quartiles": quartiles}
    if jit:
        started = time.perf_counter()
        jit_stack = backend_class(JIT_STACK)(target=target, build_options=options, input_shape=shape, device="CPU",
                                             threads=threads, precision="f32")
        jit_config = jit_stack.prepare([fixed_seed_input(shape)], warmup=5)["config"]
        jit_s = time.perf_counter() - started
        sides = {STACK: bare_loop(compiled, x, iterations),
                 JIT_STACK: bare_loop(jit_stack._compiled, jit_stack._input, iterations)}
        p_ms, j_ms, median, quartiles = ratios(interleaved(sides, x, rounds, iterations), STACK, JIT_STACK)
        print(f"{target}: {STACK} (AOTInductor package) {p_ms:.3f} ms, {JIT_STACK} (torch.compile) {j_ms:.3f} ms "
              f"(compiled in {jit_config['compile']['seconds']:.1f} s, cached {jit_config['compile']['cached']}; "
              f"{jit_s:.1f} s with the build), {STACK} / {JIT_STACK} {p_ms / j_ms:.4f}; per-round ratio median "
              f"{median:.4f} (quartiles {quartiles[0]:.4f} .. {quartiles[1]:.4f})", flush=True)
        result.update(package_ms=p_ms, jit_ms=j_ms, jit_round_ratio=median)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="mobilenet_v2")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--skip-compile-cost", action="store_true")
    parser.add_argument("--skip-jit", action="store_true", help="leave out part 3 (aot-inductor against torch-compile)")
    parser.add_argument("--cache-dir", help="fff's cache for the packages (default: a fresh temporary directory, "
                                            "removed at the end); part 1 needs it empty")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"load average {load:.1f} on {len(os.sched_getaffinity(0))} CPUs", flush=True)
    with tempfile.TemporaryDirectory(prefix="fff-cache-") as temporary:
        cache = args.cache_dir or temporary
        if not args.skip_compile_cost:
            compile_cost(args.target, args.threads, cache)
        # This process becomes the stack's worker: the same variables, set before torch starts its pools.
        from fff.backends import backend_class

        os.environ.update(backend_class(STACK).environment(args.threads))  # torch-compile's are the same
        harness_against_bare(args.target, args.threads, args.rounds, args.iterations, cache, not args.skip_jit)
    print(f"load average {os.getloadavg()[0]:.1f} at the end", file=sys.stderr)


if __name__ == "__main__":
    main()
