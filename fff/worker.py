"""A backend measured in a process of its own.

The parent (fff.profiling) starts one worker per backend with ``python -m fff.worker`` and drives
them in interleaved rounds, so each backend's thread pool (OpenMP for PyTorch, TBB for
OpenVINO) lives alone in its process and only one backend computes at a time. Messages are
pickled over a dedicated pipe, leaving the worker's stdout and stderr to the libraries.

Protocol: the parent sends (command, kwargs); the worker answers ("ok", value),
("error", FffError class name, message) or ("crash", traceback text).
"""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from multiprocessing.connection import Connection

import fff.errors
from fff.child_process import child_environment, python_module_command
from fff.errors import FffError

__all__ = ["Worker", "ANSWER_TIMEOUT_S"]

# Longest wait for any one answer: a model's conversion-free compile, warm-up or timed round
# takes seconds to a minute on the largest zoo models here; ten minutes means a hang.
ANSWER_TIMEOUT_S = 600.0


class Worker:
    """Parent side: a backend in a child process. Use as a context manager."""

    def __init__(self, backend: str, env: dict | None = None, **options):
        parent_read, child_write = os.pipe()
        child_read, parent_write = os.pipe()
        self.backend = backend
        self._process = subprocess.Popen(
            python_module_command("fff.worker", str(child_read), str(child_write)),
            pass_fds=(child_read, child_write),
            env=child_environment(env),
            stdin=subprocess.DEVNULL,
        )
        os.close(child_read)
        os.close(child_write)
        self._send = Connection(parent_write, readable=False)
        self._receive = Connection(parent_read, writable=False)
        try:
            self.call("init", backend=backend, options=options)
        except BaseException:
            self.close()
            raise

    @property
    def pid(self) -> int:
        return self._process.pid

    def call(self, command: str, *, timeout: float = ANSWER_TIMEOUT_S, **kwargs):
        """Run ``command`` in the worker; a worker that does not answer within ``timeout``
        seconds is killed and an FffError raised, so a hung backend cannot hang a whole study."""
        try:
            self._send.send((command, kwargs))
        except BrokenPipeError:
            raise FffError(f"{self.backend} worker died (exit code {self._process.wait()}) before '{command}'") from None
        try:
            if not self._receive.poll(timeout):
                self._process.kill()
                self._process.wait()
                raise FffError(f"{self.backend} worker did not answer '{command}' within {timeout:.0f} s "
                               "and was stopped (a hung backend, or a machine far too loaded)")
            reply = self._receive.recv()
        except EOFError:
            code = self._process.wait()
            raise FffError(f"{self.backend} worker died (exit code {code}) during '{command}'"
                           + (" — out of memory?" if code == -9 else "")) from None
        status, *payload = reply
        if status == "ok":
            return payload[0]
        if status == "error":
            name, message = payload
            raise getattr(fff.errors, name, FffError)(message)
        # The traceback's last line (the exception) leads, so a one-line CLI error still names it.
        trace = payload[0].strip()
        raise FffError(f"{self.backend} worker failed during '{command}': {trace.splitlines()[-1]}\n{trace}")

    def close(self) -> None:
        if self._process.poll() is None:
            try:
                self._send.send(("stop", {}))
                self._process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self._process.kill()
                self._process.wait()
        self._send.close()
        self._receive.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _serve(receive: Connection, send: Connection) -> None:
    from fff.backends import BACKENDS

    backend = None
    while True:
        try:
            command, kwargs = receive.recv()
        except EOFError:
            return  # the parent went away
        if command == "stop":
            send.send(("ok", None))
            return
        try:
            if command == "init":
                backend = BACKENDS[kwargs["backend"]](**kwargs["options"])
                result = None
            else:
                result = getattr(backend, command)(**kwargs)
            send.send(("ok", result))
        except FffError as error:
            send.send(("error", type(error).__name__, str(error)))
        except Exception:  # a bug, not the user's doing: report it whole
            send.send(("crash", traceback.format_exc()))


if __name__ == "__main__":
    _serve(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False))
