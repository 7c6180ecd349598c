"""Per-layer profiles, taken inside each backend's worker after the timed rounds (never during them).

PyTorch: forward hooks keep the stack of modules being run and a ``TorchFunctionMode`` times each
top-level torch function (operator) on the calling thread, owned by the innermost module that
called it. A leaf module (Conv2d, BatchNorm2d, ReLU, ...) is one layer; an operator called by a
container's own forward (``x + identity``, ``torch.cat``, ``flatten``) is a layer of its own, named
``container:op``. A parallel operator's wall time on the calling thread covers its OpenMP region.

Why not torch.profiler: to give operators their module it needs a ``record_function`` range per
module call, which slowed inference 1.7-4.5x (against 1.2-1.9x for hooks and the function mode) and
took 1-6 s to turn its events into a tree (bench/README.md). Why not hooks alone: they time module
calls only, so the operators between modules (residual additions, concatenations, channel shuffles)
would vanish into "framework overhead".

OpenVINO: ``fff.Runner.profile_layers`` compiles the model a second time with profiling on and
returns ``get_profiling_info()`` per inference, plus each runtime node's ``originalLayersNames``;
this module adds the convolution signatures of the IR graph, which fff.explain.breakdown needs to attribute
convolutions whose names ``ov.convert_model`` replaced (see there).
"""

from __future__ import annotations

import time

import numpy as np

__all__ = ["profile_torch", "profile_openvino", "CONV_TYPES"]

CONV_TYPES = ("Convolution", "GroupConvolution")
RUNNING_MEAN_DEVICES = ("CPU",)  # intel_cpu's PerfCount: total of whole microseconds / executions


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


# Tensor metadata queries the function mode also sees; they do no work worth a row of their own,
# so their (tiny) time stays in the framework-overhead line.
_METADATA = frozenset({"dim", "size", "numel", "stride", "shape", "__get__", "__len__", "__bool__", "__index__",
                       "__format__", "__repr__", "is_contiguous", "requires_grad", "dtype", "device", "__hash__"})


def _op_name(func) -> str:
    """``Tensor.__iadd__`` -> ``add``, ``torch.conv2d`` -> ``conv2d``: one name per operator."""
    name = getattr(func, "__name__", None) or str(func)
    if name in _METADATA:
        return name
    name = name.strip("_")
    if name.startswith("i") and name[1:] in ("add", "mul", "sub", "truediv", "and", "or"):
        name = name[1:]
    return {"truediv": "div", "radd": "add", "rmul": "mul", "rsub": "sub"}.get(name, name)


def profile_torch(module, infer, iterations: int, warmup: int = 2) -> dict:
    """Per-layer times of ``infer()`` (which runs ``module``) over ``iterations`` profiled calls.

    Forward hooks keep a stack of the module being run; a TorchFunctionMode times every torch
    function the model calls at the top level (``torch.conv2d``, ``Tensor.__add__``, ...: the mode
    is off inside its own handler, so nested calls are part of their caller's time) on the calling
    thread, and files it under the innermost module.
    """
    import torch
    from torch.overrides import TorchFunctionMode

    started = time.perf_counter()
    facts, conv_calls = _module_facts(module, infer)
    paths = {m: name for name, m in module.named_modules()}
    owners: list = [None]
    rows: list = []
    clock = time.perf_counter_ns

    class OperatorTimer(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            start = clock()
            out = func(*args, **(kwargs or {}))
            rows.append((owners[-1], func, clock() - start))
            return out

    def enter(m, args) -> None:  # a hook that returns something replaces the module's input/output
        owners.append(paths[m])

    def leave(m, args, out) -> None:
        owners.pop()

    handles = [h for m in module.modules() for h in (m.register_forward_pre_hook(enter), m.register_forward_hook(leave))]
    latencies, iterations_ops = [], []
    try:
        with OperatorTimer():
            for _ in range(warmup):
                infer()
            for _ in range(iterations):
                rows.clear()
                start = clock()
                infer()
                latencies.append(clock() - start)
                iterations_ops.append(list(rows))
    finally:
        for handle in handles:
            handle.remove()
    names: dict = {}
    for func in {func for ops in iterations_ops for _, func, _ in ops}:
        names[func] = _op_name(func)
    iterations_ops = [[[owner, names[func], float(ns)] for owner, func, ns in ops if names[func] not in _METADATA]
                      for ops in iterations_ops]
    return {"iterations": iterations_ops, "latencies_ns": [float(v) for v in latencies], "modules": facts,
            "conv_calls": conv_calls, "seconds": time.perf_counter() - started,
            "torch_threads": torch.get_num_threads()}


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
    # The CPU plugin reports each node's running mean since compilation (fff.explain.breakdown.window_means)
    running_means = runner.device.split(".")[0] in RUNNING_MEAN_DEVICES
    return {**raw, "convs": convs, "warmup": warmup, "running_means": running_means,
            "seconds": time.perf_counter() - started}


def median_by_key(iterations: list[dict]) -> dict:
    """Per-key median over iterations of per-iteration sums (a key absent in one iteration is 0 there)."""
    keys = {k for it in iterations for k in it}
    return {k: float(np.median([it.get(k, 0.0) for it in iterations])) for k in keys}
