"""Start a Python child that imports the very same fff as this process.

``python -m fff.measure.worker`` puts the current directory first on sys.path, so a child started in a
source checkout would import that checkout's ``fff`` (without its compiled ``_native``) instead of
the installed package the parent runs — which is how an installed fff-profile failed in a fresh
clone. ``-P`` (Python >= 3.11) drops that entry, and the directory holding the parent's ``fff`` is
put on PYTHONPATH unless the child finds it anyway (site-packages).
"""

from __future__ import annotations

import os
import site
import sys
from pathlib import Path

__all__ = ["python_module_command", "child_environment"]


def python_module_command(module: str, *args: str) -> list[str]:
    """argv that runs ``python -m module args...`` without the current directory on sys.path."""
    return [sys.executable, "-P", "-m", module, *args]


def child_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment, plus what makes the child import this process's fff."""
    env = {**os.environ, **(extra or {})}
    fff_root = str(Path(__file__).resolve().parents[2])  # the directory holding the fff package
    found_anyway = {str(Path(p).resolve()) for p in [*site.getsitepackages(), site.getusersitepackages()]}
    if fff_root not in found_anyway:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [fff_root, env.get("PYTHONPATH")]))
    return env
