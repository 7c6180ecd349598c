"""OpenVINO through fff's C++ runner: a static-shape f32 IR, explicit precision and threads.

The artifact is the IR (fff.backends.openvino.conversion, cached by content), or the model file
itself for an ``.onnx`` or ``.xml`` target; at int8, the IR quantized by NNCF
(fff.backends.openvino.quantization, cached too), compiled with an f32 inference precision so that
what NNCF left unquantized stays f32 (not the bf16 OpenVINO would pick on this CPU). The timed loop runs in C++ with the GIL released
(fff.backends.openvino.runner); its per-layer profile comes from a second, profiling-enabled
compilation; the cache model traces the compiled runtime graph.
"""

from __future__ import annotations

import numpy as np

from fff.backends.base import Backend, cpus_asked
from fff.errors import DeviceError, UsageError

__all__ = ["OpenVINOBackend", "simulate_inferences", "inference_precision"]


def inference_precision(precision: str) -> str:
    """OpenVINO's inference precision hint for fff's ``precision``: an int8 IR carries its quantization
    in the graph (FakeQuantize), and what is left unquantized runs f32."""
    return "f32" if precision == "int8" else precision


class OpenVINOBackend(Backend):
    name = "openvino"
    label = "OpenVINO"
    color = "#1f77b4"
    precisions = ("f32", "bf16", "f16", "int8")
    needs_module = False  # runs .onnx and .xml files as they are
    honours_device = True
    artifact_name = "IR"
    packages = ("openvino", "nncf")
    # (modelled - simulated) / simulated, depth 1, width 0.5, 64 px, 1 MiB LL, valgrind 3.19, 2026-11-25
    cache_model_error = "-5% to -20% per pattern (plain -5.4%, residual -6.0%, dw-bottleneck -9.2%, inception -19.9%)"

    @classmethod
    def check_available(cls, device: str) -> None:
        import openvino as ov

        available = ov.Core().available_devices
        if device not in available and device.split(".")[0] not in available:
            raise DeviceError(f"device '{device}' is not available on this machine "
                              f"(available: {', '.join(available) or 'none'})")

    @classmethod
    def effective_threads(cls, config: dict) -> int | None:
        return super().effective_threads({"threads": config.get("INFERENCE_NUM_THREADS")})

    @classmethod
    def prepare_artifact(cls, model, *, cache_dir=None, fresh: bool = False, precision: str = "f32",
                         calibration: str | None = None) -> dict:
        from fff.backends.openvino.conversion import prepare_ir

        if model.module is None:  # a model file: compiled as it is
            if precision == "int8":
                raise UsageError(f"{model.name}: int8 quantizes the IR fff converts from a PyTorch module; "
                                 "a model file is run as it is (quantize it beforehand and run it at f32)")
            return {"xml": str(model.path), "cached": False, "notes": []}
        ir = prepare_ir(model, cache_dir=cache_dir, fresh=fresh and precision != "int8")
        if precision != "int8":
            return {"xml": str(ir.xml), "cached": ir.cached, "notes": list(ir.notes)}
        from fff.backends.openvino.quantization import prepare_int8_ir

        int8, calibration_record = prepare_int8_ir(model, ir, fresh=fresh, calibration_dir=calibration)
        return {"xml": str(int8.xml), "cached": int8.cached, "notes": list(ir.notes + int8.notes),
                "calibration": calibration_record, "quantized_by": "NNCF post-training quantization"}

    @classmethod
    def cache_trace(cls, model, artifact: dict, precision: str):
        from fff.explain.cache_model import trace_openvino

        trace = trace_openvino(artifact["xml"], model.input_shape, inference_precision(precision))
        return trace, trace

    @classmethod
    def attribute(cls, raw: dict, baseline_raw: dict | None, reported_ms: float | None) -> dict:
        from fff.explain.breakdown import openvino_breakdown

        return openvino_breakdown(raw, baseline_raw, reported_ms)

    @classmethod
    def simulation_job(cls, *, target: str, build_options: dict, input_shape, artifact: dict, precision: str,
                       module_path: str | None) -> dict:
        return {"run": "fff.backends.openvino.backend:simulate_inferences",
                "kwargs": {"model": artifact["xml"], "input_shape": [list(input_shape)],
                           "precision": inference_precision(precision)},
                "weights": "the IR the timed run compiled"}

    def __init__(self, *, target: str, build_options: dict, artifact: dict, input_shape, device: str, threads: int,
                 precision: str):
        from fff.backends.openvino.runner import Runner, clock_info

        super().__init__(target=target, build_options=build_options, artifact=artifact, input_shape=input_shape,
                         device=device, threads=threads, precision=precision)
        self._runner = Runner(artifact["xml"], list(input_shape), device=device,
                              precision=inference_precision(precision), threads=threads)
        self._clock = clock_info()

    def prepare(self, inputs: list[np.ndarray], warmup: int) -> dict:
        self._runner.set_inputs(*inputs)
        first = self._runner.run(iterations=1, warmup=warmup)
        return {
            "first_inference_ns": first.first_inference_ns,
            "output": self._outputs(),
            "config": self._runner.effective_config,
            "clock": self._clock,
        }

    def _outputs(self) -> np.ndarray | list[np.ndarray]:
        """Every output of the IR in its order (the order of the PyTorch model's tuple or dict)."""
        arrays = [self._runner.output(i).astype(np.float32) for i in range(len(self._runner.outputs))]
        return arrays[0] if len(arrays) == 1 else arrays

    def round(self, iterations: int, counters: tuple[str, ...] = (), warmup: int = 0,
              deadline_s: float | None = None) -> dict:
        """As Backend.round; the C++ loop runs its iterations whole (``deadline_s`` is not checked
        inside it: OpenVINO slows down about 4x under contention, PyTorch 10-20x)."""
        from fff.measure.contention import RoundMeter

        if warmup:
            self._runner.run(warmup, warmup=0)
        meter = RoundMeter(cpus_asked(self.threads))
        result = self._runner.run(iterations, warmup=0, counters=counters)
        usage = meter.stop(iterations)
        return {"samples_ns": result.latencies_ns, "counters": result.counters, "usage": usage}

    def breakdown(self, iterations: int) -> dict:
        """Per-node profile from a second, profiling-enabled compilation (fff.explain.layer_profiles)."""
        from fff.explain.layer_profiles import profile_openvino

        return profile_openvino(self._runner, iterations)

    def config(self) -> dict:
        return self._runner.effective_config


def simulate_inferences(*, model: str, input_shape, precision: str, iterations: int, warmup: int) -> dict:
    """In the simulated child: the runner's loop between callgrind's client requests, one thread."""
    from fff.backends.openvino.runner import Runner

    runner = Runner(model, input_shape, precision=precision, threads=1)
    runner.run(iterations, warmup=warmup, callgrind=True)
    return {"config": runner.effective_config}
