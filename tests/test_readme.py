"""The README's Python examples run as written and show what they claim."""

import contextlib
import io
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fff.measure.counters import STATUSES

README = Path(__file__).resolve().parent.parent / "README.md"


def section(title: str) -> str:
    """The README's text under ``## title``, up to the next ``## ``."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README.read_text(), flags=re.S | re.M)
    assert match, f"README has no section '## {title}'"
    return match[1]


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.S | re.M)


@pytest.mark.slow
def test_readme_python_example_runs(tmp_path, monkeypatch):
    blocks = python_blocks(section("Using it"))
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FFF_CACHE_DIR", str(tmp_path / "cache"))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(blocks[0], "README.md", "exec"), {})
    lines = printed.getvalue().splitlines()
    assert "openvino" in printed.getvalue() and "torch" in printed.getvalue()
    assert lines[-2].endswith("f32")  # the runner's effective precision
    task_clock, llc_status = lines[-1].split(maxsplit=1)
    assert float(task_clock) > 0
    assert llc_status in STATUSES


@pytest.mark.slow
def test_readme_backend_example_runs_beside_the_baseline(tmp_path):
    text = section("Adding a backend")
    (tmp_path / "example_backend.py").write_text(python_blocks(text)[0])
    assert "fff-profile mobilenet_v2 --backends torch,openvino,example_backend:TorchScriptBackend" in text
    plugin = "example_backend:TorchScriptBackend"
    # -P: like the fff-profile console script, the working directory is not on sys.path.
    result = subprocess.run([sys.executable, "-P", "-m", "fff.cli.profile", "plain:depth=1,width=0.25,resolution=32",
                             "--backends", f"torch,{plugin}", "--threads", "1", "--max-time", "3",
                             "--min-rounds", "2", "--json", "out.json"],
                            cwd=tmp_path, capture_output=True, text=True, errors="replace", timeout=600,
                            env={**os.environ, "FFF_CACHE_DIR": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr
    torch_record, record = json.loads((tmp_path / "out.json").read_text())
    assert (torch_record["backend"], record["backend"]) == ("torch", plugin)
    assert record["parity"]["ok"] is True and record["parity"]["max_rel_err"] < 1e-4
    assert isinstance(record["speedup"], float) and math.isfinite(record["speedup"]) and record["speedup"] > 0
    assert record["latency_ms"]["median"] > 0 and record["device"] == "CPU" and record["precision"] == "f32"
    config = record["config"]
    assert config["threads"] == 1 and config["frozen_parameters"] == 0 and config["graph_nodes"] > 0
    # What the minimal stack lacks is said, never a zero.
    assert "no tracer" in record["cache_model"]["not_modelled"] and "modelled_counters" not in record
    assert "no arithmetic intensity" in record["roofline"]["note"]
    assert re.search(rf"{plugin}\s+modelled\s+-\s+not modelled: torchscript", result.stdout), result.stdout
