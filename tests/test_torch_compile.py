"""torch-compile: graph breaks and threads read back from a real compilation, and the kernel attribution.

One worker compiles a tiny module that breaks its graph on purpose, with two threads: its record must
say so (two graphs, the reason), read the two threads back from the runtime and the generated code,
agree with eager PyTorch and attribute its kernels; torch.compile compiles every run, and the record
says so. (The ahead-of-time package is the aot-inductor stack: tests/test_aot_inductor.py.) The attribution of kernel names and events is
checked on plain data, with no compilation.
"""

import textwrap

import numpy as np
import pytest

from fff.backends import backend_class, class_path
from fff.backends.base import fixed_seed_input

BREAKING = textwrap.dedent('''
    import torch


    class Breaking(torch.nn.Module):
        """Two convolutions with a graph break between them, and a mean reduction the kernels parallelise."""

        def __init__(self):
            super().__init__()
            self.first = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU())
            self.second = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)

        def forward(self, x):
            x = self.first(x)
            torch._dynamo.graph_break()  # deliberate: Dynamo ends the graph here and starts another
            return self.second(x).mean((2, 3))


    def breaking():
        torch.manual_seed(0)
        return Breaking()
''')
SHAPE = [1, 3, 64, 64]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """The module's eager output, and the torch-compile worker's prepare, round and raw profile, threads=2."""
    import os

    from fff.backends.torch_eager import TorchBackend
    from fff.measure.worker import Worker

    directory = tmp_path_factory.mktemp("breaking")
    (directory / "breaking_model.py").write_text(BREAKING)
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(directory), saved]))
    target, options = "breaking_model:breaking", {"batch": None, "resolution": None, "input_shape": SHAPE}
    cls = backend_class("torch-compile")
    inputs = [fixed_seed_input(SHAPE)]
    try:
        worker = Worker("torch-compile", served=class_path(cls), env=cls.environment(2), target=target,
                        build_options=options, artifact={}, input_shape=SHAPE, device="CPU", threads=2,
                        precision="f32")
        try:
            prepared = worker.call("prepare", inputs=inputs, warmup=1)
            timed = worker.call("round", iterations=3, warmup=1)
            raw = worker.call("breakdown", iterations=3)
        finally:
            worker.close()
        import sys

        sys.path.insert(0, str(directory))
        try:
            eager = TorchBackend(target=target, build_options=options, input_shape=SHAPE, threads=1, precision="f32")
        finally:
            sys.path.remove(str(directory))
        eager.set_input(inputs[0])
        reference = eager.output_array(eager.infer())
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = saved
    return reference, prepared, timed, raw


@pytest.mark.slow
def test_a_deliberate_graph_break_is_stated_in_the_configuration(compiled):
    _, prepared, timed, _ = compiled
    config = prepared["config"]
    assert config["graph_breaks"] == 1 and config["graphs"] == 2
    assert any("graph_break" in reason for reason in config["graph_break_reasons"]), config["graph_break_reasons"]
    assert config["recompilations"] == 0 and config["freezing"] is True and config["dynamic"] is False
    assert config["compile"]["seconds"] > 0 and len(timed["samples_ns"]) == 3
    # torch.compile with freezing compiles every run (its FX graph cache cannot hold prepacked oneDNN
    # weights), and the record says so and why
    assert config["compile"]["how"] == "torch.compile" and config["compile"]["cached"] is False
    assert "pytorch#139783" in config["compile"]["note"]


@pytest.mark.slow
def test_the_threads_asked_for_are_read_back_from_the_runtime_and_the_generated_code(compiled):
    _, prepared, _, _ = compiled
    config = prepared["config"]
    inductor = config["inductor"]
    assert config["threads"] == 2 and inductor["compiled_for_threads"] == 2
    assert inductor["generated_modules"] == 2 and inductor["cpp_kernels"] >= 1
    # Inductor writes num_threads(2) into its parallel regions, or leaves them to the OpenMP pool
    # (sized 2 by set_num_threads) when 2 is every CPU of the machine; either way nothing else.
    assert inductor["baked_num_threads"] in ([], [2])
    assert inductor["baked_num_threads"] or inductor["runtime_sized_parallel_regions"] >= 1
    assert inductor["compile_threads"] == 1  # TORCHINDUCTOR_COMPILE_THREADS from Backend.environment


@pytest.mark.slow
def test_the_compiled_module_agrees_with_eager_pytorch(compiled):
    from fff.measure.parity import compare

    reference, prepared, _, _ = compiled
    tolerance = backend_class("torch-compile").parity_tolerance("f32", "f32")
    assert compare(reference, prepared["output"], tolerance=tolerance).as_record()["ok"]


@pytest.mark.slow
def test_its_kernels_are_attributed_to_both_convolutions_and_the_taxonomy(compiled):
    from fff.explain.breakdown import CATEGORIES

    _, _, _, raw = compiled
    table = backend_class("torch-compile").attribute(raw, None, 1.0)
    layers = {row["layer"]: row for row in table["layers"]}
    assert layers["first.0"]["category"] == "dense conv kxk" and layers["second"]["category"] == "depthwise conv"
    assert table["conv_layers_matched"] == "2 of 2"
    assert set(table["categories"]) <= set(CATEGORIES) and 0 < table["coverage"] <= 1.0


@pytest.mark.parametrize("name, ops, category", [
    ("graph_0_cpp_fused_addmm_mean_view_2", ["addmm", "mean", "view"], "linear/matmul"),
    ("graph_1_cpp_fused__native_batch_norm_legit_no_training_relu_0", ["batch_norm", "relu"], "normalization"),
    ("cpp_fused_add_hardtanh_13", ["add", "hardtanh"], "elementwise"),
    ("graph_0_cpp_fused_1", [], "other"),
])
def test_a_fused_kernel_is_categorised_by_the_operators_its_name_lists(name, ops, category):
    from fff.backends.torch_compile import kernel_category, kernel_ops

    assert kernel_ops(name) == ops and kernel_category(name) == category


def test_kernel_events_become_layers_overhead_and_coverage():
    from fff.backends.torch_compile import compiled_attribution

    conv_calls = [{"path": "a", "signature": [8, 3, 3, 3, 1, 1, 8, 16, 16]},
                  {"path": "b", "signature": [8, 1, 3, 3, 8, 1, 8, 16, 16]},
                  {"path": "c", "signature": [4, 8, 1, 1, 1, 1, 4, 16, 16]}]
    modules = {"a": {"module_type": "Conv2d", "leaf": True, "flops": 10, "groups": 1, "in_channels": 3,
                     "out_channels": 8, "kernel": [3, 3]},
               "b": {"module_type": "Conv2d", "leaf": True, "flops": 5, "groups": 8, "in_channels": 8,
                     "out_channels": 8, "kernel": [3, 3]},
               "c": {"module_type": "Conv2d", "leaf": True, "flops": 5, "groups": 1, "in_channels": 8,
                     "out_channels": 4, "kernel": [1, 1]}}
    events = [["mkldnn::_convolution_pointwise", 30.0, [[1, 3, 16, 16], [8, 3, 3, 3], [8]], "graph"],
              ["mkldnn::_convolution_pointwise", 20.0, [[1, 8, 16, 16], [1, 8, 16, 16], [8, 1, 3, 3], [8]], "graph"],
              # oneDNN's in-place binary variant (a residual add fused in): the addend it writes comes first
              ["mkldnn::_convolution_pointwise_", 4.0, [[1, 4, 16, 16], [1, 8, 16, 16], [4, 8, 1, 1], [4]], "graph"],
              ["graph_0_cpp_fused_mean_0", 6.0, [], "graph"],
              ["mkldnn::_linear_pointwise", 5.0, [[1, 8], [4, 8]], "graph"]]
    raw = {"iterations": [events, events], "latencies_ns": [100e3, 100e3], "modules": modules,
           "conv_calls": conv_calls, "seconds": 1.0}
    table = compiled_attribution(raw, None, 0.05)
    layers = {row["layer"]: row for row in table["layers"]}
    assert layers["a"]["ms"] == pytest.approx(0.030) and layers["a"]["category"] == "dense conv kxk"
    assert layers["b"]["category"] == "depthwise conv" and layers["b"]["rule"] == "graph"
    assert layers["c"]["category"] == "pointwise conv 1x1" and table["conv_layers_matched"] == "3 of 3"
    assert layers["inductor:graph_0_cpp_fused_mean_0"]["category"] == "pooling"
    assert layers["inductor:mkldnn::_linear_pointwise"]["category"] == "linear/matmul"
    assert table["framework_overhead_ms"] == pytest.approx(0.035) and table["coverage"] == pytest.approx(0.65)
    assert table["slowdown"] == pytest.approx(2.0) and np.isclose(sum(table["categories"].values()), 0.1)


def test_no_cpp_compiler_is_one_line_naming_the_stack():
    from torch._inductor import config

    from fff.errors import DeviceError

    with config.patch({"cpp.cxx": (None, "/nonexistent/c++")}), pytest.raises(DeviceError) as error:
        backend_class("torch-compile").check_available("CPU")
    message = str(error.value)
    assert message.startswith("torch-compile: no C++ compiler") and "/nonexistent/c++" in message
    assert "\n" not in message


FAILING = textwrap.dedent('''
    import torch
    from torch._inductor import config

    # Inductor's own switch for testing its error paths: a relu in the graph fails its C++ build
    # (set when the worker imports this module to build the model, before it compiles).
    config.cpp.inject_relu_bug_TESTING_ONLY = "compile_error"


    def failing():
        return torch.nn.Sequential(torch.nn.ReLU())  # alone: no convolution to fuse it into
''')


@pytest.mark.slow
def test_a_model_that_does_not_compile_is_one_line_naming_the_stack(tmp_path, monkeypatch):
    import os

    from fff.errors import CompileError
    from fff.measure.worker import Worker

    (tmp_path / "failing_model.py").write_text(FAILING)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    cls = backend_class("torch-compile")
    shape = [1, 3, 8, 8]
    with Worker("torch-compile", served=class_path(cls), env=cls.environment(1), target="failing_model:failing",
                build_options={"batch": None, "resolution": None, "input_shape": shape}, artifact={}, input_shape=shape,
                device="CPU", threads=1, precision="f32") as worker:
        with pytest.raises(CompileError) as error:
            worker.call("prepare", inputs=[fixed_seed_input(shape)], warmup=1)
    message = str(error.value)
    assert message.startswith("torch-compile cannot compile failing_model:failing: ") and "\n" not in message
