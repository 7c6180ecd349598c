"""The acceleration stacks fff measures, found by name: the registry.

A stack is one class implementing fff.backends.base.Backend. It is named on the command line and
in study files by

- a built-in name (``BUILTIN``: ``torch``, the baseline, ``openvino``, ``onnxruntime``,
  ``torch-compile`` and ``aot-inductor``),
- a name an installed package registers in the entry-point group ``fff.backends``
  (``[project.entry-points."fff.backends"] mystack = "mypackage.stack:MyStack"``), or
- ``package.module:ClassName`` for a stack written outside fff, the spelling targets use.

Everything above the backends (rounds, verdicts, statistics, studies, reports) knows a stack only
through this module: by its name, its class (``backend_class``) and how it is shown
(``backend_label``, ``backend_color``). Modules are imported when a stack is first asked for, so
``fff-profile --help`` and the report never import torch or openvino for a name.
"""

from __future__ import annotations

from functools import lru_cache

from fff.errors import UsageError

__all__ = ["BASELINE", "DEFAULT_BACKENDS", "BUILTIN", "ENTRY_POINT_GROUP", "backend_class", "class_path",
           "registered_names", "backend_label", "backend_color", "backend_cache_model_error", "check_backend_names",
           "stack_name", "stack_precision"]

BASELINE = "torch"  # the native framework every other stack's speed-up is measured against
DEFAULT_BACKENDS = ("torch", "openvino")
BUILTIN = {
    "torch": "fff.backends.torch_eager:TorchBackend",
    "openvino": "fff.backends.openvino.backend:OpenVINOBackend",
    "onnxruntime": "fff.backends.ort.backend:OnnxRuntimeBackend",
    "torch-compile": "fff.backends.torch_compile:TorchCompileBackend",
    "aot-inductor": "fff.backends.aot_inductor:AOTInductorBackend",
}
ENTRY_POINT_GROUP = "fff.backends"

# Figures give a stack its class's colour; a name whose class cannot be imported where the report
# is made (a plugin installed elsewhere) gets one of these, the same one every time.
_FALLBACK_COLORS = ("#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#ff7f0e")


def _entry_points() -> dict[str, str]:
    from importlib.metadata import entry_points

    return {point.name: point.value for point in entry_points(group=ENTRY_POINT_GROUP)}


def registered_names() -> list[str]:
    """Built-in names first, then those installed packages register."""
    return [*BUILTIN, *(name for name in sorted(_entry_points()) if name not in BUILTIN)]


def _where(name: str) -> str:
    """``module:Class`` for a registry name or a ``module:Class`` spelling; UsageError otherwise."""
    if name in BUILTIN:
        return BUILTIN[name]
    registered = _entry_points()
    if name in registered:
        return registered[name]
    if ":" in name:
        return name
    raise UsageError(f"unknown backend {name!r}; choose from {', '.join(registered_names())}, "
                     "or name a class as package.module:ClassName")


@lru_cache(maxsize=None)
def backend_class(name: str):
    """The Backend class ``name`` stands for; a one-line UsageError when there is none, it cannot be
    imported, or it is not a backend."""
    from fff.backends.base import Backend
    from fff.measure.child_process import import_user_module

    where = _where(name)
    module_name, _, class_name = where.partition(":")
    if not module_name or not class_name or ":" in class_name:
        raise UsageError(f"backend {name!r}: expected package.module:ClassName")
    try:
        module = import_user_module(module_name)  # also from the working directory, and for the workers
    except ImportError as error:
        raise UsageError(f"backend {name!r}: cannot import module {module_name!r} ({error})") from None
    except Exception as error:  # noqa: BLE001 - a plugin that crashes on import is the plugin's fault
        raise UsageError(f"backend {name!r}: importing {module_name!r} failed: {type(error).__name__}: "
                         f"{str(error).splitlines()[0] if str(error) else ''}") from None
    cls = module
    for part in class_name.split("."):
        cls = getattr(cls, part, None)
        if cls is None:
            raise UsageError(f"backend {name!r}: module {module_name!r} has no {class_name!r}")
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise UsageError(f"backend {name!r}: {where} is not a backend (a subclass of fff.backends.base.Backend)")
    if not getattr(cls, "name", None):
        raise UsageError(f"backend {name!r}: {where} has no name")
    return cls


def class_path(cls) -> str:
    """``module:Class`` by which a worker process imports ``cls``."""
    return f"{cls.__module__}:{cls.__qualname__}"


def check_backend_names(names) -> tuple[str, ...]:
    """The stacks asked for, each resolved once (a bad one is a one-line error before anything runs)."""
    names = tuple(names)
    if not names:
        raise UsageError(f"no backend given; choose from {', '.join(registered_names())}")
    if len(set(names)) != len(names):
        raise UsageError(f"backend listed twice: {','.join(names)}")
    for name in names:
        backend_class(name)
    return names


def _class_or_none(name: str):
    try:
        return backend_class(name)
    except UsageError:
        return None


def stack_name(backend: str, precision: str | None) -> str:
    """A stack is a backend at a precision: ``openvino`` (f32, the name alone, as before precisions were
    an axis) or ``openvino int8``. Reports compare stacks, so f32 and int8 rows are never pooled."""
    return backend if precision in (None, "", "f32") else f"{backend} {precision}"


def stack_precision(stack: str) -> str:
    """The precision a stack name (stack_name) stands for: ``int8`` for ``openvino int8``, f32 for a name alone."""
    return stack.partition(" ")[2] or "f32"


def _backend_of(stack: str) -> tuple[str, str]:
    """(backend, ' precision' or '') of a stack name; registry and module:Class names have no spaces."""
    backend, _, precision = stack.partition(" ")
    return backend, f" {precision}" if precision else ""


def backend_label(name: str) -> str:
    """How a report names the stack (``PyTorch eager``, ``OpenVINO (CPU) int8``); the name itself when
    its class is not here."""
    backend, precision = _backend_of(name)
    cls = _class_or_none(backend)
    return (getattr(cls, "label", None) or backend) + precision


def backend_cache_model_error(name: str) -> str:
    """The bench's figure of the cache model's error on the stack (Backend.cache_model_error)."""
    cls = _class_or_none(_backend_of(name)[0])
    return getattr(cls, "cache_model_error", "") or "no bench figure for this stack"


def backend_color(name: str) -> str:
    """The stack's colour in every figure: its backend's, darker at another precision than f32."""
    backend, precision = _backend_of(name)
    cls = _class_or_none(backend)
    if cls is not None and getattr(cls, "color", None):
        color = cls.color
    else:
        color = _FALLBACK_COLORS[sum(map(ord, backend)) % len(_FALLBACK_COLORS)]
    if not precision or not (color.startswith("#") and len(color) == 7):
        return color
    return "#" + "".join(f"{int(int(color[i:i + 2], 16) * 0.55):02x}" for i in (1, 3, 5))
