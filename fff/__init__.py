"""fff — form follows function.

How much does hardware-specific acceleration (OpenVINO, or any stack behind
fff.Backend) speed a neural network up over its native framework (PyTorch), and why?

Heavy modules (torch, openvino, matplotlib) are imported only where they are used,
so that importing fff, and ``fff-profile --help``, stay instant.
"""

from importlib import import_module

from fff.errors import (
    CompileError,
    DeviceError,
    FffError,
    MeasurementWarning,
    ModelFileError,
    NonFiniteOutputError,
    ParityError,
    ShapeError,
    SpecError,
    TargetError,
    UsageError,
)

__version__ = "0.1.0"

# Public name -> module that defines it; resolved on first use (PEP 562).
_LAZY = {
    "Runner": "fff.backends.openvino.runner",
    "RunResult": "fff.backends.openvino.runner",
    "count": "fff.measure.counters",
    "CounterResult": "fff.measure.counters",
    "CounterResults": "fff.measure.counters",
    "known_counters": "fff.measure.counters",
    "simulate_cache": "fff.explain.cache_sim",
    "SimulationResult": "fff.explain.cache_sim",
    "Backend": "fff.backends.base",
    "profile": "fff.profiling",
    "ProfileOptions": "fff.profiling",
    "build": "fff.models",
    "Model": "fff.models",
    "list_targets": "fff.models",
    "DEFAULT_TARGET": "fff.models",
    "convert": "fff.backends.openvino.conversion",
    "Parity": "fff.measure.parity",
    "compare": "fff.measure.parity",
    "check_parity": "fff.measure.parity",
    "study": "fff.study",
    "load_results": "fff.analysis",
    "report": "fff.report",
}

__all__ = [
    "__version__",
    "FffError",
    "UsageError",
    "SpecError",
    "TargetError",
    "ModelFileError",
    "ShapeError",
    "DeviceError",
    "CompileError",
    "ParityError",
    "NonFiniteOutputError",
    "MeasurementWarning",
    *_LAZY,
]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fff' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
