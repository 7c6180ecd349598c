"""The built-in since-2021 study: the new forms in a study, and the report draws them."""

import sys

from fff.models import PATTERNS, ZOO
from fff.study.config import BUILTIN_STUDIES, StudyConfig, default_study, load_study
from fff.study.sweep import run_study

fakes = sys.modules["study_fakes"]  # loaded by conftest.py


def test_since_2021_is_a_built_in_study_with_the_new_forms(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no file of that name here: the built-in study
    study = load_study("since-2021")
    assert study.name == "since-2021" and "(built-in)" in study.source
    assert {"transformer", "convnext", "mobilevit"} <= set(study.patterns) <= set(PATTERNS)
    assert {"vit_b_16", "swin_t", "convnext_tiny", "maxvit_t", "efficientnet_v2_s"} <= set(study.zoo) <= set(ZOO)
    assert study.breakdown and study.precisions == ("f32",)
    assert load_study("default").patterns == default_study().patterns and set(BUILTIN_STUDIES) == {"default", "stacks",
                                                                                                 "since-2021"}
    # the default study is the paper's experiment, left as it was (the cost is said in since2021.toml)
    assert "transformer" not in default_study().patterns


def test_report_draws_the_new_patterns_and_models(tmp_path, capsys):
    from fff.cli.report import main

    results = tmp_path / "r.jsonl"
    config = StudyConfig(name="synthetic", patterns=("transformer", "convnext", "mobilevit", "dw-bottleneck"),
                         depths=(1, 2), widths=(0.5,), zoo=("vit_b_16", "mobilenet_v2"))
    run_study(config, results, measure=fakes.fake_measure, fingerprint="cccccccc33333333")
    out = tmp_path / "report"
    assert main([str(results), "--out", str(out)]) == 0
    capsys.readouterr()
    page = (out / "index.html").read_text()
    for name in ("transformer", "convnext", "mobilevit", "vit_b_16"):
        assert name in page, name
    assert (out / "speedup_per_pattern.png").stat().st_size > 1000
    rows = (out / "records.csv").read_text().splitlines()
    assert sum("transformer:depth=" in row for row in rows) == 4  # 2 cells x 2 stacks
    assert sum(",vit_b_16," in row for row in rows) == 2  # 1 cell x 2 stacks
