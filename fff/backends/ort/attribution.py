"""onnxruntime's per-node profile: read from its Chrome-trace JSON, attributed to the PyTorch layers.

``read_profile`` (in the worker) parses what ``session.end_profiling()`` wrote: events of ``cat``
``"Node"`` named ``<node>_kernel_time`` are one node's kernel, ``args.op_name`` its operator;
``"Session"`` events named ``model_run`` bracket each inference, which gives each node event its
inference (by timestamp). The warm-up inferences are dropped.

``onnxruntime_breakdown`` (in the parent) maps each node to a layer of the model:

1. Its name. onnxruntime's graph optimisers rename what they rewrite: the NCHWc transformer names
   a convolution after its *output tensor* with ``_nchwc`` appended, and a fused node (convolution
   + activation, convolution + residual add + activation) carries the output name of the last node
   it absorbed. So the name, ``_nchwc`` stripped, is looked up among the exported graph's node
   names, then among its output tensor names (giving the node that produced the tensor).
2. The operator. When that node is not of the profiled operator (a convolution fused with the
   ReLU after it is named after the ReLU's output), the exported graph is walked back, breadth
   first through the inputs, to the nearest node of that operator; the nodes walked over were
   fused into it (listed with 0 ms and ``fused_into``, as OpenVINO's fused nodes are).
3. The scope. The TorchScript exporter names nodes after their module scope
   (``/features/features.1/conv/conv.0/Conv``, each part the child's name as its parent sees it,
   a module called twice ``relu_1``), which gives the module path (``features.1.conv.0``) and the
   operator; fff.explain.breakdown's ``layer_key`` makes it a layer (a leaf module, or ``owner:op``).

An int8 model (fff.backends.ort.quantization, QDQ format) runs as onnxruntime's optimiser fused it:
DequantizeLinear -> Conv -> QuantizeLinear becomes one ``QLinearConv`` (``QGemm``, ``QLinearAdd``,
``QLinearGlobalAveragePool``, ...) named after the convolution with ``_token_<n>`` appended where its
NHWC transformer rewrote it; the suffix is stripped like ``_nchwc`` and the integer operator maps to
the float one it replaced. A layer ran int8 when its kernel is one of those integer operators
(``INT8_OPS``, ``QLinear*``); the breakdown's ``int8`` summary lists those and the rest.

Nodes onnxruntime inserts itself (``ReorderInput``/``ReorderOutput`` between NCHW and NCHWc
layouts, ``Transpose`` between NCHW and the NHWC its integer kernels take, the input's
QuantizeLinear and the output's DequantizeLinear) have no layer of the model: rows of their own, category data movement, listed as
unattributed. So is every node of a model file (no PyTorch module): its category comes from its
operator, a convolution's from its input and weight shapes (depthwise, pointwise or dense). A node's time is its median over the profiled inferences; coverage is the median over
inferences of the nodes' total against the end-to-end time of the same inference (the calling
thread's clock around ``session.run``), profiling on.
"""

from __future__ import annotations

import re
from collections import defaultdict

__all__ = ["read_profile", "onnxruntime_breakdown", "scope_path", "TORCH_OPS", "INT8_OPS", "int8_op"]

# ONNX operator -> the name PyTorch's profile gives the same operation (fff.explain.layer_profiles),
# so that an ``owner:op`` layer pairs with PyTorch's row and falls into the same category.
TORCH_OPS = {
    "Add": "add", "Mul": "mul", "Sub": "sub", "Div": "div", "Pow": "pow", "Sqrt": "sqrt", "Neg": "neg", "Exp": "exp",
    "Where": "where", "Concat": "cat", "Flatten": "flatten", "Reshape": "reshape", "Transpose": "transpose",
    "Split": "split", "Slice": "slice", "Gather": "select", "Unsqueeze": "unsqueeze", "Squeeze": "squeeze",
    "Expand": "expand", "Resize": "upsample", "Identity": "to", "Cast": "to", "Pad": "pad", "Shape": "size",
    "GlobalAveragePool": "adaptive_avg_pool2d", "AveragePool": "avg_pool2d", "MaxPool": "max_pool2d",
    "GlobalMaxPool": "adaptive_max_pool2d", "ReduceMean": "mean", "ReduceMax": "amax",
    "Relu": "relu", "Clip": "hardtanh", "Sigmoid": "sigmoid", "HardSigmoid": "hardsigmoid", "HardSwish": "hardswish",
    "Tanh": "tanh", "Softmax": "softmax", "LeakyRelu": "leaky_relu", "Elu": "elu", "Gelu": "gelu", "Mish": "mish",
    "Softplus": "softplus", "PRelu": "relu",
    "MatMul": "matmul", "Gemm": "linear", "Conv": "conv2d", "BatchNormalization": "batch_norm",
    "LayerNormalization": "layer_norm", "InstanceNormalization": "instance_norm", "GroupNormalization": "group_norm",
    "ReorderInput": "copy", "ReorderOutput": "copy", "Reorder": "copy",
    "QuantizeLinear": "to", "DequantizeLinear": "to", "DynamicQuantizeLinear": "to",  # conversions f32 <-> int8
}
# onnxruntime's integer kernels (besides every QLinear<Op>): an int8 layer runs one of these.
INT8_OPS = ("QGemm", "ConvInteger", "MatMulInteger", "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "QAttention",
            "NhwcQLinearConv")
# onnxruntime's fused kernels report their own operator name; the node they grew from has the plain one.
_FUSED_OPS = {"FusedConv": "Conv", "FusedGemm": "Gemm", "FusedMatMul": "MatMul", "NhwcConv": "Conv",
              "QGemm": "Gemm", "ConvInteger": "Conv", "MatMulInteger": "MatMul", "MatMulIntegerToFloat": "MatMul",
              "DynamicQuantizeMatMul": "MatMul", "NhwcQLinearConv": "Conv", "NhwcMaxPool": "MaxPool"}
# Operators whose one kernel takes float or 8-bit data: int8 when its input is (a uint8 max pool).
_TYPE_GENERIC_OPS = ("MaxPool", "NhwcMaxPool")
_MAX_FUSED_CHAIN = 4  # nodes a fused kernel absorbs after its operator (conv, add, activation, ...)
_COPY_SUFFIX = re.compile(r"_\d+$")
_TOKEN_SUFFIX = re.compile(r"_token_\d+$")  # what onnxruntime's NHWC transformer appends to a node it rewrites


def int8_op(op: str) -> bool:
    """Whether an onnxruntime operator is an integer kernel (QLinearConv, QGemm, MatMulInteger, ...)."""
    return op.startswith("QLinear") or op in INT8_OPS


def _int8_event(event: dict) -> bool:
    """Whether a profiled node ran an int8 kernel: an integer operator, or a max pool on 8-bit data."""
    shapes = event.get("input_shapes") or [None]
    eight_bit = bool(shapes[0]) and shapes[0][0] in ("uint8", "int8")
    return int8_op(event["op"]) or (event["op"] in _TYPE_GENERIC_OPS and eight_bit)


def _float_op(op: str) -> str:
    """The float operator a fused or integer kernel grew from (QLinearConv -> Conv, FusedConv -> Conv)."""
    if op in _FUSED_OPS:
        return _FUSED_OPS[op]
    return op[len("QLinear"):] if op.startswith("QLinear") else op
_RENAME_SUFFIXES = ("_nchwc", "_bn")  # what the NCHWc transformer appends to the output name it is named after


def read_profile(path: str, latencies_ns: list[float], warmup: int) -> list[list[dict]]:
    """Per profiled inference (the warm-up ones dropped), its node events in execution order:
    ``{"node", "op", "ns", "input_shapes", "output_shapes"}`` (shapes as ``(element type, dims)``)."""
    import json

    with open(path) as f:
        events = json.load(f)
    runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in events
                  if e.get("cat") == "Session" and e.get("name") == "model_run")
    nodes = sorted((e for e in events if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")),
                   key=lambda e: e["ts"])
    iterations: list[list[dict]] = [[] for _ in runs]
    run = 0
    for event in nodes:
        while run < len(runs) and event["ts"] > runs[run][1]:
            run += 1
        if run == len(runs):
            break
        args = event.get("args", {})
        iterations[run].append({"node": event["name"][:-len("_kernel_time")], "op": args.get("op_name", "?"),
                                "ns": float(event["dur"]) * 1e3,
                                "input_shapes": [next(iter(t.items()), None) for t in args.get("input_type_shape", [])],
                                "output_shapes": [next(iter(t.items()), None) for t in args.get("output_type_shape", [])]})
    if len(iterations) != warmup + len(latencies_ns):
        from fff.errors import FffError

        raise FffError(f"onnxruntime's profile has {len(iterations)} inferences, {warmup + len(latencies_ns)} were run")
    return iterations[warmup:]


def scope_path(scopes: list[str], modules: dict) -> str | None:
    """The module path of an exporter scope (``["features", "features.1", "conv", "conv.0"]`` ->
    ``features.1.conv.0``), or None when the model has no such module.

    Each part is the child's name as its parent names it, prefixed by the parent's part when the
    parent is a container (``features`` -> ``features.1``); a module called a second time gets
    ``_1`` (``relu_1``)."""
    path, previous = "", ""
    for part in scopes:
        for name in dict.fromkeys((part, _COPY_SUFFIX.sub("", part))):
            if previous and name.startswith(previous + "."):
                candidate = path + name[len(previous):]
            else:
                candidate = f"{path}.{name}" if path else name
            if candidate in modules:
                path, previous = candidate, name
                break
        else:
            return None
    return path


def _parse(name: str, modules: dict) -> tuple[str, str] | None:
    """(owner module path, PyTorch operator name) from an exported node's name, or None."""
    if not name.startswith("/"):
        return None
    *scopes, op = name[1:].split("/")
    owner = scope_path(scopes, modules) if scopes else ""
    if owner is None:
        return None
    op = _COPY_SUFFIX.sub("", op)
    return owner, TORCH_OPS.get(op, op.lower())


def _origin(node_name: str, op: str, graph: dict) -> tuple[str | None, list[str]]:
    """The exported node a profiled node grew from, and the exported nodes fused into it."""
    by_name, producers = graph["by_name"], graph["producers"]
    base, wanted = _TOKEN_SUFFIX.sub("", node_name), _float_op(op)
    while base.endswith(_RENAME_SUFFIXES):
        if base.endswith("_bn"):  # a batch norm the NCHWc transformer runs as a convolution
            wanted = "BatchNormalization"
        base = base.rsplit("_", 1)[0]
    node = by_name.get(base) or producers.get(base)
    if node is None and "/" in base:  # a rewrite named after the node it replaced: ".../Slice_1/GatherSliceToSplitFusion"
        node = by_name.get(base.rsplit("/", 1)[0])
    if node is None:
        return None, []
    # Breadth first through every input: a residual Add's convolution may be its second input, and
    # the nearest node of the operator is the one fused (the identity branch reaches the previous
    # block's convolution only further up).
    frontier, seen = [(node, [])], {node["name"]}
    for _ in range(_MAX_FUSED_CHAIN):
        following = []
        for current, walked in frontier:
            if current["op"] == wanted:
                return current["name"], walked
            for tensor in current["inputs"]:
                source = producers.get(tensor)
                if source is not None and source["name"] not in seen:
                    seen.add(source["name"])
                    following.append((source, [*walked, current["name"]]))
        frontier = following
    return node["name"], []  # no node of that operator upstream: the name's own node


def _conv_category(event: dict) -> str | None:
    """A convolution's category from its shapes (input [N, C, H, W], weight [O, C/groups, kh, kw]),
    for a node no layer explains (a model file's); None for other operators."""
    from fff.explain.breakdown import category_of_ov_type

    shapes = event.get("input_shapes") or []
    if _float_op(event["op"]) != "Conv" or len(shapes) < 2 or not all(shapes[:2]):
        return None
    (_, data), (_, weight) = shapes[0], shapes[1]
    if len(data) < 3 or len(weight) < 3 or not weight[1]:
        return None
    groups = max(int(data[1]) // int(weight[1]), 1)
    return category_of_ov_type("Convolution", [int(weight[0]), int(weight[1]), *map(int, weight[2:]), groups, *data])


def _graph_index(nodes: list) -> dict:
    by_name, producers = {}, {}
    for name, op, inputs, outputs in nodes:
        node = {"name": name, "op": op, "inputs": list(inputs), "outputs": list(outputs)}
        by_name[name] = node
        for output in outputs:
            producers[output] = node
    return {"by_name": by_name, "producers": producers}


def onnxruntime_breakdown(raw: dict, torch_raw: dict | None, reported_ms: float | None = None) -> dict:
    """An onnxruntime profile (``read_profile``'s inferences, the exported graph) attributed to the
    PyTorch model's layers (``torch_raw``: PyTorch's profile of the same model supplies them;
    without it every node is a row of its own)."""
    from fff.explain.breakdown import category_of_op, int8_summary, layer_category, layer_key, layer_summary
    from fff.explain.layer_profiles import median_by_key

    modules = (torch_raw or {}).get("modules", {})
    graph = _graph_index(raw["graph"])
    rows, kernels, fused_into, unattributed, rules, int8 = {}, {}, {}, {}, {}, {}
    per_iteration = []
    for events in raw["iterations"]:
        times = defaultdict(float)
        for event in events:
            name, op = event["node"], event["op"]
            if name not in rows:
                origin, absorbed = _origin(name, op, graph)
                parsed = _parse(origin, modules) if origin and modules else None
                key = layer_key(parsed[0], parsed[1], modules) if parsed else None
                if key is None:
                    key = f"(onnxruntime) {name}"
                    unattributed[key] = {"node": name, "type": op}
                    category = _conv_category(event) or category_of_op(TORCH_OPS.get(_float_op(op), op.lower()))
                else:
                    category = layer_category(key, modules)
                    rules[key] = "name" if origin in graph["by_name"] and origin == _TOKEN_SUFFIX.sub("", name) \
                        else "output tensor"
                    for other in absorbed:
                        hit = _parse(other, modules)
                        absorbed_key = layer_key(hit[0], hit[1], modules) if hit else None
                        if absorbed_key is not None and absorbed_key != key:
                            fused_into.setdefault(absorbed_key, key)
                rows[name] = (key, category)
                kernels[name] = op + (" (NCHWc)" if name.endswith("_nchwc") else "")
                int8[name] = _int8_event(event)
            times[rows[name][0]] += event["ns"]
        per_iteration.append(times)
    medians = median_by_key(per_iteration)
    layers = {}
    for name, (key, category) in rows.items():
        row = layers.setdefault(key, {"layer": key, "module_type": modules.get(key, {}).get("module_type",
                                                                                          kernels[name]),
                                      "category": category, "ms": medians.get(key, 0.0) / 1e6,
                                      "flops": modules.get(key, {}).get("flops") or None, "nodes": [],
                                      "exec_types": [], "rule": rules.get(key)})
        row["nodes"].append(name)
        if kernels[name] not in row["exec_types"]:
            row["exec_types"].append(kernels[name])
        # A layer ran int8 when its main kernel did (its first: the convolution or matmul it is named after).
        row.setdefault("int8", int8[name])
    for absorbed, key in fused_into.items():
        if absorbed not in layers:
            layers[absorbed] = {"layer": absorbed, "module_type": modules.get(absorbed, {}).get("module_type",
                                                                                                "(functional)"),
                                "category": layer_category(absorbed, modules), "ms": 0.0,
                                "flops": modules.get(absorbed, {}).get("flops") or None, "nodes": [],
                                "exec_types": [], "rule": "fused", "fused_into": key}
    layer_ns = [sum(times.values()) for times in per_iteration]
    result = layer_summary(layers, raw["latencies_ns"], layer_ns, reported_ms, {})
    if any(row.get("int8") for row in layers.values()):
        result["int8"] = int8_summary({key: row for key, row in layers.items() if "int8" in row},
                                      source="onnxruntime profile op names (QLinear*, QGemm, ConvInteger, MatMulInteger; "
                                             "a max pool on uint8 input)")
    result.update({
        "backend": "onnxruntime",
        "source": "onnxruntime session profiling (Chrome-trace JSON, cat Node, <node>_kernel_time, args.op_name) "
                  "of a second, profiling-enabled session; nodes attributed by name or output tensor, fused "
                  "chains walked back to their operator, scopes to modules (fff.backends.ort.attribution)",
        "iterations": len(raw["latencies_ns"]),
        "unattributed": sorted(({**info, "ms": layers[key]["ms"]} for key, info in unattributed.items()),
                               key=lambda row: -row["ms"]),
        "seconds": raw.get("seconds"),
    })
    return result
