"""A model's output as named tensors: one tensor, or a tuple, list or dict of them (one level).

Segmentation networks return a dict (torchvision's ``{"out": ..., "aux": ...}``), detection and
multi-task heads a tuple or list. fff times the whole model and compares every output, so it needs
the output flattened into a fixed order with a name per tensor: a tuple's or list's positions
(``"0"``, ``"1"``, ...), a dict's keys in their order (the order ``ov.convert_model`` gives the IR's
outputs too), ``"output"`` for a lone tensor. Anything else (None, a number, a string, a dict of
tuples) is refused with what it was, before anything is timed.

Duck-typed (a tensor is anything with ``detach``), so that it needs no torch import.
"""

from __future__ import annotations

from fff.errors import TargetError

__all__ = ["named_outputs", "describe"]

SINGLE_NAME = "output"


def _is_tensor(value) -> bool:
    return hasattr(value, "detach") and hasattr(value, "shape")


def describe(value) -> str:
    """What ``value`` is, for an error message: ``tuple of (Tensor, str)``, ``NoneType``, ..."""
    if isinstance(value, (tuple, list)):
        kinds = ", ".join(dict.fromkeys(type(v).__name__ for v in value))
        return f"{type(value).__name__} of ({kinds})" if value else f"empty {type(value).__name__}"
    if isinstance(value, dict):
        kinds = ", ".join(dict.fromkeys(type(v).__name__ for v in value.values()))
        return f"dict of ({kinds})" if value else "empty dict"
    return type(value).__name__


def named_outputs(output, what: str = "the model") -> list[tuple[str, object]]:
    """``[(name, tensor), ...]`` of ``output`` (module docstring); a TargetError naming what it was
    when it is not a tensor or a non-empty tuple, list or dict of tensors."""
    if _is_tensor(output):
        return [(SINGLE_NAME, output)]
    if isinstance(output, (tuple, list)) and output and all(_is_tensor(v) for v in output):
        return [(str(i), v) for i, v in enumerate(output)]
    if isinstance(output, dict) and output and all(_is_tensor(v) for v in output.values()):
        return [(str(k), v) for k, v in output.items()]
    raise TargetError(f"{what} returned {describe(output)}; fff times models that return a tensor, or a tuple, "
                     "list or dict of tensors (one level)")
