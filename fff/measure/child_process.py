"""Start a Python child that imports the very same fff as this process, and the user's modules it imported.

``python -m fff.measure.worker`` puts the current directory first on sys.path, so a child started in a
source checkout would import that checkout's ``fff`` (without its compiled ``_native``) instead of
the installed package the parent runs — which is how an installed fff-profile failed in a fresh
clone. ``-P`` (Python >= 3.11) drops that entry, and the directory holding the parent's ``fff`` is
put on PYTHONPATH unless the child finds it anyway (site-packages).

A user's module (a ``module:function`` target, a ``module:Class`` backend) is imported with
``import_user_module`` in the parent and in every child: the working directory, which console
scripts and ``-P`` children lack, is searched last, and a directory the parent found one in by
other means (a notebook's ``sys.path.append``) goes on the child's PYTHONPATH.
"""

from __future__ import annotations

import os
import site
import sys
from importlib import import_module
from pathlib import Path

__all__ = ["python_module_command", "child_environment", "import_user_module", "user_module_roots"]

_user_roots: list[str] = []  # directories this process imported user modules from, for its children


def python_module_command(module: str, *args: str) -> list[str]:
    """argv that runs ``python -m module args...`` without the current directory on sys.path."""
    return [sys.executable, "-P", "-m", module, *args]


def _found_anyway() -> set[str]:
    return {str(Path(p).resolve()) for p in [*site.getsitepackages(), site.getusersitepackages()]}


def _standard_dirs() -> set[str]:
    """Where every child finds modules by itself: the standard library and site-packages."""
    import sysconfig

    stdlib = sysconfig.get_path("platstdlib")
    dirs = [sysconfig.get_path(key) for key in ("stdlib", "platstdlib", "purelib", "platlib")]
    return {str(Path(d).resolve()) for d in [*dirs, os.path.join(stdlib, "lib-dynload")]} | _found_anyway()


def _fff_root() -> str:
    return str(Path(__file__).resolve().parents[2])  # the directory holding the fff package


def child_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment, plus what makes the child import this process's fff and user modules."""
    env = {**os.environ, **(extra or {})}
    found_anyway = _found_anyway()
    paths = [path for path in [_fff_root(), *_user_roots] if path not in found_anyway]
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [*dict.fromkeys(paths), env.get("PYTHONPATH")]))
    return env


def user_module_roots() -> tuple[str, ...]:
    """The directories children get on PYTHONPATH for the user's modules imported so far. A long-lived
    child (the builder) started before one more was added cannot import that module: it is restarted."""
    return tuple(_user_roots)


def import_user_module(name: str):
    """``import name``, also from the working directory, remembering where it was found for the children.

    The working directory is searched last (appended, so that it shadows nothing installed): a
    user keeps a ``module:Class`` backend or ``module:function`` target there and runs
    fff-profile, a console script, whose sys.path does not have it; the children inherit the
    directory and search it the same way. A module found elsewhere outside site-packages and fff
    (a directory the user put on sys.path) puts that directory on the children's PYTHONPATH."""
    try:
        module = import_module(name)
    except ModuleNotFoundError as error:
        here = os.getcwd()
        if error.name != name.split(".")[0] or here in sys.path:
            raise
        sys.path.append(here)
        module = import_module(name)
    top = sys.modules[name.split(".")[0]]
    locations = getattr(top.__spec__, "submodule_search_locations", None)
    where = next(iter(locations), None) if locations else getattr(top, "__file__", None)
    if where:
        root = str(Path(where).resolve().parent)
        if root not in {str(Path.cwd().resolve()), _fff_root(), *_standard_dirs(), *_user_roots}:
            _user_roots.append(root)
    return module
