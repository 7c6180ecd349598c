"""A stack for orchestration tests: the baseline's output, at a latency the test chooses.

It builds the same PyTorch module the baseline runs, computes its output once, and then each
"inference" spins for FFF_FAKE_LATENCY_US microseconds (default 300) and returns that output: parity
holds, the latency is known, and rounds, verdicts, records and studies run without OpenVINO.
"""

import os
import time

from fff.backends.base import Backend


class FakeBackend(Backend):
    name = "fake"
    label = "Fake (a fixed spin)"
    color = "#8c564b"

    def __init__(self, *, target, build_options, artifact, input_shape, device, threads, precision):
        super().__init__(target=target, build_options=build_options, artifact=artifact, input_shape=input_shape,
                         device=device, threads=threads, precision=precision)
        self._target, self._build_options = target, build_options
        self.latency_ns = int(float(os.environ.get("FFF_FAKE_LATENCY_US", "300")) * 1000)
        self._output = None

    def set_input(self, array):
        import torch

        from fff.models import build

        with torch.inference_mode():
            self._output = build(self._target, **self._build_options).module(torch.from_numpy(array))

    def infer(self):
        end = time.perf_counter_ns() + self.latency_ns
        while time.perf_counter_ns() < end:
            pass
        return self._output

    def config(self):
        return {"threads": 1, "latency_ns": self.latency_ns}
