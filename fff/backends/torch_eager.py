"""PyTorch eager: the native framework, the baseline every other stack is measured against.

Eval mode, inference_mode, the same thread count as the accelerated side (its OpenMP pool is
sized by OMP_NUM_THREADS in its worker's environment). Precisions other than f32 run under CPU
autocast, the framework's own way to compute in them.
"""

from __future__ import annotations

import numpy as np

from fff.backends.base import Backend, NotModelled, fixed_seed_input
from fff.errors import UsageError

__all__ = ["TorchBackend", "torch_simulation_callable", "simulated_baseline"]


class TorchBackend(Backend):
    name = "torch"
    label = "PyTorch eager"
    color = "#d62728"
    precisions = ("f32", "bf16", "f16")
    needs_module = True
    simulation_needs_module = True
    packages = ("torch", "torchvision")
    # (modelled - simulated) / simulated, depth 1, width 0.5, 64 px, 1 MiB LL, valgrind 3.19, 2026-11-25
    cache_model_error = "-19% to -46% per pattern (plain -18.6%, dw-bottleneck -46.0%)"

    @classmethod
    def environment(cls, threads: int) -> dict[str, str]:
        return {"OMP_NUM_THREADS": str(threads)}  # exactly the thread count the other stacks get

    @classmethod
    def attribute(cls, raw: dict, baseline_raw: dict | None, reported_ms: float | None) -> dict:
        from fff.explain.breakdown import torch_breakdown

        return torch_breakdown(raw, reported_ms)

    @classmethod
    def cache_trace(cls, model, artifact: dict, precision: str):
        import torch

        from fff.explain.cache_model import trace_torch

        if precision != "f32":
            raise NotModelled("autocast's traffic would need a trace under autocast: not modelled")
        # One traced pass serves as warm-up and counted inference: eager PyTorch hands the same
        # buffers out again on the next pass (glibc reuses freed chunks), and a trace costs seconds.
        trace = trace_torch(model.module, torch.from_numpy(fixed_seed_input(model.input_shape)))
        return trace, trace

    @classmethod
    def simulation_job(cls, *, target: str, build_options: dict, input_shape, artifact: dict, precision: str,
                       module_path: str | None) -> dict:
        kwargs = {"target": target, "build_options": build_options, "precision": precision,
                  "input_shape": list(input_shape), "module_path": module_path}
        return {"run": "fff.explain.callgrind:measure_factory",
                "kwargs": {"factory": "fff.backends.torch_eager:simulated_baseline", "kwargs": kwargs},
                "weights": "the parent's build, saved whole and loaded (torch.save)" if module_path else
                "built again in the simulated process from the same seed (the module could not be saved)"}

    def __init__(self, *, target: str, build_options: dict, artifact: dict | None = None, input_shape=(),
                 device: str = "CPU", threads: int, precision: str, module_path: str | None = None):
        import torch

        from fff.models import build

        super().__init__(target=target, build_options=build_options, artifact=artifact or {},
                         input_shape=input_shape, device=device, threads=threads, precision=precision)
        torch.set_num_threads(threads)
        self._torch = torch
        if module_path:  # the module another process built (fff.builder saves it whole): same weights, no build
            self._module = torch.load(module_path, weights_only=False)
        else:
            self._module = build(target, **build_options).module
        if self._module is None:
            raise UsageError(f"{target}: a model file has no PyTorch module; the torch backend needs a "
                             "zoo name, a pattern spec or module:function")
        self._dtype = {"f32": None, "bf16": torch.bfloat16, "f16": torch.float16}[precision]
        self._input = None

    def set_input(self, array: np.ndarray) -> None:
        self._input = self._torch.from_numpy(array)

    def infer(self):
        torch = self._torch
        with torch.inference_mode():
            if self._dtype is None:
                return self._module(self._input)
            with torch.autocast("cpu", dtype=self._dtype):
                return self._module(self._input)

    def clock(self) -> dict:
        return {"source": "perf_counter_ns", "reason": "Python's monotonic clock around each forward call"}

    def breakdown(self, iterations: int) -> dict:
        """Per-layer profile (forward hooks and a TorchFunctionMode), after the timed rounds (fff.explain.layer_profiles)."""
        from fff.explain.layer_profiles import profile_torch

        return profile_torch(self._module, self.infer, iterations)

    def config(self) -> dict:
        torch = self._torch
        return {
            "threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(),
            "mkldnn": torch.backends.mkldnn.is_available(),
            "autocast_dtype": str(self._dtype) if self._dtype is not None else None,
            "torch_build": torch.__version__,
            "parallel_backend": next((line.split(":", 1)[1].strip() for line in torch.__config__.parallel_info().splitlines()
                                      if line.startswith("ATen parallel backend")), None),
        }


def torch_simulation_callable(target: str, build_options: dict, precision: str, input_shape: list[int],
                              module_path: str | None = None):
    """The baseline's inference as a zero-argument callable, for the simulated child under
    valgrind: same model (seeded build, or the parent's build loaded from ``module_path``), same
    fixed-seed input as the profiler, one thread."""
    backend = TorchBackend(target=target, build_options=build_options, threads=1, precision=precision,
                           module_path=module_path)
    backend.set_input(fixed_seed_input(input_shape))
    return backend.infer


def simulated_baseline(**kwargs):
    """torch_simulation_callable for the simulated child.

    With ``module_path`` (the module the parent built, saved whole by torch.save) nothing is
    built here: random initialisation under valgrind took 22 s for resnet50, loading 0.9 s.
    Without it the seeded build runs here, without the FLOPs count that building a model makes:
    under valgrind it is a whole extra forward pass (17 s for mobilenet_v2), and the parent has
    already counted them."""
    if not kwargs.get("module_path"):
        import fff.models.targets as targets
        from fff.models.flops import FlopCount

        targets.count_flops = lambda module, example, what="": FlopCount(flops=0, uncounted=())  # this child only
    return torch_simulation_callable(**kwargs)
