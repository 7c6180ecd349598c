"""Per-layer profiles, taken inside each backend's worker after the timed rounds (never during them).

PyTorch: the model runs under ``torch.profiler`` with a ``record_function`` range around every
module call (pushed by forward hooks), so each operator the calling thread runs is owned by the
innermost module that called it. A leaf module (Conv2d, BatchNorm2d, ReLU, ...) is one layer; an
operator called by a container's own forward (``x + identity``, ``torch.cat``, ``flatten``) is a
layer of its own, named ``container:op``. Times are the calling thread's wall time of each
top-level operator (a parallel operator's time on the calling thread covers its OpenMP region).

Why the profiler and not forward hooks alone: hooks time only module calls, so the functional
operators between modules (residual additions, concatenations, channel shuffles) would vanish into
"framework overhead". bench/bench_breakdown.py measures what each costs.

OpenVINO: ``fff.Runner.profile_layers`` compiles the model a second time with profiling on and
returns ``get_profiling_info()`` per inference, plus each runtime node's ``originalLayersNames``;
this module adds the convolution signatures of the IR graph, which fff.breakdown needs to attribute
convolutions whose names ``ov.convert_model`` replaced (see there).
"""

from __future__ import annotations

import os
import sys
import time
from collections import defaultdict
from contextlib import contextmanager

import numpy as np

__all__ = ["profile_torch", "profile_openvino", "MODULE_RANGE", "CONV_TYPES"]

MODULE_RANGE = "fff.module:"  # prefix of the record_function range pushed around each module call
ITERATION_RANGE = "fff.iteration"
CONV_TYPES = ("Convolution", "GroupConvolution")


def _conv_signature(out_channels: int, in_per_group: int, kernel, groups: int, out_shape) -> list:
    return [int(out_channels), int(in_per_group), *map(int, kernel), int(groups), *map(int, out_shape)]


def _module_facts(module, infer) -> tuple[dict, list]:
    """One plain forward with hooks: each module's type and FLOPs (convolutions and linear layers,
    2 x multiply-adds, biases left out as fff.models.flops does), and the signature of every
    convolution call in call order."""
    import torch

    facts, conv_calls = {}, []
    paths = {m: name for name, m in module.named_modules()}
    leaves = {name for name, m in module.named_modules() if next(m.children(), None) is None}

    def record(m, args, out):
        path = paths[m]
        flops = 0
        if isinstance(m, torch.nn.modules.conv._ConvNd) and torch.is_tensor(out):
            kernel_volume = int(np.prod(m.kernel_size))
            flops = 2 * out.numel() * (m.in_channels // m.groups) * kernel_volume
            conv_calls.append({"path": path, "signature": _conv_signature(
                m.out_channels, m.in_channels // m.groups, m.kernel_size, m.groups, out.shape)})
        elif isinstance(m, torch.nn.Linear) and torch.is_tensor(out):
            flops = 2 * out.numel() * m.in_features
        entry = facts.setdefault(path, {"module_type": type(m).__name__, "leaf": path in leaves, "flops": 0,
                                        **_conv_facts(m)})
        entry["flops"] += flops  # a module called twice (a shared ReLU) adds up

    handles = [m.register_forward_hook(record) for m in module.modules()]
    try:
        infer()
    finally:
        for handle in handles:
            handle.remove()
    return facts, conv_calls


def _conv_facts(m) -> dict:
    import torch

    if not isinstance(m, torch.nn.modules.conv._ConvNd):
        return {}
    return {"groups": m.groups, "in_channels": m.in_channels, "out_channels": m.out_channels,
            "kernel": list(m.kernel_size)}


def profile_torch(module, infer, iterations: int, warmup: int = 2) -> dict:
    """Per-layer times of ``infer()`` (which runs ``module``) over ``iterations`` profiled calls."""
    import torch
    from torch.autograd.profiler import record_function
    from torch.profiler import ProfilerActivity, profile

    started = time.perf_counter()
    facts, conv_calls = _module_facts(module, infer)
    paths = {m: name for name, m in module.named_modules()}
    stack = []

    def enter(m, args):
        scope = record_function(MODULE_RANGE + paths[m])
        scope.__enter__()
        stack.append(scope)

    def leave(m, args, out):
        stack.pop().__exit__(None, None, None)

    handles = [h for m in module.modules()
               for h in (m.register_forward_pre_hook(enter), m.register_forward_hook(leave))]
    latencies = []
    try:
        for _ in range(warmup):
            infer()
        with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU]) as profiler:
            for _ in range(iterations):
                start = time.perf_counter_ns()
                with record_function(ITERATION_RANGE):
                    infer()
                latencies.append(time.perf_counter_ns() - start)
    finally:
        for handle in handles:
            handle.remove()
    iterations_ops = [_operators_by_owner(event) for event in profiler.events()
                      if event.name == ITERATION_RANGE and event.cpu_parent is None]
    return {"iterations": iterations_ops, "latencies_ns": latencies, "modules": facts, "conv_calls": conv_calls,
            "seconds": time.perf_counter() - started, "torch_threads": torch.get_num_threads()}


@contextmanager
def _quiet_stderr():
    """Kineto prints start/stop banners (and a GPU-count error on machines without one) to file
    descriptor 2, which the worker shares with the user's terminal; it says nothing they need."""
    os.environ.setdefault("KINETO_LOG_LEVEL", "5")
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _operators_by_owner(iteration) -> list[list]:
    """[owner module path, operator name, nanoseconds] for every top-level operator of one iteration."""
    rows = []

    def walk(event, owner):
        for child in event.cpu_children:
            if child.name.startswith(MODULE_RANGE):
                walk(child, child.name[len(MODULE_RANGE):])
            else:  # an operator the owner's forward called; its own children are inside its time
                rows.append([owner, child.name, child.time_range.elapsed_us() * 1e3])

    walk(iteration, None)  # operators outside any module (None) are the framework's, not the model's
    return rows


def profile_openvino(runner, iterations: int, warmup: int = 2) -> dict:
    """Per-node profiles from a profiling-enabled compilation of the runner's model, and the IR's
    convolution signatures in graph order."""
    import openvino as ov

    started = time.perf_counter()
    raw = runner.profile_layers(iterations=iterations, warmup=warmup)
    model = ov.Core().read_model(runner.model_path)
    convs = []
    for op in model.get_ordered_ops():
        if op.get_type_name() not in CONV_TYPES or not op.output(0).get_partial_shape().is_static:
            continue
        weights = [int(d) for d in op.input(1).get_partial_shape().to_shape()]
        out_shape = [int(d) for d in op.output(0).get_shape()]
        if op.get_type_name() == "Convolution":  # [O, I, k...]
            signature = _conv_signature(weights[0], weights[1], weights[2:], 1, out_shape)
        else:  # GroupConvolution: [G, O/G, I/G, k...]
            signature = _conv_signature(weights[0] * weights[1], weights[2], weights[3:], weights[0], out_shape)
        convs.append({"name": op.get_friendly_name(), "signature": signature})
    return {**raw, "convs": convs, "seconds": time.perf_counter() - started}


def median_by_key(iterations: list[dict]) -> dict:
    """Per-key median over iterations of per-iteration sums (a key absent in one iteration is 0 there)."""
    keys = {k for it in iterations for k in it}
    return {k: float(np.median([it.get(k, 0.0) for it in iterations])) for k in keys}


def sum_by(rows, key, value) -> dict:
    out = defaultdict(float)
    for row in rows:
        out[key(row)] += value(row)
    return dict(out)
