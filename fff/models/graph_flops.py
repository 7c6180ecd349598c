"""FLOPs and parameters of an OpenVINO graph (a model file has no PyTorch module to run).

The same convention as ``fff.models.flops``: FLOPs = 2 x multiply-adds for one inference of the
whole batch, counting convolutions and matrix products only, biases left out. The graph must
have static shapes (reshape it to the input shape first). Counted operator types and their
formulas, with ``out`` the output shape and ``w`` the weights' shape:

- ``Convolution`` (w = [C_out, C_in, k...]): 2 * prod(out) * prod(w[1:])
- ``GroupConvolution`` (w = [G, C_out/G, C_in/G, k...]): 2 * prod(out) * prod(w[2:])
- ``ConvolutionBackpropData``, ``GroupConvolutionBackpropData`` (transposed convolutions):
  2 * batch * prod(input spatial dims) * prod(w), as torch counts a transposed convolution
- ``MatMul``: 2 * prod(out) * K, K the shared dimension after the transpose attributes
- ``ScaledDotProductAttention`` (q = [..., L, E], k = [..., S, E], out = [..., L, Ev]): its two
  products, 2 * prod(q) * S + 2 * prod(out) * S; its softmax, scaling and mask are elementwise and
  not counted, as in ``fff.models.flops``

Every other operator that computes something is listed in ``uncounted`` by its OpenVINO type
(``Add``, ``MaxPool``, ...); operators that only move, reshape or describe data are not, as the
PyTorch count leaves out views. A model converted from PyTorch counts the same here as in
PyTorch (tests/test_graph_flops.py checks patterns and a zoo model).

Parameters are the elements of the floating-point constants, the closest a graph comes to
PyTorch's parameter count (constants folded from buffers, such as batch norm's running
statistics, count too).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

__all__ = ["GraphCount", "count_graph"]


@dataclass(frozen=True)
class GraphCount:
    flops: int
    params: int
    uncounted: tuple[str, ...]  # OpenVINO operator types that compute but are not counted, e.g. ("Add", "MaxPool")


# Operators that move, reshape, select or describe data without arithmetic (PyTorch's views and
# copies), and the graph's own bookkeeping.
_NO_ARITHMETIC = {
    "Parameter", "Constant", "Result", "Convert", "ConvertLike", "Reshape", "Squeeze", "Unsqueeze", "Transpose",
    "ShapeOf", "Gather", "GatherElements", "GatherND", "StridedSlice", "Slice", "Split", "VariadicSplit",
    "Broadcast", "Tile", "Range", "Concat",
}


def _shape(output) -> list[int]:
    return [int(d) for d in output.get_shape()]


def _op_flops(op) -> int | None:
    """2 x multiply-adds of one counted operator; None for an operator this module does not count."""
    kind = op.get_type_name()
    if kind == "Convolution":
        return 2 * prod(_shape(op.output(0))) * prod(_shape(op.input_value(1))[1:])
    if kind == "GroupConvolution":
        return 2 * prod(_shape(op.output(0))) * prod(_shape(op.input_value(1))[2:])
    if kind in ("ConvolutionBackpropData", "GroupConvolutionBackpropData"):
        data = _shape(op.input_value(0))
        return 2 * data[0] * prod(data[2:]) * prod(_shape(op.input_value(1)))
    if kind == "MatMul":
        a = _shape(op.input_value(0))
        transpose_a = op.get_attributes().get("transpose_a", False)
        shared = a[-2] if transpose_a and len(a) > 1 else a[-1]
        return 2 * prod(_shape(op.output(0))) * shared
    if kind == "ScaledDotProductAttention":
        source = _shape(op.input_value(1))[-2]
        return 2 * prod(_shape(op.input_value(0))) * source + 2 * prod(_shape(op.output(0))) * source
    return None


def count_graph(model) -> GraphCount:
    """Count ``model`` (an ``openvino.Model`` with static shapes); module docstring for the rules."""
    flops = params = 0
    uncounted: set[str] = set()
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind == "Constant":
            if op.get_output_element_type(0).is_real():
                params += prod(_shape(op.output(0)))
            continue
        counted = _op_flops(op)
        if counted is not None:
            flops += counted
        elif kind not in _NO_ARITHMETIC:
            uncounted.add(kind)
    return GraphCount(flops=flops, params=params, uncounted=tuple(sorted(uncounted)))
