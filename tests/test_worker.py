"""Backends in worker processes: answers, errors and hangs come back to the parent as FffErrors."""

import signal
import time

import numpy as np
import pytest

from fff.errors import FffError, ShapeError, UsageError
from fff.backends import BUILTIN
from fff.measure.worker import Worker


def openvino_worker(xml, shape=(1, 3, 32, 32)):
    return Worker("openvino", served=BUILTIN["openvino"], target=str(xml), build_options={}, artifact={"xml": str(xml)},
                  input_shape=list(shape), device="CPU", threads=1, precision="f32")


def test_a_round_returns_one_sample_per_iteration(tiny_ir, fixed_input):
    with openvino_worker(tiny_ir) as worker:
        prepared = worker.call("prepare", inputs=[fixed_input], warmup=1)
        assert prepared["output"].shape == (1, 10)
        samples = worker.call("round", iterations=4)["samples_ns"]
        assert len(samples) == 4 and np.all(samples > 0)


def test_a_users_error_in_the_worker_keeps_its_class(tiny_ir):
    with pytest.raises(ShapeError, match="non-positive"):
        openvino_worker(tiny_ir, shape=(1, 3, 0, 32))


def test_a_hung_worker_is_stopped_after_the_timeout(tiny_ir, fixed_input):
    worker = openvino_worker(tiny_ir)
    try:
        worker.call("prepare", inputs=[fixed_input], warmup=1)
        worker._process.send_signal(signal.SIGSTOP)  # as good as hung: it will never answer
        start = time.monotonic()
        with pytest.raises(FffError, match=r"openvino worker did not answer 'round' within 1 s"):
            worker.call("round", iterations=1, timeout=1)
        assert time.monotonic() - start < 10
        assert worker._process.poll() is not None  # killed, not left behind
    finally:
        worker.close()


def test_a_dead_worker_is_reported_with_the_signal_that_killed_it(tiny_ir):
    worker = openvino_worker(tiny_ir)
    try:
        worker._process.kill()
        worker._process.wait()
        with pytest.raises(FffError, match=r"openvino worker died \(killed by signal 9 \(SIGKILL\)\) .* — out of memory\?$"):
            worker.call("round", iterations=1)
    finally:
        worker.close()


def test_the_timeout_comes_from_the_environment(tiny_ir, fixed_input, monkeypatch):
    # A limit generous enough for any machine to start the worker; what is checked is that the
    # worker took it from the environment and that a call uses it, not how fast anything runs.
    monkeypatch.setenv("FFF_WORKER_TIMEOUT", "3600.5")
    worker = openvino_worker(tiny_ir)
    try:
        assert worker.timeout == 3600.5
        worker.call("prepare", inputs=[fixed_input], warmup=1)
        worker._process.send_signal(signal.SIGSTOP)
        worker.timeout = 0.5  # the value read at start is the one every call waits for: stand in a short one
        with pytest.raises(FffError, match=r"within 0\.5 s .*FFF_WORKER_TIMEOUT"):
            worker.call("round", iterations=1)
    finally:
        worker.close()
    monkeypatch.setenv("FFF_WORKER_TIMEOUT", "soon")
    with pytest.raises(UsageError, match="FFF_WORKER_TIMEOUT must be a positive number of seconds, got 'soon'"):
        openvino_worker(tiny_ir)


def test_a_crash_names_the_exception_class_and_its_reason(tiny_ir):
    with openvino_worker(tiny_ir) as worker:
        with pytest.raises(FffError, match=r"failed during 'no_such_command': AttributeError: .*no_such_command") \
                as caught:
            worker.call("no_such_command")
        assert "Traceback" in str(caught.value)  # the whole trace follows the first line
