"""aot-inductor: the AOTInductor package cached by content, threads read back from the package, a graph
break refused, and the kernel attribution stated against the package's own latency.

A small pattern is prepared three times against one cache: compiled, loaded (nothing compiled:
Inductor's working directory stays empty), and compiled again once its package is damaged; it must
agree with eager PyTorch. A module with a deliberate graph break cannot be one package and is refused
with one line naming the stack.
"""

import os
import textwrap
from pathlib import Path

import pytest

from fff.backends import backend_class, class_path
from fff.backends.artifact_cache import entry_damage
from fff.backends.base import fixed_seed_input

PATTERN, PATTERN_SHAPE = "dw-bottleneck:depth=1,width=0.5", [1, 3, 32, 32]
OPTIONS = {"batch": None, "resolution": None, "input_shape": PATTERN_SHAPE}


def _prepare_pattern(cache, inductor, threads=1) -> dict:
    """The aot-inductor worker's prepare, with fff's cache ``cache`` and an Inductor working directory
    ``inductor`` of its own."""
    from fff.measure.worker import Worker

    cls = backend_class("aot-inductor")
    with Worker("aot-inductor", served=class_path(cls), env={**cls.environment(threads), "TORCHINDUCTOR_CACHE_DIR": str(inductor)},
                target=PATTERN, build_options=OPTIONS, artifact={"cache_dir": str(cache)}, input_shape=PATTERN_SHAPE,
                device="CPU", threads=threads, precision="f32") as worker:
        return worker.call("prepare", inputs=[fixed_seed_input(PATTERN_SHAPE)], warmup=1)


@pytest.mark.slow
def test_a_second_prepare_loads_the_package_and_a_damaged_one_is_compiled_again(tmp_path):
    from fff.backends.torch_eager import TorchBackend
    from fff.measure.parity import compare

    cache = tmp_path / "fff"
    prepared = _prepare_pattern(cache, tmp_path / "inductor-first")
    first = prepared["config"]
    assert first["compile"]["how"] == "AOTInductor" and first["compile"]["cached"] is False
    assert first["compile"]["note"] is None and any((tmp_path / "inductor-first").rglob("*.so"))  # built its C++ there
    eager = TorchBackend(target=PATTERN, build_options=OPTIONS, input_shape=PATTERN_SHAPE, threads=1, precision="f32")
    eager.set_input(fixed_seed_input(PATTERN_SHAPE))
    tolerance = backend_class("aot-inductor").parity_tolerance("f32", "f32")
    assert compare(eager.output_array(eager.infer()), prepared["output"], tolerance=tolerance).as_record()["ok"]

    second = _prepare_pattern(cache, tmp_path / "inductor-second")["config"]
    assert second["compile"]["cached"] is True and second["compile"]["entry"] == first["compile"]["entry"]
    # nothing compiled: Inductor never wrote a file (no export, no lowering, no C++ build)
    assert not any((tmp_path / "inductor-second").rglob("*.*"))
    assert second["threads"] == 1 and second["inductor"]["compiled_for_threads"] == 1
    assert second["inductor"]["baked_num_threads"] in ([], [1]) and second["inductor"]["cpp_kernels"] >= 1
    assert second["graphs"] == 1 and second["graph_breaks"] == 0 and second["recompilations"] == 0

    package = Path(first["compile"]["entry"]) / "model.pt2"
    with open(package, "ab") as file:
        file.write(b"\0")
    third = _prepare_pattern(cache, tmp_path / "inductor-third")["config"]
    assert third["compile"]["cached"] is False and "did not match its checksum" in third["compile"]["note"]
    assert entry_damage(package.parent, ("model.pt2",)) is None  # stored afresh, whole


def test_another_thread_count_or_precision_is_another_cache_entry():
    import torch

    from fff.backends.aot_inductor import package_key

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
    key = package_key(module, "m", [1, 3, 8, 8], 1, "f32")
    assert key == package_key(module, "m", [1, 3, 8, 8], 1, "f32")
    others = {package_key(module, "m", [1, 3, 8, 8], 2, "f32"), package_key(module, "m", [1, 3, 8, 8], 1, "bf16"),
              package_key(module, "m", [1, 3, 16, 16], 1, "f32")}
    with torch.no_grad():
        module[0].weight[0, 0, 0, 0] += 1
    others.add(package_key(module, "m", [1, 3, 8, 8], 1, "f32"))
    assert key not in others and len(others) == 4


BREAKING = textwrap.dedent('''
    import torch


    def breaking():
        class Breaking(torch.nn.Module):
            def forward(self, x):
                x = torch.relu(x)
                torch._dynamo.graph_break()  # deliberate: Dynamo cannot capture it as one graph
                return x * 2

        return Breaking()
''')


@pytest.mark.slow
def test_a_graph_break_is_refused_in_one_line_naming_the_stack(tmp_path, monkeypatch):
    from fff.errors import CompileError
    from fff.measure.worker import Worker

    (tmp_path / "breaking_model.py").write_text(BREAKING)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    cls = backend_class("aot-inductor")
    shape = [1, 3, 8, 8]
    with Worker("aot-inductor", served=class_path(cls), env=cls.environment(1), target="breaking_model:breaking",
                build_options={"batch": None, "resolution": None, "input_shape": shape},
                artifact={"cache_dir": str(tmp_path / "cache")}, input_shape=shape, device="CPU", threads=1,
                precision="f32") as worker:
        with pytest.raises(CompileError) as error:
            worker.call("prepare", inputs=[fixed_seed_input(shape)], warmup=1)
    message = str(error.value)
    assert message.startswith("aot-inductor: torch.export cannot capture breaking_model:breaking as one graph")
    assert "torch-compile" in message and "\n" not in message
    assert not any((tmp_path / "cache").rglob("*.pt2"))  # nothing stored


def test_its_breakdown_states_the_profiled_build_and_coverage_against_the_package():
    conv_calls = [{"path": "a", "signature": [8, 3, 3, 3, 1, 1, 8, 16, 16]}]
    modules = {"a": {"module_type": "Conv2d", "leaf": True, "flops": 10, "groups": 1, "in_channels": 3,
                     "out_channels": 8, "kernel": [3, 3]}}
    events = [["mkldnn::_convolution_pointwise", 30.0, [[1, 3, 16, 16], [8, 3, 3, 3], [8]], "graph"],
              ["graph_0_cpp_fused_mean_0", 10.0, [], "graph"]]
    raw = {"iterations": [events, events], "latencies_ns": [80e3, 80e3], "modules": modules,
           "conv_calls": conv_calls, "seconds": 1.0}
    table = backend_class("aot-inductor").attribute(raw, None, 0.05)  # the package ran at 0.05 ms
    assert table["backend"] == "aot-inductor" and table["conv_layers_matched"] == "1 of 1"
    assert table["coverage"] == pytest.approx(0.04 / 0.05)  # kernels against the package's own latency
    assert table["coverage_against_ms"] == 0.05 and table["latency_profiled_ms"] == pytest.approx(0.08)
    assert table["coverage_of_profiled_build"] == pytest.approx(0.5) and table["slowdown"] is None
    # the overhead line is the package's time outside those kernels, not the profiled build's wrapper
    assert table["framework_overhead_ms"] == pytest.approx(0.01) and table["categories"]["framework overhead"] == pytest.approx(0.01)
    assert table["framework_overhead_of_profiled_build_ms"] == pytest.approx(0.04)
    assert "torch.compile" in table["profiled_build"] and "package's own median latency" in table["source"]


def test_the_cache_model_and_simulation_are_refused_naming_the_stack():
    from fff.backends.base import NotModelled, NotSimulated

    cls = backend_class("aot-inductor")
    with pytest.raises(NotModelled, match="^aot-inductor: "):
        cls.cache_trace(None, {}, "f32")
    with pytest.raises(NotSimulated, match="^aot-inductor: "):
        cls.simulation_job(target="m", build_options={}, input_shape=[1], artifact={}, precision="f32", module_path=None)
