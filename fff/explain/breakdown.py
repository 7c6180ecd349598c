"""Where each backend spends its time, layer by layer, and where the time saved comes from.

fff.explain.layer_profiles takes the raw profiles in the workers; this module turns them into one table
whose rows are layers of the user's PyTorch model, each with its time in each backend, its FLOPs
and one category of a small taxonomy (CATEGORIES). Everything here is plain data in, plain data
out: no torch, no openvino.

A layer is a leaf module (``stages.0.0.conv.1.0``: a Conv2d), or an operator a container's own
forward calls (``stages.0.0:add``, ``model:flatten`` for the top module's forward).

How an OpenVINO node is attributed to a layer, in this order (each layer row says which rule):
  1. ``name``: ``ov.convert_model`` names nodes ``__module.<module path>/aten::<op>/<Type>``, so the
     module path and the operator are in the name (``aten::flatten/Reshape`` at the top module).
  2. ``graph``: convolutions followed by batch norm lose their name when ``ov.convert_model`` folds
     the norm into the weights (the node becomes ``Multiply_4773``). Their module is found by
     matching convolution signatures (out and in channels per group, kernel, groups, output shape)
     in graph order against the PyTorch convolutions in call order: the first unused PyTorch
     convolution with the same signature. Exact for chains; two identical convolutions in parallel
     branches may swap rows, which leaves every category total unchanged.
  3. Fused nodes: the CPU plugin fuses nodes (convolution + bias + activation + residual add) into
     one; the runtime graph's ``originalLayersNames`` lists every model node it absorbed, the
     absorbing one first. The fused node's time goes to the first of them that rules 1-2 attribute
     (the convolution), and each absorbed layer is listed with 0 ms in OpenVINO and ``fused_into``.
  Nodes the plugin inserts itself (layout ``Reorder``s, named after the node they feed but with no
  original layers) have no PyTorch layer: they are rows of their own, category data movement, and
  listed as unattributed. Nodes reported NOT_RUN or OPTIMIZED_OUT are kept with their status.
  A node's time is its mean over the profiled inferences (see ``window_means``: the CPU plugin
  reports running means, not one inference's times).

Transformer operations (CATEGORIES' ``attention`` and ``layer norm``):
  - ``attention`` is attention's two products and its softmax, or a fused scaled-dot-product
    operator: ``scaled_dot_product_attention`` anywhere, and the ``matmul``/``bmm``/``einsum``/``softmax``
    an attention module calls in its own forward (a module whose type names attention: Swin's
    ``ShiftedWindowAttention``, MaxViT's ``RelativePositionalMultiHeadAttention``); their
    projections, linear layers of their own, stay ``linear/matmul``. ``nn.MultiheadAttention`` is
    one layer, projections included: PyTorch runs it as one function (``F.multi_head_attention_forward``,
    or the fused ``_native_multi_head_attention`` outside profiling) that a per-operator profile
    cannot split, so OpenVINO's nodes under its module path (the projections' MatMuls and the
    ScaledDotProductAttention, fused or not) are summed into the same layer, and the two stacks
    compare like with like.
  - ``layer norm`` (LayerNorm, ConvNeXt's LayerNorm2d; OpenVINO's MVN) is apart from
    ``normalization`` (batch norm, which conversion folds into convolutions, and the other norms).
  - GELU and SiLU are ``activation``, as ReLU is.
  OpenVINO's fused attention and normalization nodes come back to these layers through their
  ``originalLayersNames`` (rule 3), which carry the PyTorch module path.

PyTorch: a layer's time is the median over profiled inferences of its operators' times.
``framework overhead`` is, per inference, the end-to-end time with profiling on minus the sum of
the operators' times (Python, module calls and dispatch between operators, and the profiling
hooks' own cost, see ``slowdown``), its median over inferences. Coverage is the median over
inferences of the layers' share of the end-to-end time with profiling on; for PyTorch it leaves
out the overhead line, which makes up most of the rest. A category's time is the sum of its
layers' times.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict

import numpy as np

from fff.explain.layer_profiles import median_by_key

__all__ = ["CATEGORIES", "OVERHEAD", "collect", "int8_kernel", "int8_summary", "torch_breakdown", "openvino_breakdown", "window_means",
           "compare", "category_rows", "category_of_module", "category_of_op", "category_of_ov_type", "parse_ov_name",
           "layer_key", "layer_category", "layer_summary"]

CATEGORIES = ("dense conv kxk", "pointwise conv 1x1", "depthwise conv", "grouped conv", "linear/matmul",
              "attention", "normalization", "layer norm", "activation", "pooling", "elementwise", "data movement",
              "framework overhead", "other")
OVERHEAD = "framework overhead"
TOP = "model"  # the name of the top module in layer names

_MODULE_CATEGORIES = {
    "linear/matmul": ("Linear", "Bilinear", "LazyLinear", "NonDynamicallyQuantizableLinear"),
    "attention": ("MultiheadAttention",),
    "normalization": ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "GroupNorm", "InstanceNorm2d",
                      "LocalResponseNorm"),
    "layer norm": ("LayerNorm", "LayerNorm2d", "RMSNorm"),
    "activation": ("ReLU", "ReLU6", "LeakyReLU", "PReLU", "ELU", "SELU", "GELU", "SiLU", "Sigmoid", "Tanh",
                   "Hardswish", "Hardsigmoid", "Hardtanh", "Mish", "Softmax", "LogSoftmax", "Softplus"),
    "pooling": ("MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d", "AdaptiveAvgPool1d",
                "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool2d"),
    "data movement": ("Flatten", "Unflatten", "ChannelShuffle", "PixelShuffle", "ZeroPad2d", "ConstantPad2d",
                      "ReflectionPad2d", "Upsample", "Permute"),
}
# Modules that are one layer though they have children: PyTorch runs them as one function (see the
# module docstring), so their time cannot be split among the children on its side either.
_WHOLE_MODULES = ("MultiheadAttention",)
_MODULE_CATEGORY = {name: category for category, names in _MODULE_CATEGORIES.items() for name in names}

_OP_CATEGORIES = {
    "linear/matmul": ("linear", "matmul", "mm", "bmm", "addmm", "baddbmm", "einsum"),
    "attention": ("scaled_dot_product_attention", "multi_head_attention_forward", "_native_multi_head_attention"),
    "normalization": ("batch_norm", "group_norm", "instance_norm"),
    "layer norm": ("layer_norm", "rms_norm"),
    "activation": ("relu", "relu6", "hardtanh", "clamp", "dropout", "sigmoid", "tanh", "hardswish", "hardsigmoid", "silu",
                   "gelu", "softmax", "log_softmax", "leaky_relu", "elu", "mish", "softplus"),
    "pooling": ("adaptive_avg_pool2d", "avg_pool2d", "max_pool2d", "max_pool2d_with_indices", "mean", "avg_pool1d",
                "adaptive_max_pool2d", "amax"),
    "elementwise": ("add", "mul", "sub", "div", "rsub", "neg", "pow", "sqrt", "rsqrt", "exp", "where", "and", "or"),
    "data movement": ("cat", "concat", "stack", "reshape", "view", "flatten", "transpose", "permute", "chunk",
                      "split", "contiguous", "pad", "constant_pad_nd", "channel_shuffle", "slice", "select",
                      "narrow", "unsqueeze", "squeeze", "expand", "repeat", "clone", "to", "copy", "upsample",
                      "index", "ListConstruct", "ListUnpack", "TupleConstruct", "TupleUnpack", "size",
                      "unflatten", "pixel_shuffle", "getitem", "setitem", "float", "type_as"),
}
_OP_CATEGORY = {name: category for category, names in _OP_CATEGORIES.items() for name in names}
# What attention is made of when an attention module's own forward calls it (its products, softmax).
_ATTENTION_PARTS = ("matmul", "bmm", "baddbmm", "einsum", "softmax", "_softmax")

_OV_TYPE_CATEGORIES = {
    "linear/matmul": ("FullyConnected", "MatMul", "Gemm"),
    "attention": ("ScaledDotProductAttention", "ScaledAttn", "SDPA"),
    "normalization": ("NormalizeL2", "BatchNormInference", "BatchNorm"),
    "layer norm": ("MVN", "RMS"),
    "activation": ("Relu", "Clamp", "Sigmoid", "Tanh", "Swish", "HSwish", "HSigmoid", "Gelu", "Elu", "SoftMax",
                   "Softmax", "Mish", "SoftPlus", "PRelu"),
    "pooling": ("Pooling", "AvgPool", "MaxPool", "ReduceMean", "Reduce", "AdaptivePooling", "AdaptiveAvgPool"),
    "elementwise": ("Eltwise", "Add", "Multiply", "Subtract", "Divide", "Power", "Select"),
    "data movement": ("Reorder", "Reshape", "Transpose", "Concatenation", "Concat", "Split", "VariadicSplit",
                      "Gather", "ShuffleChannels", "Pad", "StridedSlice", "Broadcast", "Tile", "Squeeze",
                      "Unsqueeze", "DepthToSpace", "SpaceToDepth", "Interpolate", "Copy"),
}
_OV_TYPE_CATEGORY = {name: category for category, names in _OV_TYPE_CATEGORIES.items() for name in names}


def _conv_category(groups: int, in_channels: int, out_channels: int, kernel) -> str:
    if groups > 1 and groups == in_channels:
        return "depthwise conv"
    if groups > 1:
        return "grouped conv"
    return "pointwise conv 1x1" if all(k == 1 for k in kernel) else "dense conv kxk"


def category_of_module(facts: dict) -> str:
    """The category of a leaf module from fff.explain.layer_profiles' facts (type name, conv geometry)."""
    if "groups" in facts:
        return _conv_category(facts["groups"], facts["in_channels"], facts["out_channels"], facts["kernel"])
    return _MODULE_CATEGORY.get(facts["module_type"], "other")


def op_base(name: str) -> str:
    """``aten::add_`` -> ``add``; ``prim::ListConstruct`` -> ``ListConstruct``."""
    return name.split("::", 1)[-1].rstrip("_")


def category_of_op(name: str) -> str:
    base = op_base(name)
    if base in ("conv2d", "convolution", "_convolution", "conv1d", "conv3d"):
        return "dense conv kxk"  # a functional convolution: its geometry is not in the profile
    return _OP_CATEGORY.get(base, "other")


def category_of_ov_type(node_type: str, signature: list | None = None) -> str:
    if node_type in ("Convolution", "GroupConvolution") and signature:
        out_channels, in_per_group, *rest = signature
        groups = rest[-5]  # signature: [out, in/groups, *kernel, groups, n, c, h, w]
        kernel = rest[:-5]
        return _conv_category(groups, in_per_group * groups, out_channels, kernel)
    if node_type in ("Convolution", "GroupConvolution"):
        return "dense conv kxk" if node_type == "Convolution" else "grouped conv"
    return _OV_TYPE_CATEGORY.get(node_type, "other")


_OV_NAME = re.compile(r"^(?:__module\.(?P<path>[^/]*)/)?(?P<op>(?:aten|prim)::[^/]+)/")


def parse_ov_name(name: str) -> tuple[str, str] | None:
    """(module path, operator) from a node name ``ov.convert_model`` gave; None when it has neither."""
    match = _OV_NAME.match(name)
    if not match:
        return None
    return match.group("path") or "", match.group("op")


def _whole_ancestor(path: str, modules: dict) -> str | None:
    """``path`` or its closest ancestor that is one layer though it has children (_WHOLE_MODULES)."""
    parts = path.split(".")
    for end in range(1, len(parts) + 1):
        prefix = ".".join(parts[:end])
        if modules.get(prefix, {}).get("module_type") in _WHOLE_MODULES:
            return prefix
    return None


def layer_key(owner: str | None, op: str, modules: dict) -> str | None:
    """The layer an operator belongs to: its owner when that is a leaf module (or inside a module
    that is one layer, nn.MultiheadAttention), else ``owner:op``."""
    if owner is None:
        return None
    whole = _whole_ancestor(owner, modules) if owner else None
    if whole is not None:
        return whole
    facts = modules.get(owner)
    if facts is not None and facts["leaf"]:
        return owner
    return f"{owner or TOP}:{op_base(op)}"


def layer_category(key: str, modules: dict) -> str:
    if key in modules:
        return category_of_module(modules[key])
    owner, _, op = key.rpartition(":")
    if op_base(op) in _ATTENTION_PARTS and "attention" in modules.get(owner, {}).get("module_type", "").lower():
        return "attention"  # the products and softmax in an attention module's own forward
    return category_of_op(op)


def layer_summary(layers: dict, latency_ns: list, layer_ns: list, reported_ms: float | None, extra_ms: dict) -> dict:
    """Shared fields: profiled latency, slowdown, coverage, and per-category milliseconds.

    Coverage is the median over inferences of (that inference's layer times / its end-to-end time):
    paired, so a burst of load on a shared machine slows both sides of the ratio alike."""
    profiled_ms = float(np.median(latency_ns)) / 1e6
    coverage = float(np.median(np.divide(layer_ns, latency_ns[:len(layer_ns)]))) if layer_ns else None
    categories = defaultdict(float)
    for row in layers.values():
        categories[row["category"]] += row["ms"]
    for category, ms in extra_ms.items():
        categories[category] += ms
    return {
        "latency_profiled_ms": profiled_ms,
        "latency_reported_ms": reported_ms,
        "slowdown": profiled_ms / reported_ms if reported_ms else None,
        "coverage": coverage,
        "categories": {c: categories[c] for c in CATEGORIES if c in categories},
        "layers": sorted(layers.values(), key=lambda row: -row["ms"]),
    }


def torch_breakdown(raw: dict, reported_ms: float | None = None) -> dict:
    """A PyTorch profile (fff.explain.layer_profiles.profile_torch) as layers, categories and honesty fields."""
    modules = raw["modules"]
    per_iteration, outside = [], []
    for rows in raw["iterations"]:
        layers, loose = defaultdict(float), 0.0
        for owner, op, ns in rows:
            key = layer_key(owner, op, modules)
            if key is None:
                loose += ns
            else:
                layers[key] += ns
        per_iteration.append(layers)
        outside.append(loose)
    medians = median_by_key(per_iteration)
    ops_ns = [sum(it.values()) + loose for it, loose in zip(per_iteration, outside)]
    overhead_ms = max(float(np.median(np.subtract(raw["latencies_ns"][:len(ops_ns)], ops_ns))), 0.0) / 1e6
    layers = {key: {"layer": key, "module_type": modules.get(key, {}).get("module_type", "(functional)"),
                    "category": layer_category(key, modules), "ms": ns / 1e6,
                    "flops": modules.get(key, {}).get("flops") or None}
              for key, ns in medians.items()}
    loose_ms = float(np.median(outside)) / 1e6 if outside else 0.0
    layer_ns = [sum(it.values()) for it in per_iteration]
    result = layer_summary(layers, raw["latencies_ns"], layer_ns, reported_ms, {OVERHEAD: overhead_ms, "other": loose_ms})
    result.update({
        "backend": "torch",
        "source": "top-level torch functions timed on the calling thread (TorchFunctionMode), owned by the "
                  "innermost module (forward hooks); fff.explain.layer_profiles",
        "iterations": len(raw["latencies_ns"]),
        "framework_overhead_ms": overhead_ms,
        "outside_modules_ms": loose_ms,
        "unattributed": [],
        "seconds": raw.get("seconds"),
    })
    return result


def _graph_names(convs: list[dict], conv_calls: list[dict]) -> dict[str, str]:
    """IR convolution name -> PyTorch module path, by signature in order (rule 2)."""
    unused = list(conv_calls)
    names = {}
    for conv in convs:
        for index, call in enumerate(unused):
            if call["signature"] == conv["signature"]:
                names[conv["name"]] = call["path"]
                del unused[index]
                break
    return names


def window_means(raw: dict) -> tuple[dict[str, float], float]:
    """Each executed node's mean time (ns) over the profiled inferences after the first, and the
    mean end-to-end latency over the same inferences.

    OpenVINO's CPU plugin does not report one inference's node times: ``get_profiling_info()``
    gives each node's running mean since compilation, in whole microseconds (its PerfCount adds
    each execution truncated to a microsecond and divides by the count). After profiled inference
    k, a node has run ``warmup + k`` times, so its total is mean x (warmup + k), and the mean over
    inferences 2..n is (total_n - total_1) / (n - 1): the warm-up and the first inference (lazy
    initialisation) are left out. Truncating the running mean costs under (warmup + n) / (n - 1)
    microseconds per node, and each execution's truncation under 1 us. Other devices report one
    inference's times: there the mean over inferences 2..n is taken directly."""
    iterations, latencies = raw["iterations"], raw["latencies_ns"]
    totals = []
    for rows in iterations:
        times = defaultdict(float)
        for node in rows:
            if node["status"] == "EXECUTED":
                times[node["node_name"]] += node["real_time_ns"]
        totals.append(times)
    n = len(totals)
    if n < 2:  # nothing to difference: the running mean as it is
        return dict(totals[0]) if totals else {}, float(np.mean(latencies)) if latencies else 0.0
    names = set().union(*totals)
    if raw.get("running_means", False):
        warmup = raw.get("warmup", 0)
        means = {name: (totals[-1].get(name, 0.0) * (warmup + n) - totals[0].get(name, 0.0) * (warmup + 1)) / (n - 1)
                 for name in names}
    else:
        means = {name: float(np.mean([t.get(name, 0.0) for t in totals[1:]])) for name in names}
    return {name: max(value, 0.0) for name, value in means.items()}, float(np.mean(latencies[1:]))


def int8_kernel(exec_type: str) -> bool:
    """Whether an OpenVINO CPU exec type is an 8-bit integer kernel (``brgconv_avx512_amx_1x1_I8``,
    ``jit_uni_u8``: the plugin names a kernel after the precision it computes in)."""
    return exec_type.lower().endswith(("_i8", "_u8"))


def int8_summary(layers: dict, source: str = "exec types of get_profiling_info() ending in _I8/_U8") -> dict:
    """Which layers ran an int8 kernel and which stayed in a floating-point one, with their time
    (``layers``: rows with an ``int8`` flag; ``source``: how the stack's profile told)."""
    ran = [row for row in layers.values() if row["nodes"]]
    int8 = [row for row in ran if row["int8"]]
    other = [row for row in ran if not row["int8"]]
    return {"layers_int8": [row["layer"] for row in int8], "layers_not_int8": [row["layer"] for row in other],
            "ms_int8": sum(row["ms"] for row in int8), "ms_not_int8": sum(row["ms"] for row in other),
            "source": source}


def openvino_breakdown(raw: dict, torch_raw: dict | None, reported_ms: float | None = None) -> dict:
    """An OpenVINO profile (fff.explain.layer_profiles.profile_openvino) attributed to the PyTorch model's
    layers; ``torch_raw`` (the PyTorch profile of the same model) supplies the modules and the
    convolution calls. Without it (a model file) every node is a row of its own."""
    modules = (torch_raw or {}).get("modules", {})
    graph = _graph_names(raw.get("convs", []), (torch_raw or {}).get("conv_calls", []))
    signatures = {conv["name"]: conv["signature"] for conv in raw.get("convs", [])}

    def attribute(model_node: str) -> tuple[str, str] | None:
        if model_node in graph:
            return graph[model_node], "graph"
        parsed = parse_ov_name(model_node)
        if parsed is None or not modules:
            return None
        key = layer_key(parsed[0], parsed[1], modules)
        return (key, "name") if key is not None else None

    nodes = {}  # runtime node -> what it is and where its time goes
    for node in (raw["iterations"][0] if raw["iterations"] else []):
        name = node["node_name"]
        originals = [n for n in raw["original_names"].get(name, "").split(",") if n]
        found = [(original, attribute(original)) for original in originals]
        found = [(original, hit) for original, hit in found if hit is not None]
        # A runtime node with an empty list was inserted by the plugin (a layout Reorder named after
        # its neighbours): no layer of the model. One with no list at all falls back to its own name.
        own = attribute(name) if name not in raw["original_names"] else None
        target = found[0][1] if found else own
        nodes[name] = {"type": node["node_type"], "exec_type": node["exec_type"], "status": node["status"],
                       "layer": target[0] if target else None, "rule": target[1] if target else None,
                       "fused": [hit[0] for original, hit in found[1:] if hit[0] != target[0]],
                       "signature": signatures.get(originals[0] if originals else name)}
    node_ns, window_latency_ns = window_means(raw)
    node_ms = {name: ns / 1e6 for name, ns in node_ns.items()}

    layers, unattributed, not_run = {}, [], []
    for name, node in nodes.items():
        if node["status"] != "EXECUTED":
            if node["type"] not in ("Parameter", "Result", "Input", "Output", "Const", "Constant"):
                not_run.append({"node": name, "type": node["type"], "status": node["status"],
                                "layer": node["layer"]})
            continue
        ms = node_ms.get(name, 0.0)
        key = node["layer"]
        if key is None:
            key = f"(openvino) {name}"
            unattributed.append({"node": name, "type": node["type"], "ms": ms})
            category = category_of_ov_type(node["type"], node["signature"])
        else:
            category = layer_category(key, modules)
        row = layers.setdefault(key, {"layer": key, "module_type": modules.get(key, {}).get("module_type",
                                                                                          node["type"]),
                                      "category": category, "ms": 0.0, "flops": modules.get(key, {}).get("flops")
                                      or None, "nodes": [], "exec_types": [], "rule": node["rule"]})
        row["ms"] += ms
        row["nodes"].append(name)
        if node["exec_type"] not in row["exec_types"]:
            row["exec_types"].append(node["exec_type"])
        # A layer ran int8 when its main node did (its first: the convolution or matmul it is named after);
        # the reorders and f32 epilogues beside it do not change that.
        row.setdefault("int8", int8_kernel(node["exec_type"]))
        for absorbed in node["fused"]:
            fused = layers.setdefault(absorbed, {"layer": absorbed, "module_type": modules.get(absorbed, {}).get(
                "module_type", "(functional)"), "category": layer_category(absorbed, modules), "ms": 0.0,
                "flops": modules.get(absorbed, {}).get("flops") or None, "nodes": [], "exec_types": [],
                "rule": "fused"})
            fused.setdefault("fused_into", key)
    result = layer_summary(layers, raw["latencies_ns"], [], reported_ms, {})
    result["coverage"] = sum(node_ns.values()) / window_latency_ns if window_latency_ns > 0 else None
    if any(row.get("int8") for row in layers.values()):
        result["int8"] = int8_summary({key: row for key, row in layers.items() if "int8" in row})
    result.update({
        "backend": "openvino",
        "source": "OpenVINO get_profiling_info() (real time per executed node) from a second compilation "
                  "with ov::enable_profiling; nodes attributed by name, graph match or fusion (fff.explain.breakdown)",
        "iterations": len(raw["latencies_ns"]),
        "unattributed": sorted(unattributed, key=lambda row: -row["ms"]),
        "not_run": not_run,
        "seconds": raw.get("seconds"),
    })
    return result


def compare(baseline: dict, accelerated: dict) -> dict:
    """Per category: time in each backend, share of each total, speed-up, and the share of the
    time saved it explains; per layer: both times side by side. Shares of the saved time are of
    the saved total across categories (a category that got slower has a negative share)."""
    base, fast = baseline["categories"], accelerated["categories"]
    base_total, fast_total = sum(base.values()), sum(fast.values())
    saved_total = base_total - fast_total
    categories = []
    for category in CATEGORIES:
        b, a = base.get(category, 0.0), fast.get(category, 0.0)
        if b == 0 and a == 0:
            continue
        categories.append({
            "category": category, "baseline_ms": b, "accelerated_ms": a,
            "baseline_share": b / base_total if base_total else None,
            "accelerated_share": a / fast_total if fast_total else None,
            "speedup": b / a if a > 0 else None, "saved_ms": b - a,
            "share_of_saved": (b - a) / saved_total if saved_total > 0 else None,
        })
    fast_layers = {row["layer"]: row for row in accelerated["layers"]}
    layers = []
    for row in baseline["layers"]:
        other = fast_layers.pop(row["layer"], None)
        if other is None:
            note = "no node in the accelerated graph (folded away at conversion, e.g. batch norm into its conv)"
        elif other.get("fused_into"):
            note = f"fused into {other['fused_into']}"
        else:
            note = None
        layers.append({"layer": row["layer"], "category": row["category"], "module_type": row["module_type"],
                       "flops": row["flops"], "baseline_ms": row["ms"],
                       "accelerated_ms": other["ms"] if other else 0.0, "note": note,
                       "exec_types": other.get("exec_types") if other else None,
                       "int8": other.get("int8") if other else None})
    for row in fast_layers.values():  # nodes with no PyTorch counterpart (the plugin's reorders)
        layers.append({"layer": row["layer"], "category": row["category"], "module_type": row["module_type"],
                       "flops": row["flops"], "baseline_ms": None, "accelerated_ms": row["ms"],
                       "note": "no layer of the model (inserted by the accelerated runtime)",
                       "exec_types": row.get("exec_types")})
    layers.sort(key=lambda row: -max(row["baseline_ms"] or 0.0, row["accelerated_ms"] or 0.0))
    return {"categories": categories, "layers": layers, "baseline_total_ms": base_total,
            "accelerated_total_ms": fast_total, "saved_ms": saved_total}


BREAKDOWN_SECONDS = 1.0  # profiled inferences per backend: about this long, within the bounds below
MIN_ITERATIONS, MAX_ITERATIONS = 3, 20


def collect(workers: dict, reported_ms: dict[str, float], attributors: dict, baseline: str,
            progress=lambda _: None, label: str = "") -> dict[str, dict]:
    """Profile every backend's worker (after its timed rounds) and build each one's breakdown with
    its ``attributors[name]`` (Backend.attribute: raw profile, the baseline's raw profile, reported
    ms); the accelerated ones also get ``comparison`` against the baseline. A backend whose profile
    fails gets ``{"error": ...}``: the latencies already measured are kept either way."""
    from fff.errors import FffError

    raw, out = {}, {}
    for name in sorted(workers, key=lambda n: n != baseline):  # the baseline's modules attribute the rest
        iterations = int(np.clip(BREAKDOWN_SECONDS / max(reported_ms[name] / 1e3, 1e-6), MIN_ITERATIONS,
                                 MAX_ITERATIONS))
        progress(f"{label}: per-layer profile of {name} ({iterations} profiled inferences, after the timed rounds)")
        started = time.perf_counter()
        try:
            raw[name] = workers[name].call("breakdown", iterations=iterations)
        except FffError as error:
            out[name] = {"backend": name, "error": str(error).splitlines()[0]}
            continue
        try:
            out[name] = attributors[name](raw[name], raw.get(baseline) if name != baseline else None,
                                          reported_ms[name])
            out[name]["backend"] = name
        except Exception as error:  # a model the attribution does not handle must not cost its latencies
            out[name] = {"backend": name, "error": f"attribution failed: {type(error).__name__}: {error}"}
            progress(f"{label}: {out[name]['error']}")
            continue
        out[name]["cost_s"] = time.perf_counter() - started  # what --breakdown added for this backend
    base = out.get(baseline)
    for name, result in out.items():
        if name != baseline and base and "error" not in base and "error" not in result:
            result["comparison"] = compare(base, result)
    return out


def category_rows(record: dict) -> list[dict]:
    """A study record's breakdown as long-format rows (one per category) for fff.analysis:
    milliseconds, share of the backend's profiled total, and the honesty fields beside them."""
    breakdown = record.get("breakdown") or {}
    if "categories" not in breakdown:
        return []
    total = sum(breakdown["categories"].values())
    return [{"backend": record.get("backend"), "category": category, "ms": ms,
             "share": ms / total if total else np.nan, "coverage": breakdown.get("coverage"),
             "slowdown": breakdown.get("slowdown")}
            for category, ms in breakdown["categories"].items()]
