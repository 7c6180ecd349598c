"""One onnxruntime inference as fff.explain.cache_model traces it: the graph onnxruntime runs.

A session on one thread saves the graph it optimised (``optimized_model_filepath``: NCHWc
convolutions, fused kernels, its own reorders) and profiles two inferences; the second one's node
events give the execution order and every node's input and output shapes (``args.input_type_shape``,
``output_type_shape``), the saved graph which tensors each node reads and writes. Weights are the
saved graph's initialisers, laid out one after the other; activations get addresses from the cache
model's first-fit planner, a buffer free once its last reader has run (onnxruntime's arena plans
its memory too, better). Reshape-like nodes alias their input and do no work.

What it leaves out, on top of the model's own caveat: the kernels' packed weights (onnxruntime
pre-packs convolution weights at session creation; the trace streams the initialiser's bytes) and
the arena's real placement.
"""

from __future__ import annotations

import os
import tempfile

__all__ = ["trace_onnxruntime"]

_ELEMENT_BYTES = {"float": 4, "float16": 2, "bfloat16": 2, "double": 8, "int64": 8, "int32": 4, "int8": 1,
                  "uint8": 1, "bool": 1}
_ALIASES = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"}  # onnxruntime runs them on their input's memory
_ALIGN = 64


def _bytes(shape) -> int:
    if not shape:
        return 0
    element, dims = shape
    count = 1
    for d in dims:
        count *= int(d)
    return count * _ELEMENT_BYTES.get(element, 4)


def trace_onnxruntime(path, input_shape):
    """(warm-up, counted) Trace of one inference of the ONNX file at ``path``, one thread: the same
    trace twice, since onnxruntime's arena hands the same buffers out on every inference."""
    import numpy as np
    import onnx

    from fff.backends.base import fixed_seed_input
    from fff.backends.ort.attribution import read_profile
    from fff.backends.ort.session import make_session
    from fff.explain.cache_model import Planner, Step, Trace, peak_live

    with tempfile.TemporaryDirectory(prefix="fff-ort-trace-") as directory:
        optimized = os.path.join(directory, "optimized.onnx")
        session, _ = make_session(path, 1, profile_prefix=os.path.join(directory, "profile"), optimized_path=optimized)
        feed = {session.get_inputs()[0].name: fixed_seed_input(input_shape)}
        for _ in range(2):
            session.run(None, feed)
        events = read_profile(session.end_profiling(), [0.0], warmup=1)[0]
        graph = onnx.load(optimized).graph
    nodes = {node.name: node for node in graph.node}
    weights = {init.name: int(np.prod(init.dims, dtype=np.int64)) * onnx.helper.tensor_dtype_to_np_dtype(
        init.data_type).itemsize for init in graph.initializer}
    steps_in = [(event, nodes[event["node"]]) for event in events if event["node"] in nodes]

    last_use: dict[str, int] = {}
    for i, (_, node) in enumerate(steps_in):
        for name in node.input:
            last_use[name] = i
    addresses: dict[str, tuple[int, int]] = {}
    weight_base, weight_end, weight_bytes = 1 << 44, 0, 0
    for name in sorted({n for _, node in steps_in for n in node.input if n in weights}):
        addresses[name] = (weight_base + weight_end, weights[name])
        weight_end += -(-weights[name] // _ALIGN) * _ALIGN  # each initialiser starts on a line
        weight_bytes += weights[name]
    planner, intervals = Planner(1 << 40), []
    input_bytes = 0
    for value in graph.input:
        if value.name not in weights:
            size = int(np.prod(input_shape)) * 4
            addresses[value.name] = (planner.place(size, 0, last_use.get(value.name, 0)), size)
            intervals.append((0, last_use.get(value.name, 0), size))
            input_bytes += size
    steps = []
    for i, (event, node) in enumerate(steps_in):
        reads = tuple(addresses[name] for name in node.input if name in addresses)
        if node.op_type in _ALIASES and reads:
            for output in node.output:
                addresses[output] = reads[0]
            continue
        writes = []
        for output, shape in zip(node.output, event["output_shapes"]):
            size = _bytes(shape)
            if not output or size == 0:
                continue
            last = max(last_use.get(output, i), i)
            addresses[output] = (planner.place(size, i, last), size)
            intervals.append((i, last, size))
            writes.append(addresses[output])
        steps.append(Step(node.op_type, reads, tuple(writes)))
    output_bytes = sum(addresses[value.name][1] for value in graph.output if value.name in addresses)
    trace = Trace(steps, weight_bytes=weight_bytes, input_bytes=input_bytes, output_bytes=output_bytes,
                  peak_activation_bytes=peak_live(intervals),
                  source="onnxruntime: the graph its session optimised (one thread, NCHWc, fused kernels) in the "
                         "order its profile ran it; activation addresses from a first-fit planner")
    return trace, trace
