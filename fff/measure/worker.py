"""A backend measured in a process of its own.

The parent (fff.profiling) starts one worker per backend with ``python -P -m fff.measure.worker`` and drives
them in interleaved rounds, so each backend's thread pool (OpenMP for PyTorch, TBB for
OpenVINO) lives alone in its process and only one backend computes at a time. Messages are
pickled over a dedicated pipe, leaving the worker's stdout and stderr to the libraries. A round's
answer waits until the worker's own threads have gone quiet (fff.measure.contention.settle): a pool
that spins on after its work (onnxruntime's) would otherwise take CPU from the next stack's round.
The answer says how long that took (``tail``).

The worker serves one object, named by ``module:Class`` (a backend's class from fff.backends'
registry, or fff.builder's build service): it knows no backend by name, so a stack written
outside fff is served exactly as the built-in ones are.

Protocol: the parent sends (command, kwargs); the worker answers ("ok", value),
("error", FffError class name, message) or ("crash", exception class name, its informative
line, traceback text).
"""

from __future__ import annotations

import signal

if __name__ == "__main__":
    # Ctrl-C reaches every process of the terminal's group, but stopping the workers is the
    # parent's job (it closes them and says what was kept): no KeyboardInterrupt traceback here.
    # Set first, before the imports below, which take long enough to be interrupted.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

import os
import subprocess
import sys
import traceback
from multiprocessing.connection import Connection

import fff.errors
from fff.measure.child_process import child_environment, import_user_module, python_module_command
from fff.errors import FffError, openvino_reason
from fff.measure.contention import settle

__all__ = ["Worker", "TIMEOUT_VARIABLE"]

# Longest wait for any one answer: a model's compile, warm-up or timed round takes seconds to a
# minute on the largest zoo models here; ten minutes means a hang. FFF_WORKER_TIMEOUT overrides it
# (seconds) for models or machines slower than that.
TIMEOUT_VARIABLE = "FFF_WORKER_TIMEOUT"


def _answer_timeout() -> float:
    text = os.environ.get(TIMEOUT_VARIABLE, "600")
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise fff.errors.UsageError(f"{TIMEOUT_VARIABLE} must be a positive number of seconds, got {text!r}")
    return value


class Worker:
    """Parent side: a backend in a child process. Use as a context manager."""

    def __init__(self, backend: str, served: str, env: dict | None = None, **options):
        """``backend``: the name errors give it; ``served``: ``module:Class`` built in the child with ``options``."""
        parent_read, child_write = os.pipe()
        child_read, parent_write = os.pipe()
        self.backend = backend
        self.timeout = _answer_timeout()  # read once: a bad value fails before the process starts
        self._process = subprocess.Popen(
            python_module_command("fff.measure.worker", str(child_read), str(child_write)),
            pass_fds=(child_read, child_write),
            env=child_environment(env),
            stdin=subprocess.DEVNULL,
        )
        os.close(child_read)
        os.close(child_write)
        self._send = Connection(parent_write, readable=False)
        self._receive = Connection(parent_read, writable=False)
        try:
            self.call("init", served=served, options=options)
        except BaseException:
            self.close()
            raise

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process.poll() is None

    def call(self, command: str, *, timeout: float | None = None, **kwargs):
        """Run ``command`` in the worker; a worker that does not answer within ``timeout``
        seconds (default: FFF_WORKER_TIMEOUT when the worker started, else 600) is killed and an
        FffError raised, so a hung backend cannot hang a whole study."""
        timeout = self.timeout if timeout is None else timeout
        try:
            self._send.send((command, kwargs))
        except BrokenPipeError:
            raise self._died(f"before '{command}'") from None
        try:
            if not self._receive.poll(timeout):
                self._process.kill()  # hung: no point waiting for it to end by itself
                self._process.wait()
                raise FffError(f"{self.backend} worker did not answer '{command}' within {timeout:g} s "
                               f"and was stopped (hung, or the machine far too loaded; "
                               f"{TIMEOUT_VARIABLE} sets the limit)")
            reply = self._receive.recv()
        except EOFError:
            raise self._died(f"during '{command}'") from None
        status, *payload = reply
        if status == "ok":
            return payload[0]
        if status == "error":
            name, message = payload
            raise getattr(fff.errors, name, FffError)(message)
        # The exception's class and first line lead, so a one-line CLI error still names it.
        kind, summary, trace = payload
        raise FffError(f"{self.backend} worker failed during '{command}': {kind}: {summary}\n{trace}")

    def _stop(self) -> int:
        """Wait briefly for the process to end (it may be tearing its thread pools down), then kill it."""
        try:
            return self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            return self._process.wait()

    def _died(self, when: str) -> FffError:
        code = self._stop()
        if code < 0:
            try:
                how = f"killed by signal {-code} ({signal.Signals(-code).name})"
            except ValueError:
                how = f"killed by signal {-code}"
        else:
            how = f"exit status {code}"
        return FffError(f"{self.backend} worker died ({how}) {when}"
                        + (" — out of memory?" if code == -signal.SIGKILL else ""))

    def close(self) -> None:
        if self._process.poll() is None:
            try:
                self._send.send(("stop", {}))
            except OSError:
                pass
            # Closing our end first: a worker still sending an answer nobody will read (an
            # interrupted call) gets EPIPE and exits at once instead of blocking until killed.
            self._receive.close()
            self._stop()
        self._send.close()
        self._receive.close()

    def kill(self) -> None:
        """Stop at once, whatever it is doing (an interrupted build nobody waits for)."""
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _served(where: str):
    """The class ``module:Class`` names (the parent resolved it already: a failure here is a bug)."""
    module, _, name = where.partition(":")
    served = import_user_module(module)  # a plugin in the working directory, which -P left off sys.path
    for part in name.split("."):
        served = getattr(served, part)
    return served


def _stop_if_orphaned(*_):
    # SIGTERM to the whole process group (a scheduler's time limit): the parent stops its
    # workers itself, after saving; a worker whose parent is gone just leaves, silently.
    if os.getppid() != _parent:
        os._exit(0)


_parent = os.getppid()


def _serve(receive: Connection, send: Connection) -> None:
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
                backend = _served(kwargs["served"])(**kwargs["options"])
                result = None
            else:
                result = getattr(backend, command)(**kwargs)
            if command == "round":  # the next stack's round starts on cores this one's pool has left
                result = {**result, "tail": settle()}
            send.send(("ok", result))
        except FffError as error:
            send.send(("error", type(error).__name__, str(error)))
        except Exception as error:  # a bug, not the user's doing: report it whole
            send.send(("crash", type(error).__name__, openvino_reason(error), traceback.format_exc()))


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _stop_if_orphaned)
    try:
        _serve(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False))
    except OSError:  # BrokenPipe and kin: the parent is gone, no one to tell
        pass
