"""Models to measure: design patterns on a shared skeleton, a zoo of hand-crafted and
search-found architectures, and the user's own models; ``build(target) -> Model``.

Names resolve on first use (PEP 562): most of them import torch, but ``fff.models.names``
(what ``fff-profile --list`` shows) must stay importable without it.
"""

from importlib import import_module

# Public name -> submodule that defines it.
_LAZY = {
    "build": "fff.models.targets",
    "Model": "fff.models.targets",
    "DEFAULT_TARGET": "fff.models.names",
    "TARGET_KINDS": "fff.models.target_check",
    "check_target": "fff.models.target_check",
    "list_targets": "fff.models.names",
    "PATTERNS": "fff.models.patterns",
    "PatternNet": "fff.models.patterns",
    "ZOO": "fff.models.zoo",
    "Spec": "fff.models.spec",
    "parse_spec": "fff.models.spec",
}

__all__ = ["build", "Model", "list_targets", "DEFAULT_TARGET", "TARGET_KINDS", "check_target", "PATTERNS", "PatternNet", "ZOO",
           "Spec", "parse_spec"]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fff.models' has no attribute {name!r}")
    value = getattr(import_module(module), "parse" if name == "parse_spec" else name)
    globals()[name] = value
    return value
