"""The cache model's error against valgrind's simulation, per pattern and LL size.

    python bench/bench_cache_model.py [--targets T ...] [--ll LL=1MiB,16way LL=32MiB,16way]
                                      [--backends openvino,torch]

For each target, LL size and backend: fff.explain.cache_model's modelled LL read misses per inference
next to fff.explain.cache_sim's simulated ones (valgrind callgrind, 1 warm-up + 1 measured inference,
one thread, the same LL geometry), and the physical floor (weight bytes / line). Prints one row
each, with the relative error where the simulation counts more than 1,000 lines (below that,
the absolute difference: the interpreter's and runtime's own lines dominate a model that fits).
A simulation costs tens of CPU seconds (a PyTorch one more: torch is imported under valgrind);
run this on a quiet machine.
"""

from __future__ import annotations

import argparse
import sys
import time

from fff.backends import backend_class
from fff.explain.cache_model import record_fields
from fff.explain.cache_sim import parse_cache_spec, simulate, simulate_callable
from fff.models import build

# 64 px, not 32: at 32 px the last stage's 3x3 convolutions see a 1x1 map, and oneDNN reads only
# the centre tap of their weights (simulated misses fell to 56% of the weight lines).
SMALL = ["plain:depth=1,width=0.5,resolution=64", "dw-bottleneck:depth=1,width=0.5,resolution=64",
         "residual:depth=1,width=0.5,resolution=64", "inception:depth=1,width=0.5,resolution=64"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", nargs="+", default=SMALL)
    parser.add_argument("--ll", nargs="+", default=["LL=1MiB,16way", "LL=32MiB,16way"])
    parser.add_argument("--backends", default="openvino")
    args = parser.parse_args(argv)
    print(f"{'target':<48} {'LL':>6} {'backend':<9} {'weights MB':>10} {'floor lines':>11} {'modelled':>10} "
          f"{'simulated':>10} {'error':>9} {'sim s':>6}")
    for target in args.targets:
        model = build(target)
        classes = {name: backend_class(name) for name in args.backends.split(",")}
        # each stack's own artifact (the IR the timed run compiles) and tracer, as the builder child uses them
        artifacts = {name: cls.prepare_artifact(model) for name, cls in classes.items()}
        tracers = {name: cls.cache_trace for name, cls in classes.items()}
        xml = artifacts.get("openvino", {}).get("xml")
        for spec in args.ll:
            ll = parse_cache_spec(spec)
            fields = record_fields(tracers, artifacts, precision="f32", cache=spec, model=model)
            for backend in classes:
                modelled = fields[backend]
                if "modelled_counters" not in modelled:
                    print(f"{target:<48} {ll.size >> 20:>4}Mi {backend:<9} not modelled: {modelled['cache_model']}")
                    continue
                work = modelled["cache_model"]["working_set"]
                start = time.monotonic()
                if backend == "openvino":
                    sim = simulate(xml, list(model.input_shape), iterations=1, warmup=1, ll=ll, timeout=1200)
                else:
                    sim = simulate_callable("fff.backends.torch_eager:simulated_baseline",
                                            {"target": target, "build_options": {}, "precision": "f32",
                                             "input_shape": list(model.input_shape)},
                                            iterations=1, warmup=1, ll=ll, timeout=1200)
                seconds = time.monotonic() - start
                m = modelled["modelled_counters"]["llc-misses"]["per_inference"]
                s = sim.per_inference("llc-misses")
                error = f"{100 * (m - s) / s:+.1f}%" if s > 1000 else f"{m - s:+.0f} ln"
                floor = work["weight_bytes"] // ll.line if work["weight_bytes"] > ll.size else 0
                print(f"{target:<48} {ll.size >> 20:>4}Mi {backend:<9} {work['weight_bytes'] / 1e6:>10.2f} {floor:>11,} "
                      f"{m:>10,.0f} {s:>10,.0f} {error:>9} {seconds:>6.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
