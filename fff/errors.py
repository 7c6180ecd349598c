"""The one exception family for everything a user can cause.

The CLI turns any ``FffError`` into a one-line message and exit code 2; anything
else escaping is a bug in fff, not in the user's input.
"""

import re

__all__ = [
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
    "allocation_failure",
]


class FffError(Exception):
    """Base class: something the user can fix (input, file, device, environment)."""


class UsageError(FffError):
    """A bad option value: unknown counter name, nonsense number, invalid precision."""


class SpecError(UsageError):
    """A pattern spec string that does not parse or names impossible values."""


class TargetError(UsageError):
    """A target that is neither a zoo name, a spec, a model file nor module:function."""


class ModelFileError(FffError):
    """A model file that is missing, unreadable or not a model."""


class ShapeError(FffError):
    """An input shape that the model cannot take, or a dimension left dynamic."""


class DeviceError(FffError):
    """A device this machine does not have, or a config the device refuses."""


class CompileError(FffError):
    """The runtime could not compile the model (an unsupported op, for example)."""


class ParityError(FffError):
    """The accelerated model does not compute the same function as the original."""


class NonFiniteOutputError(FffError):
    """The user's model itself (on the baseline) computes NaN or infinity: no stack can be compared with it."""


class MeasurementWarning(UserWarning):
    """A result measured under contention, or too noisy for a headline (its verdict says which)."""


# Lines of an OpenVINO error that say where it was raised, not what went wrong. The C++ side
# (concise_reason in cpp/runner.cpp) skips the same kinds of lines but keeps every remaining one,
# joined: its messages come from compile and reshape, where several lines can each matter.
_OPENVINO_LOCATION_LINES = ("Check '", "Exception from ", "FrontEnd API failed")


def openvino_reason(error: BaseException) -> str:
    """The informative line of an OpenVINO error, whose first lines name only the C++ source
    location ("Check '...' failed at src/...cpp:563:"); the reason comes last."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    summary = [line for line in lines if "Conversion is failed for" in line]
    informative = [line for line in lines if not line.startswith(_OPENVINO_LOCATION_LINES)]
    return (summary or informative or lines or [type(error).__name__])[-1]


_TRIED = re.compile(r"tried to allocate (\d+) bytes")


def allocation_failure(error: BaseException) -> int | None:
    """The bytes an allocation asked for when ``error`` is an allocator's refusal (torch's
    "can't allocate memory ... you tried to allocate N bytes", MemoryError); 0 when the size
    is not said; None when ``error`` is something else."""
    if isinstance(error, MemoryError):
        return 0
    text = str(error)
    if not ("can't allocate memory" in text or "DefaultCPUAllocator" in text or "bad_alloc" in text):
        return None
    match = _TRIED.search(text)
    return int(match.group(1)) if match else 0
