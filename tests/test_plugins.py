"""Stacks written outside fff: the fff.backends entry-point group, and bad plugins as one-line errors."""

import os
import subprocess
import sys
import textwrap

import pytest

TINY = "plain:depth=1,width=0.25,resolution=32"

CRASHING = textwrap.dedent('''
    from fff.backends.base import Backend


    class InInit(Backend):
        name = "in-init"

        def __init__(self, **options):
            super().__init__(**options)
            raise RuntimeError("no accelerator here")


    class InInfer(Backend):
        name = "in-infer"

        def infer(self):
            raise ValueError("kernel missing")
''')


@pytest.fixture(scope="module")
def plugins(tmp_path_factory):
    """A working directory holding plugin modules, as a user keeps them beside their models."""
    directory = tmp_path_factory.mktemp("plugins")
    (directory / "crashing.py").write_text(CRASHING)
    (directory / "broken_plugin.py").write_text('raise RuntimeError("boom at import")\n')
    return directory


def fff_profile(*args, cwd):
    # -P: like the fff-profile console script, the working directory is not on sys.path.
    return subprocess.run([sys.executable, "-P", "-m", "fff.cli.profile", *args], cwd=cwd, capture_output=True,
                          text=True, errors="replace", timeout=600,
                          env={**os.environ, "FFF_CACHE_DIR": str(cwd / "cache")})


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("fff-profile: error:")]


@pytest.mark.parametrize("backend, message", [
    ("nosuchmodule:X", "backend 'nosuchmodule:X': cannot import module 'nosuchmodule' (No module named 'nosuchmodule')"),
    ("fff.models:Nope", "backend 'fff.models:Nope': module 'fff.models' has no 'Nope'"),
    ("fff.models:build", "backend 'fff.models:build': fff.models:build is not a backend (a subclass of "
                         "fff.backends.base.Backend)"),
    ("broken_plugin:Stack", "backend 'broken_plugin:Stack': importing 'broken_plugin' failed: RuntimeError: boom at import"),
    ("nosuchname", "unknown backend 'nosuchname'; choose from torch, openvino"),
])
def test_a_bad_plugin_is_one_line_before_anything_is_built(plugins, backend, message):
    result = fff_profile(TINY, "--backends", f"torch,{backend}", "--max-time", "1", cwd=plugins)
    assert result.returncode == 2
    # Nothing but the error: no progress line, so no model was built and no worker started.
    [line] = result.stderr.splitlines()
    assert line.startswith(f"fff-profile: error: {message}"), line


@pytest.mark.parametrize("backend, message", [
    ("crashing:InInit", "crashing:InInit worker failed during 'init': RuntimeError: no accelerator here"),
    ("crashing:InInfer", "crashing:InInfer worker failed during 'prepare': ValueError: kernel missing"),
])
@pytest.mark.slow
def test_a_plugin_that_crashes_is_one_line_naming_it(plugins, backend, message):
    result = fff_profile(TINY, "--backends", f"torch,{backend}", "--threads", "1", "--max-time", "1", "--quiet",
                         cwd=plugins)
    assert result.returncode == 2
    assert error_lines(result) == [f"fff-profile: error: {message}"], result.stderr
    assert "Traceback" not in result.stderr


ENTRY_POINT_STACK = textwrap.dedent('''
    from fff.backends.base import Backend


    class Stack(Backend):
        name = "ep-stack"
        label = "A stack an installed package registers"
''')


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """A package installed in ``tmp_path`` (its dist-info declares the entry point), on sys.path."""
    from fff.backends import backend_class
    from fff.measure import child_process

    (tmp_path / "ep_plugin.py").write_text(ENTRY_POINT_STACK)
    info = tmp_path / "ep_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[fff.backends]\nep-stack = ep_plugin:Stack\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(child_process, "_user_roots", [])  # what this test imports stays out of later children
    monkeypatch.delitem(sys.modules, "ep_plugin", raising=False)
    backend_class.cache_clear()
    yield tmp_path
    backend_class.cache_clear()
    sys.modules.pop("ep_plugin", None)


def test_an_entry_point_names_a_stack(installed_plugin):
    from fff.backends import BUILTIN, backend_class, backend_label, registered_names
    from fff.measure.child_process import child_environment

    names = registered_names()
    assert names[:len(BUILTIN)] == list(BUILTIN) and "ep-stack" in names[len(BUILTIN):]
    cls = backend_class("ep-stack")
    assert (cls.__module__, cls.__name__, cls.name) == ("ep_plugin", "Stack", "ep-stack")
    assert backend_label("ep-stack") == "A stack an installed package registers"
    # The workers (python -P, a fresh sys.path) find the module where this process found it.
    assert str(installed_plugin.resolve()) in child_environment()["PYTHONPATH"].split(os.pathsep)


def test_fff_profile_list_shows_an_entry_point(installed_plugin):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(installed_plugin),
                                                                     os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-P", "-m", "fff.cli.profile", "--list"], cwd=installed_plugin, env=env,
                         capture_output=True, text=True, check=True).stdout
    assert "  ep-stack" in out and "A stack an installed package registers" in out
