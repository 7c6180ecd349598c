"""What --breakdown costs, and how much of each backend's time its layers cover.

Part 1 (PyTorch only, in this process, before anything starts OpenVINO here): how much each way
of timing PyTorch's layers slows inference, against the plain model, in alternating order:
  hooks       forward hooks timing module calls (misses operators between modules)
  profiler    torch.profiler alone (operators without their module)
  profiler+ranges   torch.profiler with a record_function range per module call, and the seconds
              its events() take to become a tree
  hooks+mode  forward hooks + a TorchFunctionMode timing each top-level operator (fff's choice)
Part 2: fff-profile's own run of each TARGET with --breakdown (short timed rounds), printing per
backend the extra seconds the breakdown took, coverage, profiling slowdown and what was left
unattributed.
Usage: python bench/bench_breakdown.py [TARGET...] [--threads 2] [--rounds 5]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

DEFAULT_TARGETS = ["mobilenet_v2", "resnet18", "squeezenet1_1", "dw-bottleneck:depth=2,width=1.0",
                   "plain:depth=2,width=1.0"]


def _timed(infer, iterations: int) -> float:
    samples = []
    for _ in range(iterations):
        start = time.perf_counter_ns()
        infer()
        samples.append(time.perf_counter_ns() - start)
    return float(np.median(samples)) / 1e6


def torch_methods(target: str, threads: int, rounds: int) -> dict:
    import torch
    from torch.autograd.profiler import record_function
    from torch.overrides import TorchFunctionMode
    from torch.profiler import ProfilerActivity, profile

    from fff.backends.torch_eager import fixed_seed_input
    from fff.models import build

    torch.set_num_threads(threads)
    model = build(target)
    module, x = model.module.eval(), torch.from_numpy(fixed_seed_input(model.input_shape))

    def infer():
        with torch.inference_mode():
            module(x)

    iterations = int(np.clip(0.5 / max(_timed(infer, 3) / 1e3, 1e-6), 3, 200))
    stack = []

    def install(pre, post):
        return [h for m in module.modules() for h in (m.register_forward_pre_hook(pre), m.register_forward_hook(post))]

    def push(m, a) -> None:  # hooks must return None: a value would replace the module's input/output
        stack.append(time.perf_counter_ns())

    def pop(m, a, o) -> None:
        stack.pop()

    def run_hooks():
        handles = install(push, pop)
        try:
            return _timed(infer, iterations)
        finally:
            [h.remove() for h in handles]

    def run_profiler():
        with profile(activities=[ProfilerActivity.CPU]):
            return _timed(infer, iterations)

    parse_seconds = []

    def run_profiler_ranges():
        def enter(m, a):
            scope = record_function("m")
            scope.__enter__()
            stack.append(scope)

        def leave(m, a, o):
            stack.pop().__exit__(None, None, None)

        handles = install(enter, leave)
        try:
            with profile(activities=[ProfilerActivity.CPU]) as profiler:
                value = _timed(infer, iterations)
            start = time.perf_counter()
            profiler.events()
            parse_seconds.append(time.perf_counter() - start)
            return value
        finally:
            [h.remove() for h in handles]

    timings = []

    class Mode(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            start = time.perf_counter_ns()
            out = func(*args, **(kwargs or {}))
            timings.append(time.perf_counter_ns() - start)
            return out

    def run_hooks_mode():
        handles = install(push, pop)
        try:
            with Mode():
                return _timed(infer, iterations)
        finally:
            [h.remove() for h in handles]
            timings.clear()

    methods = {"plain": lambda: _timed(infer, iterations), "hooks": run_hooks, "profiler": run_profiler,
               "profiler+ranges": run_profiler_ranges, "hooks+mode": run_hooks_mode}
    results = {name: [] for name in methods}
    for round_ in range(rounds):
        for name in (list(methods) if round_ % 2 == 0 else list(methods)[::-1]):
            results[name].append(methods[name]())
    plain = np.median(results["plain"])
    return {"plain_ms": plain, **{name: np.median(values) / plain for name, values in results.items() if name != "plain"},
            "events_s": float(np.median(parse_seconds)), "iterations": iterations}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", default=DEFAULT_TARGETS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-methods", action="store_true")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    if not args.skip_methods:
        print("PyTorch: slowdown of each way to time layers (median over rounds, alternating order)")
        print(f"{'target':<34} {'plain ms':>9} {'hooks':>7} {'profiler':>9} {'prof+ranges':>12} {'events() s':>11} "
              f"{'hooks+mode':>11}")
        for target in args.targets:
            r = torch_methods(target, args.threads, args.rounds)
            print(f"{target:<34} {r['plain_ms']:>9.3f} {r['hooks']:>6.2f}x {r['profiler']:>8.2f}x "
                  f"{r['profiler+ranges']:>11.2f}x {r['events_s']:>11.2f} {r['hooks+mode']:>10.2f}x", flush=True)

    from fff.profiling import ProfileOptions, profile_records

    print("\nfff-profile --breakdown: extra seconds per target, coverage, profiling slowdown")
    print(f"{'target':<34} {'backend':<9} {'ms':>8} {'extra s':>8} {'iters':>6} {'coverage':>9} {'slowdown':>9} "
          f"{'overhead':>9} {'unattributed':>13}")
    for target in args.targets:
        options = ProfileOptions(threads=args.threads, max_seconds=3, min_rounds=3, target_ci=0.02,
                                 keep_samples=False, breakdown=True)
        records = profile_records(target, options)
        extra = 0.0
        for r in records:
            b = r["breakdown"]
            if "error" in b:
                print(f"{target:<34} {r['backend']:<9} error: {b['error']}")
                continue
            extra += b["cost_s"]
            overhead = b["categories"].get("framework overhead")
            total = sum(b["categories"].values())
            unattributed = f"{len(b['unattributed'])} ({sum(u['ms'] for u in b['unattributed']):.3f} ms)"
            print(f"{target:<34} {r['backend']:<9} {r['latency_ms']['median']:>8.3f} {b['cost_s']:>8.2f} "
                  f"{b['iterations']:>6} {100 * b['coverage']:>8.0f}% {b['slowdown']:>8.2f}x "
                  f"{'-' if overhead is None else f'{100 * overhead / total:.0f}%':>9} {unattributed:>13}", flush=True)
        print(f"{target:<34} {'both':<9} {'':>8} {extra:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
