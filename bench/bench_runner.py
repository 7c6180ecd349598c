"""How much does fff's runner add over the plainest way to time OpenVINO?

One IR, one config (f32, LATENCY, THREADS threads, 1 stream), measured side by side in
interleaved rounds so machine drift cancels:

  runner         fff.Runner.run (C++ loop, TSC clock, GIL released)
  bare C++       bench/bare_loop.cpp: steady_clock around request.infer(), nothing else
  python API     openvino's Python InferRequest.infer() in a perf_counter_ns loop
  benchmark_app  OpenVINO's own tool, -api sync, same config via -load_config

Prints each one's median latency and the runner's median as a ratio against each.
Targets: runner / bare C++ within 1%; runner / benchmark_app <= 1.
Usage: python bench/bench_runner.py [--model resnet18] [--threads 2] [--rounds 5] [--iterations 100]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import fff

HERE = Path(__file__).resolve().parent


CONVERT = """
import sys, warnings, torch, torchvision, openvino as ov
name, resolution, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
torch.manual_seed(0)
module = getattr(torchvision.models, name)().eval()
shape = (1, 3, resolution, resolution)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # tracing warnings: irrelevant to timing
    model = ov.convert_model(module, example_input=torch.zeros(shape), input=[shape])
ov.save_model(model, path, compress_to_fp16=False)
"""


def convert_zoo_model(name: str, resolution: int, out_dir: Path) -> Path:
    # In a child process: torch's thread pool then never shares this process with the runner.
    path = out_dir / f"{name}.xml"
    subprocess.run([sys.executable, "-c", CONVERT, name, str(resolution), str(path)], check=True)
    return path


def build_bare_loop(build_dir: Path) -> Path:
    import importlib.util

    ov_cmake = Path(importlib.util.find_spec("openvino").submodule_search_locations[0]) / "cmake"
    subprocess.run(["cmake", "-S", str(HERE), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release",
                    f"-DOpenVINO_DIR={ov_cmake}"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", str(build_dir)], check=True, stdout=subprocess.DEVNULL)
    return build_dir / "bare_loop"


def time_runner(runner: fff.Runner, warmup: int, iterations: int) -> float:
    return float(np.median(runner.run(iterations, warmup=warmup).latencies_ns)) / 1e6


def time_bare(exe: Path, xml: Path, threads: int, warmup: int, iterations: int, shape) -> float:
    out = subprocess.run([str(exe), str(xml), str(threads), str(warmup), str(iterations), ",".join(map(str, shape))],
                         check=True, capture_output=True, text=True).stdout
    return float(np.median([int(line) for line in out.split()])) / 1e6


def time_python_api(request, warmup: int, iterations: int) -> float:
    for _ in range(warmup):
        request.infer()
    ns = np.empty(iterations)
    for i in range(iterations):
        start = time.perf_counter_ns()
        request.infer()
        ns[i] = time.perf_counter_ns() - start
    return float(np.median(ns)) / 1e6


def time_benchmark_app(xml: Path, config_file: Path, iterations: int) -> float:
    app = Path(sys.executable).parent / "benchmark_app"
    out = subprocess.run([str(app), "-m", str(xml), "-d", "CPU", "-load_config", str(config_file),
                          "-niter", str(iterations), "-api", "sync"], check=True, capture_output=True, text=True).stdout
    return float(re.search(r"Median:\s+([\d.]+) ms", out).group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet18", help="torchvision model name, or a path to a static-shape .xml")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()

    import openvino as ov

    work = Path(tempfile.mkdtemp(prefix="fff-bench-"))
    xml = Path(args.model) if args.model.endswith(".xml") else convert_zoo_model(args.model, args.resolution, work)
    exe = build_bare_loop(HERE / "out" / "build")
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": str(args.threads), "NUM_STREAMS": "1",
              "INFERENCE_PRECISION_HINT": "f32"}
    config_file = work / "config.json"
    config_file.write_text(json.dumps({"CPU": config}))

    runner = fff.Runner(xml, threads=args.threads)
    shape = runner.inputs[0]["shape"]
    compiled = ov.Core().compile_model(str(xml), "CPU", config)
    request = compiled.create_infer_request()
    request.get_input_tensor().data[:] = np.random.default_rng(0).random(shape, dtype=np.float32)

    medians = {"runner": [], "bare C++": [], "python API": [], "benchmark_app": []}
    for round_ in range(args.rounds):
        medians["runner"].append(time_runner(runner, args.warmup, args.iterations))
        medians["bare C++"].append(time_bare(exe, xml, args.threads, args.warmup, args.iterations, shape))
        medians["python API"].append(time_python_api(request, args.warmup, args.iterations))
        medians["benchmark_app"].append(time_benchmark_app(xml, config_file, args.iterations))
        print(f"round {round_ + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.3f} ms" for k, v in medians.items()),
              file=sys.stderr)

    print(f"model {xml.name}, input {list(shape)}, f32, {args.threads} threads, 1 stream, "
          f"{args.rounds} interleaved rounds x {args.iterations} iterations; clock {fff.backends.openvino.runner.clock_info()['source']}")
    runner_ms = np.median(medians["runner"])
    for name, values in medians.items():
        ms = float(np.median(values))
        ratio = "" if name == "runner" else f"   runner / {name} = {runner_ms / ms:.4f}"
        print(f"{name:>14}: median of round medians {ms:8.3f} ms{ratio}")


if __name__ == "__main__":
    main()
