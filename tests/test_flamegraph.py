"""The Python-versus-native split of the baseline's samples."""

import pytest

from fff.explain.flamegraph import python_share


def test_share_counts_innermost_frames_by_kind():
    speedscope = {
        "shared": {"frames": [
            {"name": "forward", "file": "/site-packages/torch/nn/modules/conv.py"},
            {"name": "at::native::conv", "file": "/site-packages/torch/lib/libtorch_cpu.so"},
            {"name": "0x7f00", "file": "/site-packages/torch/lib/libgomp.so.1"},
        ]},
        "profiles": [
            {"samples": [[0], [0, 1], [0, 1], [0, 2]], "weights": [1, 1, 1, 1]},
            {"samples": [[0, 1], []], "weights": [2, 5]},  # an empty stack carries no information
        ],
    }
    share = python_share(speedscope)
    assert share["samples"] == 5
    assert share["python_share"] == pytest.approx(1 / 6)
    assert share["native_share"] == pytest.approx(5 / 6)
    assert share["native_by_library"] == {"libtorch_cpu.so": pytest.approx(4 / 6), "libgomp.so.1": pytest.approx(1 / 6)}


def test_no_samples_is_unknown_not_zero():
    share = python_share({"shared": {"frames": []}, "profiles": [{"samples": [], "weights": []}]})
    assert share["python_share"] is None and share["native_share"] is None


def test_retitle_replaces_py_spys_command_line(tmp_path):
    from fff.explain.flamegraph import retitle

    svg = tmp_path / "f.svg"
    # The element as py-spy 0.4 writes it.
    svg.write_text('<svg><rect/><text id="title" fill="rgb(0,0,0)" x="50.0000%" y="24.00">/venv/bin/py-spy record '
                   '--pid 14653 --rate 100 --format flamegraph -o /tmp/x.svg --native</text><text id="details"> </text>'
                   '</svg>')
    retitle(svg, "dw-bottleneck:depth=1 on torch <eager>")
    text = svg.read_text()
    assert '<text id="title" fill="rgb(0,0,0)" x="50.0000%" y="24.00">dw-bottleneck:depth=1 on torch &lt;eager&gt;</text>' \
        in text
    assert "--pid" not in text and '<text id="details"> </text>' in text
