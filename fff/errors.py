"""The one exception family for everything a user can cause.

The CLI turns any ``FffError`` into a one-line message and exit code 2; anything
else escaping is a bug in fff, not in the user's input.
"""

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
