"""ONNX Runtime (CPU execution provider): the model exported to a static-shape ONNX file, run by
an onnxruntime session with the threads asked for, inter-op 1, sequential, spinning on (its default).

The artifact is the ONNX export (fff.backends.ort.export, cached by content), or the model file
itself for an ``.onnx`` target. The session and its options are fff.backends.ort.session; the
timed loop is the base class's (``session.run`` between two clock reads: its overhead against a
bare loop of ``session.run`` is in bench/bench_onnxruntime_harness.py). The per-layer profile comes
from a second, profiling-enabled session (fff.backends.ort.attribution). The cache model traces
the graph onnxruntime optimised (fff.backends.ort.cache_trace); valgrind simulates its inferences
on one thread.

Precisions: f32 and int8. onnxruntime's CPU provider has no bfloat16 convolution kernels and runs
float16 convolutions only on ARM, so bf16 and f16 are refused before anything is built. int8 is the
export quantized by ``quantize_static`` (fff.backends.ort.quantization, cached too); its session is
the same as f32's, and its breakdown says which layers ran integer kernels. The cache model traces
the int8 graph as it does the f32 one, each tensor at its own element size (uint8 activations,
int8 weights, int32 biases) as the profile and the saved graph give it.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from fff.backends.base import Backend, NotModelled
from fff.errors import DeviceError, ModelFileError, UsageError

__all__ = ["OnnxRuntimeBackend", "simulated_session"]

_MISSING = ("onnxruntime: the onnxruntime package is not installed ({error}); "
            "pip install onnxruntime onnx (or the README's install command)")


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    label = "ONNX Runtime"
    color = "#e6550d"  # not one of the registry's fallback colours, which plugins get
    precisions = ("f32", "int8")
    needs_module = False  # runs .onnx files as they are
    artifact_name = "ONNX export"
    packages = ("onnxruntime", "onnx")
    # (modelled - simulated) / simulated, depth 1, width 0.5, 64 px, 1 MiB LL, valgrind 3.19, 2026-12-07
    cache_model_error = "-5% to -12% per pattern (plain -5.1%, dw-bottleneck -11.8%)"
    # The pool's wait policy (fff.backends.ort.session); a subclass turns it off for a comparison
    # (bench/bench_onnxruntime_spin_verdicts.py), and the record reads back which one ran.
    spinning = True

    @classmethod
    def check_available(cls, device: str) -> None:
        try:
            import onnx  # noqa: F401 - the exporter needs it
            import onnxruntime
        except ImportError as error:
            raise DeviceError(_MISSING.format(error=error)) from None
        if "CPUExecutionProvider" not in onnxruntime.get_available_providers():
            raise DeviceError("onnxruntime: this build has no CPU execution provider")

    @classmethod
    def effective_threads(cls, config: dict) -> int | None:
        """The threads that compute: the calling thread and the pool workers the session started
        (counted in /proc), which is what ran whatever the options say."""
        started = config.get("pool_threads_started")
        return None if started is None else 1 + int(started)

    @classmethod
    def prepare_artifact(cls, model, *, cache_dir=None, fresh: bool = False, precision: str = "f32",
                         calibration: str | None = None) -> dict:
        from fff.backends.ort.export import EXPORTER, prepare_onnx

        if model.module is None:  # a model file
            if model.path is None or model.path.suffix.lower() != ".onnx":
                raise ModelFileError(f"onnxruntime: runs .onnx files; {model.name} is not one (leave onnxruntime "
                                     "out for it)")
            if precision == "int8":
                raise UsageError(f"onnxruntime: {model.name}: int8 quantizes the ONNX file fff exports from a "
                                 "PyTorch module; a model file is run as it is (quantize it beforehand, run it at f32)")
            return {"onnx": str(model.path), "exporter": "none (the target is an ONNX file)", "cached": False,
                    "notes": []}
        entry = prepare_onnx(model, cache_dir=cache_dir, fresh=fresh and precision != "int8")
        artifact = {"onnx": str(entry.path), "exporter": EXPORTER, "cached": entry.cached, "notes": list(entry.notes)}
        if precision != "int8":
            return artifact
        from fff.backends.ort.quantization import QUANTIZED_BY, prepare_int8_onnx

        path, cached, notes, calibration_record = prepare_int8_onnx(model, entry.path, cache_dir=cache_dir,
                                                                    fresh=fresh, calibration_dir=calibration)
        return {**artifact, "onnx": str(path), "f32_onnx": str(entry.path), "cached": cached,
                "notes": [*entry.notes, *notes], "calibration": calibration_record, "quantized_by": QUANTIZED_BY}

    @classmethod
    def cache_trace(cls, model, artifact: dict, precision: str):
        from fff.backends.ort.cache_trace import trace_onnxruntime

        if precision not in cls.precisions:
            raise NotModelled(f"onnxruntime does not run {precision}")
        return trace_onnxruntime(artifact["onnx"], model.input_shape)

    @classmethod
    def attribute(cls, raw: dict, baseline_raw: dict | None, reported_ms: float | None) -> dict:
        from fff.backends.ort.attribution import onnxruntime_breakdown

        return onnxruntime_breakdown(raw, baseline_raw, reported_ms)

    @classmethod
    def simulation_job(cls, *, target: str, build_options: dict, input_shape, artifact: dict, precision: str,
                       module_path: str | None) -> dict:
        return {"run": "fff.explain.callgrind:measure_factory",
                "kwargs": {"factory": "fff.backends.ort.backend:simulated_session",
                           "kwargs": {"path": artifact["onnx"], "input_shape": list(input_shape)}},
                "weights": "the ONNX file the timed run loaded"}

    def __init__(self, *, target: str, build_options: dict, artifact: dict, input_shape, device: str, threads: int,
                 precision: str):
        from fff.backends.ort.session import effective_config, make_session

        super().__init__(target=target, build_options=build_options, artifact=artifact, input_shape=input_shape,
                         device=device, threads=threads, precision=precision)
        if precision not in self.precisions:
            raise UsageError(f"onnxruntime cannot compute in {precision} on the CPU (f32 and int8 only)")
        self._path, self._exporter = artifact["onnx"], artifact.get("exporter")
        try:
            self._session, started = make_session(self._path, threads, spinning=self.spinning)
        except Exception as error:  # onnxruntime raises its own exception types (Fail, InvalidGraph, ...)
            raise ModelFileError(f"onnxruntime could not load {self._path} "
                                 f"({(str(error).strip().splitlines() or [type(error).__name__])[-1]})") from None
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise ModelFileError(f"onnxruntime: {target} has {len(inputs)} inputs; fff feeds one")
        self._input_name = inputs[0].name
        self._output_names = [self._session.get_outputs()[0].name]
        self._config = {**effective_config(self._session, started), "exporter": self._exporter}
        if artifact.get("quantized_by"):
            self._config["quantized_by"] = artifact["quantized_by"]
        self._feed = None

    def set_input(self, array: np.ndarray) -> None:
        self._feed = {self._input_name: np.ascontiguousarray(array, dtype=np.float32)}
        # The timed loop calls exactly what a bare loop of onnxruntime's API calls: no method of
        # ours around session.run (bench/bench_onnxruntime_harness.py).
        self.infer = partial(self._session.run, self._output_names, self._feed)

    def infer(self):
        raise UsageError("onnxruntime: no input set (set_input first)")

    def output_array(self, output) -> np.ndarray:
        return np.asarray(output[0], dtype=np.float32)  # session.run returns one array per output asked for

    def clock(self) -> dict:
        return {"source": "perf_counter_ns", "reason": "Python's monotonic clock around each session.run call"}

    def config(self) -> dict:
        return dict(self._config)

    def breakdown(self, iterations: int, warmup: int = 2) -> dict:
        """Per-node profile from a second session with profiling on (this one's timed rounds are untouched)."""
        import os
        import tempfile
        import time

        import onnx

        from fff.backends.ort.attribution import read_profile
        from fff.backends.ort.session import make_session

        started = time.perf_counter()
        graph = onnx.load(self._path, load_external_data=False).graph
        nodes = [[node.name, node.op_type, list(node.input), list(node.output)] for node in graph.node]
        with tempfile.TemporaryDirectory(prefix="fff-ort-profile-") as directory:
            session, _ = make_session(self._path, self.threads, spinning=self.spinning,
                                      profile_prefix=os.path.join(directory, "profile"))
            latencies = []
            for i in range(warmup + iterations):
                start = time.perf_counter_ns()
                session.run(self._output_names, self._feed)
                if i >= warmup:
                    latencies.append(float(time.perf_counter_ns() - start))
            path = session.end_profiling()
            inferences = read_profile(path, latencies, warmup)
        return {"iterations": inferences, "latencies_ns": latencies, "graph": nodes, "warmup": warmup,
                "seconds": time.perf_counter() - started}


def simulated_session(path: str, input_shape: list[int]):
    """For the simulated child under valgrind: one inference of the same ONNX file, one thread, as a
    zero-argument callable (fff.explain.callgrind.measure_factory)."""
    from fff.backends.base import fixed_seed_input
    from fff.backends.ort.session import make_session

    session, _ = make_session(path, 1)
    feed = {session.get_inputs()[0].name: fixed_seed_input(input_shape)}
    outputs = [session.get_outputs()[0].name]
    return lambda: session.run(outputs, feed)
