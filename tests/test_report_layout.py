"""The report page in a real browser: at 1400 px nothing makes the page wider than the window.

Uses bench/render_report.py (headless Chromium, a full-page screenshot and the page's scroll
width); skipped where no Chromium is installed.
"""

import importlib.util
import sys
from pathlib import Path

import pytest

from fff.study.config import StudyConfig
from fff.study.sweep import run_study

fakes = sys.modules["study_fakes"]  # loaded by conftest.py


def _render_module():
    path = Path(__file__).parents[1] / "bench" / "render_report.py"
    spec = importlib.util.spec_from_file_location("render_report", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render_report = _render_module()


@pytest.mark.skipif(render_report.browser() is None, reason="no Chromium on PATH (apt-get install chromium)")
def test_report_fits_a_1400_px_window(tmp_path):
    import matplotlib.image

    from fff.report import report

    results = tmp_path / "results.jsonl"
    # Zoo models (the widest table), failed cells (the longest rows), every pattern the fakes know.
    config = StudyConfig(name="layout", patterns=("plain", "dw-bottleneck", "residual", "grouped"), depths=(1, 2),
                         widths=(0.5, 1.0), zoo=("darts", "mobilenet_v2", "resnet18", "explodes"))
    run_study(config, results, measure=fakes.fake_measure)
    page = report([results], tmp_path / "report")
    layout = render_report.render(page, tmp_path / "shots", width=1400)
    assert layout["client_width"] == 1400
    assert layout["scroll_width"] <= layout["client_width"], layout["overflowing"]
    screenshot = matplotlib.image.imread(layout["screenshot"])
    assert screenshot.shape[1] == 1400 and screenshot.shape[0] == layout["page_height"] > 2000
