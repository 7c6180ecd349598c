"""The README's Python example runs as written and shows what it claims."""

import contextlib
import io
import re
from pathlib import Path

from fff.measure.counters import STATUSES

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_example_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"^```python\n(.*?)^```$", README.read_text(), flags=re.S | re.M)
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
