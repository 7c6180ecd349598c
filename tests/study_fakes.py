"""Fake profilers with known answers for the study, analysis and report tests.

Loaded by path (once by conftest.py as ``study_fakes``, and by the subprocesses the tests start),
so it works under pytest's importlib mode and outside pytest. Holds no tests itself.

The synthetic world: a pattern cell "NAME:depth=D,width=W" has FLOPs 1e6 * D * W, PyTorch
latency D * W ms (1 GFLOP/s exactly), and speed-up PATTERN_BASE[NAME] + 0.5 * (D - 1); plain
counts LLC misses (1000 * D * W per inference, simulated), dw-bottleneck has no PMU. Zoo
models have the FLOPs, PyTorch latency and speed-up in ZOO.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import time
from pathlib import Path

PATTERN_BASE = {"plain": 2.0, "dw-bottleneck": 5.0, "residual": 1.5}
ZOO = {  # model: (FLOPs, PyTorch ms, speed-up)
    "darts": (5e8, 50.0, 12.0),
    "mobilenet_v2": (6e8, 12.0, 5.0),
    "resnet18": (3.6e9, 60.0, 3.0),
    "vit_b_16": (3.5e10, 146.0, 1.24),  # the issue #21 first look's speed-up
}


def load_fakes():
    """This module, imported by path (pytest's importlib mode puts no test directory on sys.path)."""
    spec = importlib.util.spec_from_file_location("study_fakes", Path(__file__))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _parse(target: str) -> tuple[str, dict]:
    name, _, params = target.partition(":")
    return name, dict(item.split("=") for item in params.split(",")) if params else {}


def _record(target, backend, options, ms, flops, speedup, counters, parity_ok=True):
    return {
        "schema": "fff.profile/1", "target": target, "backend": backend, "device": "CPU",
        "precision": options.precision, "threads": options.threads or 2, "batch": 1,
        "input_shape": [1, 3, options.resolution or 224, options.resolution or 224],
        "flops": flops, "params": int(flops / 100),
        "latency_ms": {"median": ms, "mean": ms * 1.01, "std": ms / 50, "min": ms * 0.97, "p90": ms * 1.05,
                       "p99": ms * 1.1, "ci95_low": ms * 0.99, "ci95_high": ms * 1.01, "n": 100},
        "first_inference_ms": ms * 3, "gflops_per_s": flops / (ms / 1e3) / 1e9,
        "speedup": speedup, "speedup_ci95": None if speedup is None else [speedup * 0.97, speedup * 1.03],
        "parity": None if backend == "torch" else {"max_abs_err": 1e-6, "max_rel_err": 1e-6 if parity_ok else 0.5,
                                                   "ok": parity_ok},
        "counters": counters, "warnings": [], "samples_ns": None, "verdict": "ok", "verdict_reason": "",
        "uncounted_ops": ["aten.add", "aten.relu_"],
    }


def fake_measure(target, options, progress=lambda _: None):
    """Records for both backends with the known answers above; some targets fail on purpose."""
    from fff.errors import CompileError

    progress(f"{target}: faking")
    name, params = _parse(target)
    if name == "grouped":
        raise CompileError(f"{target}: unsupported operation GroupedConvolution")
    if name == "explodes":
        raise RuntimeError("a bug deep inside a library\nwith a second line")
    if name == "kills-the-process":  # what the out-of-memory killer or a segfault in a library does
        os.kill(os.getpid(), signal.SIGKILL)
    if name == "ctrl-c":
        raise KeyboardInterrupt
    if name in ZOO:
        flops, torch_ms, speedup = ZOO[name]
        counters = {}
    else:
        depth, width = int(params["depth"]), float(params["width"])
        flops, torch_ms = 1e6 * depth * width, depth * width
        speedup = PATTERN_BASE.get(name, 1.0) + 0.5 * (depth - 1)
        if name == "plain":
            counters = {"llc-misses": {"per_inference": 1000.0 * depth * width, "total": 1e5, "status": "simulated",
                                       "reason": None, "scaled": False}}
        else:
            counters = {"llc-misses": {"per_inference": None, "total": None, "status": "not supported",
                                       "reason": "no hardware PMU", "scaled": False}}
    parity_ok = name != "inception"
    return [_record(target, "torch", options, torch_ms, flops, None, counters),
            _record(target, "openvino", options, torch_ms / speedup, flops, speedup, counters, parity_ok)]


def slow_fake_measure(target, options, progress=lambda _: None):
    """The fake at a pace where a SIGKILL lands mid-study."""
    time.sleep(0.2)
    return fake_measure(target, options, progress)
