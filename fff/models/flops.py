"""FLOPs of one forward pass, and the operators nobody counted.

Convention: FLOPs = 2 x multiply-adds (a multiply-add is two floating-point operations), as
``torch.utils.flop_counter.FlopCounterMode`` counts them; papers that quote "FLOPs" for
multiply-adds (DARTS' 574M, for instance) are quoting half of this number. The count covers one
inference of the whole input batch.

FlopCounterMode has formulas for convolutions and matrix products only. Everything else —
pooling, additions, activations, batch norm, concatenation — runs uncounted; those operators are
listed (``uncounted``) so that a reader knows what the number leaves out. Operators that only
change a tensor's view (reshape, slicing) do no arithmetic and are not listed.

Attention: its two matrix products (Q K^T and the weights times V, 2 x B x heads x L x S x E
each) are counted wherever they run — as ``bmm``/``matmul`` (counted by FlopCounterMode), or inside
a fused operator FlopCounterMode has no CPU formula for, given one here: ``scaled_dot_product_attention``
on the CPU (the two products) and nn.MultiheadAttention's inference fast path
``_native_multi_head_attention`` (its input and output projections, as the linear layers they are,
plus the two products). Softmax, the scaling and masking are elementwise and, like every other
elementwise operator, not counted, fused or not; ``fff.models.graph_flops`` follows the same
convention on an OpenVINO graph (MatMul and ScaledDotProductAttention).

The count runs under ``torch.no_grad``, and outside any ``torch.inference_mode`` the caller may
be in: under inference mode FlopCounterMode sees no operators and returns 0. Convolution and
linear biases are not counted either (FlopCounterMode's formulas leave them out).

The counted pass also names the model's outputs (``fff.models.outputs``): a model returning
something other than tensors is refused there, before anything is converted or timed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from fff.models.outputs import named_outputs

__all__ = ["FlopCount", "count_flops"]


@dataclass(frozen=True)
class FlopCount:
    flops: int
    uncounted: tuple[str, ...]  # e.g. ("aten.add", "aten.max_pool2d_with_indices")
    outputs: tuple[str, ...] = ()  # the output tensors' names, in order (fff.models.outputs)


def _sdpa_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    """The two products of scaled dot-product attention: (B, H, L, E) x (B, H, S, E), then (B, H, S, Ev)."""
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query, key, value)


def _native_mha_flops(query, key, value, embed_dim, num_heads, *args, out_shape=None, **kwargs) -> int:
    """nn.MultiheadAttention's fast path, batch first: the Q, K, V projections, the two products and
    the output projection (biases left out, as for linear layers)."""
    batch, length, width = query
    source = key[1]
    projections = 2 * batch * length * width * width + 2 * 2 * batch * source * width * width
    products = 2 * 2 * batch * length * source * width  # every head's share of the width, summed
    return projections + products + 2 * batch * length * width * width


_FUSED_ATTENTION = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_flops,
                    torch.ops.aten._native_multi_head_attention: _native_mha_flops}


class _RecordingFlopCounter(FlopCounterMode):
    """FlopCounterMode that also remembers the operators it found no formula for.

    ``_count_flops`` is where FlopCounterMode ends up for every operator it could not decompose
    into counted ones, so it sees exactly the uncounted remainder.
    """

    def __init__(self):
        super().__init__(display=False, custom_mapping=_FUSED_ATTENTION)
        self.uncounted: set[str] = set()

    def _count_flops(self, func_packet, out, args, kwargs):
        if func_packet not in self.flop_registry and not _only_changes_view(func_packet):
            self.uncounted.add(str(func_packet))
        return super()._count_flops(func_packet, out, args, kwargs)


def _only_changes_view(func_packet) -> bool:
    overloads = [getattr(func_packet, name) for name in func_packet.overloads()]
    return any(overload.is_view for overload in overloads) or str(func_packet) in _METADATA_ONLY


# Ops that copy or describe a tensor without arithmetic (no view flag, yet no FLOPs to miss).
_METADATA_ONLY = {"aten.clone", "aten._to_copy", "aten.copy_", "aten.empty", "aten.empty_like", "aten.zeros",
                  "aten.detach", "aten.lift_fresh", "aten.contiguous", "aten._unsafe_view",
                  "aten.as_strided_"}


def count_flops(module: torch.nn.Module, example: torch.Tensor, what: str = "the model") -> FlopCount:
    """Run ``module(example)`` once and count its FLOPs (module docstring for the convention);
    a TargetError, naming ``what``, when it returns something other than tensors."""
    counter = _RecordingFlopCounter()
    # inference_mode(False) as well: a caller's inference_mode would hide every operator from the counter.
    with torch.inference_mode(False), torch.no_grad(), counter:
        output = module(example)
    names = tuple(name for name, _ in named_outputs(output, what))
    return FlopCount(flops=int(counter.get_total_flops()), uncounted=tuple(sorted(counter.uncounted)), outputs=names)
