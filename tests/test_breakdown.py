"""Per-layer breakdown: the layers of known patterns land in the expected categories in both
backends, fused Conv+BN+ReLU counts for the conv, coverage and overhead are stated and sane."""

import json
import sys
from collections import Counter

import pytest

from fff.explain.breakdown import (category_of_ov_type, compare, openvino_breakdown, parse_ov_name, torch_breakdown,
                                   window_means)

# Floors, not targets. On a quiet machine these tiny models give about 0.7 (OpenVINO: the rest is
# the request's own work and the plugin's 1 us truncation per node) and 0.6-0.9 (PyTorch: the rest
# is Python between operators, the framework-overhead line). A single-threaded run that the
# scheduler preempts between layers adds time to the end-to-end latency and to no layer, so the
# floors leave room for a machine loaded several times over; an attribution that lost whole layers
# would still fall below them.
OPENVINO_COVERAGE_FLOOR = 0.3
TORCH_COVERAGE_FLOOR = 0.1

# dw-bottleneck at depth 1: stem (3x3 conv, BN, ReLU), four inverted residuals (1x1 expand, BN,
# ReLU6, 3x3 depthwise, BN, ReLU6, 1x1 project, BN), pool, flatten, linear.
DW_BOTTLENECK_LAYERS = {"dense conv kxk": 1, "pointwise conv 1x1": 8, "depthwise conv": 4, "normalization": 13,
                        "activation": 9, "pooling": 1, "data movement": 1, "linear/matmul": 1}


def _profiles(target, tmp_path_factory):
    """Both backends' raw profiles of one small model, one thread each, each in a worker process of
    its own as fff-profile runs them (in one process, OpenVINO's threads would slow PyTorch's)."""
    from fff.backends import BUILTIN
    from fff.backends.base import fixed_seed_input
    from fff.backends.openvino.conversion import convert
    from fff.models import build
    from fff.measure.worker import Worker

    # 64 px: the smallest nodes still take several of the plugin's 1 us ticks, so truncation does
    # not dominate coverage (at 32 px it read 0.17 on a loaded machine)
    build_options = {"resolution": 64}
    model = build(target, **build_options)
    xml = convert(model, cache_dir=tmp_path_factory.mktemp("ir"))
    common = dict(target=target, build_options=build_options, artifact={"xml": str(xml)},
                  input_shape=list(model.input_shape), device="CPU", threads=1, precision="f32")
    profiles = []
    for backend in ("torch", "openvino"):
        with Worker(backend, served=BUILTIN[backend], env={"OMP_NUM_THREADS": "1"}, **common) as worker:
            worker.call("prepare", inputs=[fixed_seed_input(model.input_shape)], warmup=2)
            profiles.append(worker.call("breakdown", iterations=5))
    return profiles


@pytest.fixture(scope="module")
def dw_bottleneck(tmp_path_factory):
    return _profiles("dw-bottleneck:depth=1,width=0.5", tmp_path_factory)


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    return _profiles("plain:depth=1,width=0.5", tmp_path_factory)


def _layer_categories(breakdown):
    return Counter(row["category"] for row in breakdown["layers"])


@pytest.mark.slow
def test_dw_bottleneck_layers_fall_in_the_expected_categories_in_pytorch(dw_bottleneck):
    result = torch_breakdown(dw_bottleneck[0])
    assert dict(_layer_categories(result)) == DW_BOTTLENECK_LAYERS
    assert all(row["ms"] > 0 for row in result["layers"])
    assert result["framework_overhead_ms"] > 0  # Python and dispatch between operators: never free
    assert result["categories"]["framework overhead"] == result["framework_overhead_ms"]
    assert TORCH_COVERAGE_FLOOR < result["coverage"] <= 1.0
    assert {row["flops"] for row in result["layers"] if row["layer"] == "stem.0"} == {2 * 32 * 32 * 16 * 3 * 9}


@pytest.mark.slow
def test_dw_bottleneck_in_openvino_is_attributed_to_the_same_layers(dw_bottleneck):
    raw_torch, raw_openvino = dw_bottleneck
    result = openvino_breakdown(raw_openvino, raw_torch)
    executed = Counter(row["category"] for row in result["layers"] if row["nodes"])
    # every convolution and the classifier run as nodes of their own; batch norm is folded into the
    # weights at conversion and the activations into the convolutions, so neither takes time
    # (the pool of a 4x4 map can take under the plugin's 1 us resolution: counted, not timed)
    assert executed["pointwise conv 1x1"] == 8 and executed["depthwise conv"] == 4
    assert executed["dense conv kxk"] == 1 and executed["linear/matmul"] == 1 and executed["pooling"] == 1
    assert all(result["categories"][c] > 0 for c in ("pointwise conv 1x1", "depthwise conv", "dense conv kxk"))
    assert result["categories"].get("normalization", 0.0) == 0.0
    assert result["categories"].get("activation", 0.0) == 0.0
    assert 0 < result["coverage"] < 2.0
    # Against the mean latency, coverage falls when other jobs preempt the inferences between nodes
    # (0.13 at load average 15 on 2 cores); against the fastest profiled inference it says what is
    # meant whatever the load: the attributed nodes account for a good share of an inference.
    node_ns, _ = window_means(raw_openvino)
    assert OPENVINO_COVERAGE_FLOOR < sum(node_ns.values()) / min(raw_openvino["latencies_ns"][1:])
    kernels = {kernel for row in result["layers"] for kernel in row["exec_types"]}
    assert kernels and all(kernel and kernel != "undef" for kernel in kernels)
    # what could not be attributed is listed, not dropped: here only layout reorders the plugin added
    assert all(row["type"] == "Reorder" for row in result["unattributed"])


def test_fused_conv_bn_relu_is_attributed_to_the_convs_layer(dw_bottleneck):
    raw_torch, raw_openvino = dw_bottleneck
    result = openvino_breakdown(raw_openvino, raw_torch)
    layers = {row["layer"]: row for row in result["layers"]}
    stem_conv = layers["stem.0"]
    assert stem_conv["ms"] > 0 and stem_conv["category"] == "dense conv kxk"
    assert stem_conv["rule"] == "graph"  # its name was replaced when the batch norm was folded in
    assert layers["stem.2"]["fused_into"] == "stem.0" and layers["stem.2"]["ms"] == 0.0
    assert layers["stages.0.0.conv.1.2"]["fused_into"] == "stages.0.0.conv.1.0"
    relu_nodes = [n for n in result["not_run"] if n["layer"] == "stem.2"]
    assert relu_nodes and relu_nodes[0]["status"] == "NOT_RUN"  # kept, with its status


@pytest.mark.slow
def test_plain_pattern_has_only_dense_convs_and_compares_layer_by_layer(plain):
    raw_torch, raw_openvino = plain
    base, fast = torch_breakdown(raw_torch), openvino_breakdown(raw_openvino, raw_torch)
    convs = [row for row in base["layers"] if "conv" in row["category"]]
    assert convs and {row["category"] for row in convs} == {"dense conv kxk"}
    assert _layer_categories(base)["normalization"] == len(convs)
    comparison = compare(base, fast)
    rows = {row["category"]: row for row in comparison["categories"]}
    assert rows["dense conv kxk"]["baseline_ms"] > 0 and rows["dense conv kxk"]["accelerated_ms"] > 0
    assert sum(row["share_of_saved"] for row in comparison["categories"]) == pytest.approx(1.0)
    by_layer = {row["layer"]: row for row in comparison["layers"]}
    assert all(by_layer[row["layer"]]["accelerated_ms"] > 0 for row in convs)


def test_names_and_fallback_categories():
    assert parse_ov_name("__module.stages.0.0.conv.1.2/aten::hardtanh_/Clamp") == ("stages.0.0.conv.1.2",
                                                                                    "aten::hardtanh_")
    assert parse_ov_name("aten::flatten/Reshape") == ("", "aten::flatten")
    assert parse_ov_name("Multiply_4773") is None
    assert category_of_ov_type("GroupConvolution", [96, 1, 3, 3, 96, 1, 96, 8, 8]) == "depthwise conv"
    assert category_of_ov_type("GroupConvolution", [64, 16, 3, 3, 4, 1, 64, 8, 8]) == "grouped conv"
    assert category_of_ov_type("Convolution", [96, 16, 1, 1, 1, 1, 96, 16, 16]) == "pointwise conv 1x1"
    assert category_of_ov_type("Reorder") == "data movement"


def test_fused_node_without_a_module_name_is_matched_by_signature():
    """Synthetic profiles: the rules, without a model."""
    torch_raw = {
        "modules": {"": {"module_type": "Net", "leaf": False, "flops": 0},
                    "a": {"module_type": "Conv2d", "leaf": True, "flops": 10, "groups": 1, "in_channels": 3,
                          "out_channels": 8, "kernel": [3, 3]},
                    "b": {"module_type": "BatchNorm2d", "leaf": True, "flops": 0},
                    "c": {"module_type": "ReLU", "leaf": True, "flops": 0}},
        "conv_calls": [{"path": "a", "signature": [8, 3, 3, 3, 1, 1, 8, 4, 4]}],
        "iterations": [[["a", "aten::conv2d", 3000.0], ["b", "aten::batch_norm", 1000.0],
                        ["c", "aten::relu_", 500.0], ["", "aten::flatten", 100.0]]] * 3,
        "latencies_ns": [6000.0] * 3,
    }
    node = {"node_name": "Multiply_7", "node_type": "Convolution", "exec_type": "jit_f32", "status": "EXECUTED",
            "real_time_ns": 1000.0, "cpu_time_ns": 1000.0}
    relu = {"node_name": "__module.c/aten::relu_/Relu", "node_type": "Relu", "exec_type": "undef",
            "status": "NOT_RUN", "real_time_ns": 0.0, "cpu_time_ns": 0.0}
    reorder = {"node_name": "x_abcd_acdb_Multiply_7", "node_type": "Reorder", "exec_type": "jit", "status":
               "EXECUTED", "real_time_ns": 200.0, "cpu_time_ns": 200.0}
    openvino_raw = {"iterations": [[reorder, node, relu]] * 3, "latencies_ns": [1500.0] * 3,
                    "original_names": {"Multiply_7": "Multiply_7,__module.c/aten::relu_/Relu",
                                       "x_abcd_acdb_Multiply_7": ""},
                    "convs": [{"name": "Multiply_7", "signature": [8, 3, 3, 3, 1, 1, 8, 4, 4]}]}
    base = torch_breakdown(torch_raw, reported_ms=0.005)
    assert base["framework_overhead_ms"] == pytest.approx(0.0014)
    assert base["slowdown"] == pytest.approx(1.2)
    assert base["coverage"] == pytest.approx(4600 / 6000)
    fast = openvino_breakdown(openvino_raw, torch_raw)
    layers = {row["layer"]: row for row in fast["layers"]}
    assert layers["a"]["ms"] == pytest.approx(0.001) and layers["a"]["rule"] == "graph"
    assert layers["c"]["fused_into"] == "a"
    assert fast["unattributed"] == [{"node": "x_abcd_acdb_Multiply_7", "type": "Reorder", "ms": 0.0002}]
    assert fast["coverage"] == pytest.approx(1200 / 1500)
    comparison = compare(base, fast)
    notes = {row["layer"]: row["note"] for row in comparison["layers"]}
    assert notes["b"].startswith("no node") and notes["c"] == "fused into a"


@pytest.mark.slow
def test_cli_breakdown_prints_categories_and_layers_and_json_has_the_field(tmp_path, capsys):
    from fff.cli.profile import main

    path = tmp_path / "out.json"
    code = main(["dw-bottleneck:depth=1,width=0.5,resolution=32", "--threads", "1", "--max-time", "1",
                 "--min-rounds", "2", "--breakdown", "--json", str(path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "per-layer breakdown: dw-bottleneck" in out and "framework overhead" in out
    assert "most of the time saved:" in out and "top layers" in out and "coverage" in out
    records = json.loads(path.read_text())
    assert {r["backend"] for r in records if "breakdown" in r} == {"torch", "openvino"}
    openvino = next(r for r in records if r["backend"] == "openvino")["breakdown"]
    assert openvino["slowdown"] > 0 and openvino["comparison"]["categories"]


@pytest.mark.slow
def test_report_draws_breakdown_figures(tmp_path):
    import matplotlib.image

    from fff.report import report
    from fff.study.config import StudyConfig
    from fff.study.sweep import run_study

    fakes = sys.modules["study_fakes"]

    def measure(target, options, progress=lambda _: None):
        records = fakes.fake_measure(target, options, progress)
        for record in records:
            total = record["latency_ms"]["median"]
            if record["backend"] == "torch":
                shares = {"pointwise conv 1x1": 0.4, "normalization": 0.2, "framework overhead": 0.4}
            else:
                shares = {"pointwise conv 1x1": 0.9, "data movement": 0.1}
            record["breakdown"] = {"categories": {c: s * total for c, s in shares.items()}, "coverage": 0.9,
                                   "slowdown": 1.3}
        return records

    results = tmp_path / "r.jsonl"
    run_study(StudyConfig(patterns=("plain", "dw-bottleneck"), depths=(1, 2)), results, measure=measure,
              fingerprint="cccccccc33333333")
    page = report([results], tmp_path / "report")
    html = page.read_text()
    for stem in ("breakdown_per_pattern", "breakdown_time_saved"):
        pixels = matplotlib.image.imread(tmp_path / "report" / f"{stem}.png")
        assert pixels.shape[1] >= 300 and pixels.std() > 0.01
        assert f"{stem}.png" in html

    from fff.analysis import load_results
    from fff.report.breakdown_figures import saved_shares

    shares = saved_shares(load_results([results]).breakdowns).set_index(["group", "category"])["share"]
    # torch 1.0 of its time vs openvino 1/speed-up: the saved time splits by the categories' differences
    assert shares.groupby(level="group").sum().round(6).tolist() == [1.0, 1.0]
    assert shares[("plain", "framework overhead")] > shares[("plain", "pointwise conv 1x1")] or \
        shares[("plain", "pointwise conv 1x1")] > 0


def test_study_key_turns_the_breakdown_on_and_rejects_a_non_flag():
    from fff.errors import UsageError
    from fff.study.config import parse_study

    config = parse_study("[measure]\nbreakdown = true\n[patterns]\nnames = ['plain']\ndepths = [1]\n")
    cell = config.cells()[0]
    assert config.profile_options(cell).breakdown is True
    assert parse_study("[patterns]\nnames = ['plain']\n").breakdown is False
    # measured or not, the cell is the same measurement: a resumed study keeps its cells
    assert cell.cell_id == parse_study("[patterns]\nnames = ['plain']\ndepths = [1]\n").cells()[0].cell_id
    with pytest.raises(UsageError, match="measure.breakdown"):
        parse_study("[measure]\nbreakdown = 'yes'\n")


def test_a_model_file_has_no_pytorch_layers_so_every_node_is_listed_unattributed_by_type():
    node = {"node_name": "conv", "node_type": "Convolution", "exec_type": "jit_f32", "status": "EXECUTED",
            "real_time_ns": 3000.0, "cpu_time_ns": 3000.0}
    raw = {"iterations": [[node]] * 3, "latencies_ns": [4000.0] * 3, "original_names": {"conv": "conv"},
           "convs": [{"name": "conv", "signature": [8, 1, 3, 3, 8, 1, 8, 4, 4]}]}
    result = openvino_breakdown(raw, None)
    assert result["categories"] == {"depthwise conv": pytest.approx(0.003)}
    assert result["unattributed"] == [{"node": "conv", "type": "Convolution", "ms": pytest.approx(0.003)}]
    assert result["coverage"] == pytest.approx(0.75)


def test_running_means_are_turned_into_the_mean_over_the_profiled_window():
    """The CPU plugin's running mean after warm-up w and k profiled inferences covers w + k runs."""
    from fff.explain.breakdown import window_means

    warmup, per_run = 2, [50.0, 50.0, 10.0, 10.0, 10.0]  # two slow warm-ups, then 10 us per inference
    runs = per_run[:warmup]
    iterations = []
    for k in range(3):
        runs.append(per_run[warmup + k])
        iterations.append([{"node_name": "a", "status": "EXECUTED", "real_time_ns": 1000.0 * sum(runs) / len(runs)}])
    means, latency = window_means({"iterations": iterations, "latencies_ns": [99.0, 12000.0, 14000.0],
                                   "running_means": True, "warmup": warmup})
    assert means["a"] == pytest.approx(10_000.0)
    assert latency == pytest.approx(13_000.0)


def test_transformer_taxonomy_on_synthetic_profiles():
    """Attention (a whole nn.MultiheadAttention; the products and softmax in an attention module's
    own forward), layer norm apart from batch norm, GELU and SiLU as activations, on both stacks."""
    modules = {"": {"module_type": "Net", "leaf": False, "flops": 0},
               "enc.attn": {"module_type": "MultiheadAttention", "leaf": False, "flops": 0},
               "swin.attn": {"module_type": "ShiftedWindowAttention", "leaf": False, "flops": 0},
               "enc.ln": {"module_type": "LayerNorm", "leaf": True, "flops": 0},
               "conv.norm": {"module_type": "LayerNorm2d", "leaf": True, "flops": 0},
               "bn": {"module_type": "BatchNorm2d", "leaf": True, "flops": 0},
               "gelu": {"module_type": "GELU", "leaf": True, "flops": 0},
               "silu": {"module_type": "SiLU", "leaf": True, "flops": 0}}
    torch_raw = {"modules": modules, "conv_calls": [], "latencies_ns": [20000.0] * 3,
                 "iterations": [[["enc.attn", "multi_head_attention_forward", 5000.0],
                                 ["swin.attn", "linear", 1000.0], ["swin.attn", "matmul", 700.0],
                                 ["swin.attn", "softmax", 300.0], ["swin.attn", "scaled_dot_product_attention", 50.0],
                                 ["enc.ln", "layer_norm", 400.0], ["conv.norm", "layer_norm", 100.0],
                                 ["bn", "batch_norm", 200.0], ["gelu", "gelu", 150.0], ["silu", "silu", 50.0],
                                 ["", "softmax", 10.0]]] * 3}
    base = torch_breakdown(torch_raw)
    layers = {row["layer"]: row["category"] for row in base["layers"]}
    assert layers == {"enc.attn": "attention", "swin.attn:linear": "linear/matmul", "swin.attn:matmul": "attention",
                      "swin.attn:softmax": "attention", "swin.attn:scaled_dot_product_attention": "attention",
                      "enc.ln": "layer norm", "conv.norm": "layer norm", "bn": "normalization", "gelu": "activation",
                      "silu": "activation", "model:softmax": "activation"}  # a classifier's softmax is no attention
    assert base["categories"]["attention"] == pytest.approx(0.00605)
    assert base["categories"]["layer norm"] == pytest.approx(0.0005)

    def node(name, kind, ns):
        return {"node_name": name, "node_type": kind, "exec_type": "jit", "status": "EXECUTED", "real_time_ns": ns,
                "cpu_time_ns": ns}

    # OpenVINO: every node under nn.MultiheadAttention's path (its projections' MatMuls, the fused
    # attention) is that one layer; an MVN fused with its scale and shift keeps the LayerNorm's name
    sdpa = "__module.enc.attn/aten::scaled_dot_product_attention/ScaledDotProductAttention"
    nodes = [node("__module.enc.attn/aten::linear/MatMul", "FullyConnected", 1000.0), node(sdpa, "ScaledAttn", 500.0),
             node("__module.enc.ln/aten::layer_norm/MVN", "MVN", 100.0),
             node("__module.swin.attn/aten::matmul/MatMul", "MatMul", 300.0),
             node("__module.swin.attn/aten::softmax/Softmax", "Softmax", 100.0),
             node("__module.swin.attn/aten::linear/MatMul", "FullyConnected", 400.0), node("MVN_99", "MVN", 50.0)]
    openvino_raw = {"iterations": [nodes] * 3, "latencies_ns": [3000.0] * 3, "convs": [],
                    "original_names": {sdpa: f"{sdpa},__module.enc.attn/aten::transpose/Transpose", "MVN_99": ""}}
    fast = openvino_breakdown(openvino_raw, torch_raw)
    layers = {row["layer"]: row for row in fast["layers"]}
    assert layers["enc.attn"]["category"] == "attention" and layers["enc.attn"]["ms"] == pytest.approx(0.0015)
    assert layers["swin.attn:matmul"]["category"] == layers["swin.attn:softmax"]["category"] == "attention"
    assert layers["swin.attn:linear"]["category"] == "linear/matmul"
    assert layers["enc.ln"]["category"] == "layer norm"
    assert layers["(openvino) MVN_99"]["category"] == "layer norm"  # by its type, unattributed
    assert fast["categories"]["attention"] == pytest.approx(0.0019)
    rows = {row["category"]: row for row in compare(base, fast)["categories"]}
    assert rows["attention"]["baseline_ms"] == pytest.approx(0.00605)
    assert category_of_ov_type("ScaledDotProductAttention") == "attention"
    assert category_of_ov_type("MVN") == "layer norm" and category_of_ov_type("Gelu") == "activation"


@pytest.fixture(scope="module")
def transformer(tmp_path_factory):
    return _profiles("transformer:depth=1,width=0.25", tmp_path_factory)


def test_transformer_pattern_attention_in_both_stacks(transformer):
    raw_torch, raw_openvino = transformer
    base, fast = torch_breakdown(raw_torch), openvino_breakdown(raw_openvino, raw_torch)
    attention = [row["layer"] for row in base["layers"] if row["category"] == "attention"]
    assert sorted(attention) == [f"encoder.layers.encoder_layer_{i}.self_attention" for i in range(4)]
    assert base["categories"]["attention"] > 0 and base["categories"]["layer norm"] > 0
    assert _layer_categories(base)["layer norm"] == 9  # two per block and the encoder's last
    fast_layers = {row["layer"]: row for row in fast["layers"]}
    for layer in attention:  # OpenVINO's nodes of each attention module come back to that layer
        assert fast_layers[layer]["category"] == "attention" and fast_layers[layer]["nodes"]
    assert fast["categories"]["attention"] > 0
    assert "normalization" not in fast["categories"] and "normalization" not in base["categories"]
