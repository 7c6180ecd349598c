"""A long-lived Python process under valgrind that simulates one job after another, each in a fork.

Starting a simulation costs more than most of what it measures: importing torch under valgrind
took 24-30 s of CPU (17 s of it loading the registry build's CUDA libraries), and every fresh
process pays it again (issue #13). So fff starts the simulated interpreter once, imports the
runtimes there, and forks one child per job: the child inherits the imports for free, builds or
loads its model, and runs the measured inferences between callgrind's client requests. A fork
per job, rather than a plain loop over jobs in one process, keeps each job as clean as a fresh
process: PyTorch jobs run in one long process drifted by +74% in LL misses, forked ones stayed
within ~7% of a fresh process (issue #13).

Callgrind follows the fork: with ``%p`` in the output file name every child writes its own
``callgrind.out.<pid>.N`` dumps, so a job's counts are found by the child's pid. Instrumentation
is off in the server (``--instr-atstart=no``), so it simulates nothing while it waits.

Protocol: the parent writes one JSON request per line on the server's stdin ({"id", "job"}; a
job names its run function, ``{"run": "module:function", "kwargs": {...}}``, which a backend's
``simulation_job`` gives, and the file the child writes its outcome to); the server
answers on its stdout, one JSON line per event ({"event": "ready"} once its imports are done; per
job {"id", "pid", "event": "started"}, then {"id", "pid", "exit": code}). Anything the runtimes print goes to stderr, never into the answers.
The server leaves when its stdin closes (its parent finished or died).

    python -P -m fff.explain.simulation_server [MODULE ...]   # under valgrind; MODULEs imported once, up front
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from fff.errors import FffError

__all__ = ["SimulationServer", "SimulationResult", "PRELOAD", "ISA_CAPS"]

# The ISA caps a server can put on the kernels it simulates, by name: oneDNN's (OpenVINO's CPU
# plugin and PyTorch's oneDNN kernels honour ONEDNN_MAX_CPU_ISA) and MKL's (PyTorch's BLAS).
# ATEN_CPU_CAPABILITY is left alone: it changes PyTorch's seeded weights. Here, where they are
# applied, and importing nothing heavy, so the command lines and the study file can name them.
ISA_CAPS = {"sse41": ("SSE41", "SSE4_2"), "avx": ("AVX", "AVX"), "avx2": ("AVX2", "AVX2")}

# What every study server imports once (each stack's packages and module come on top, from its
# Backend.packages): every job then starts from an interpreter that has them.
PRELOAD = ("fff.models",)

@dataclass(frozen=True)
class SimulationResult:
    """Simulated counters for ``iterations`` inferences (warm-up excluded, simulated caches warm)."""

    counters: CounterResults
    events: dict[str, int]  # callgrind's totals over the measured inferences (Ir, D1mr, DLmr, ...)
    iterations: int
    warmup: int
    geometry: object
    elapsed_s: float
    caveat: str = ""
    isa_cap: str | None = None  # ISA_CAPS key the kernels were capped at; None: what valgrind's CPU offers
    command: list[str] = field(default_factory=list, repr=False)
    child: dict = field(default_factory=dict, repr=False)  # what the child reported (config, ...)

    def per_inference(self, name: str) -> float | None:
        return self.counters[name].per_inference()


_USER_ERRORS = ("UsageError", "ModelFileError", "ShapeError", "DeviceError", "CompileError", "TargetError")


class SimulationServer:
    """Parent side of one server: ``run(job)`` -> SimulationResult. One job at a time."""

    def __init__(self, ll=None, isa_cap: str | None = None, preload: tuple[str, ...] = ()):
        from fff.explain.cache_geometry import cache_geometry
        from fff.explain.callgrind import valgrind_path
        from fff.measure.child_process import child_environment, python_module_command

        valgrind = valgrind_path()  # before anything is created: a missing valgrind leaves nothing behind
        self.geometry = cache_geometry(ll)
        self.isa_cap = isa_cap
        self._directory = tempfile.TemporaryDirectory(prefix="fff-simserver-")
        self.directory = Path(self._directory.name)
        self._stderr = open(self.directory / "stderr.txt", "w+")
        self.command = [valgrind, "--tool=callgrind", "--cache-sim=yes", "--instr-atstart=no",
                        *self.geometry.valgrind_options(), f"--callgrind-out-file={self.directory}/callgrind.out.%p",
                        *python_module_command("fff.explain.simulation_server", *preload)]
        # One thread wherever a runtime looks for it, one malloc arena and a fixed hash seed: the
        # fewer things that move buffers between runs, the more repeatable the counts.
        env = child_environment({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "1",
                                 "PYTHONHASHSEED": "0"})
        if isa_cap:
            env["ONEDNN_MAX_CPU_ISA"], env["MKL_ENABLE_INSTRUCTIONS"] = ISA_CAPS[isa_cap]
        # A session of its own: Ctrl-C in the terminal reaches fff, which stops the server itself.
        self._process = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=self._stderr, env=env, start_new_session=True)
        self._buffer = b""
        self._next_id = 0
        self._started = time.monotonic()
        self.start_seconds = None  # valgrind's start and the imports (PRELOAD), until the server is ready

    @property
    def running(self) -> bool:
        return self._process.poll() is None

    def run(self, job: dict, iterations: int, warmup: int, timeout: float | None) -> SimulationResult:
        """Simulate ``job`` (``{"run": "module:function", "kwargs": {...}}``) in a fork of the server."""
        from fff.explain.callgrind import CAVEAT, DUMP_LABEL, counters_from_events, parse_callgrind_totals

        if self.start_seconds is None:  # not part of the job's time: a server serves many
            while self._answer(None if timeout is None else time.monotonic() + timeout, timeout).get("event") != "ready":
                pass
            self.start_seconds = time.monotonic() - self._started
        self._next_id += 1
        request_id = self._next_id
        result_path = self.directory / f"result-{request_id}.json"
        job = {"run": job["run"], "kwargs": {**job.get("kwargs", {}), "iterations": iterations, "warmup": warmup},
               "result": str(result_path)}
        start = time.monotonic()
        deadline = None if timeout is None else start + timeout
        try:
            self._process.stdin.write((json.dumps({"id": request_id, "job": job}) + "\n").encode())
            self._process.stdin.flush()
        except (BrokenPipeError, ValueError):
            raise FffError(f"the cache simulation server had stopped: {self._stderr_tail()}") from None
        while True:
            answer = self._answer(deadline, timeout)
            if answer.get("id") != request_id:
                continue
            pid = answer["pid"]
            if "exit" in answer:
                break
        elapsed = time.monotonic() - start
        child = json.loads(result_path.read_text()) if result_path.exists() else {}
        result_path.unlink(missing_ok=True)
        dumps = sorted(self.directory.glob(f"callgrind.out.{pid}*"))
        try:
            if answer["exit"] != 0 or "error" in child:
                if child.get("error_class") in _USER_ERRORS:
                    import fff.errors

                    raise getattr(fff.errors, child["error_class"], FffError)(child["error"])
                raise FffError(f"cache simulation failed ({_exit_text(answer['exit'])}): "
                               f"{child.get('error') or self._stderr_tail() or 'no output'}")
            events = None
            for path in dumps:
                description, totals = parse_callgrind_totals(path)
                if description.endswith(DUMP_LABEL):
                    events = totals
            if events is None:
                raise FffError("callgrind wrote no profile of the measured inferences (the client requests did "
                               "not reach valgrind; was fff built with valgrind/callgrind.h?)")
        finally:
            for path in dumps:
                path.unlink(missing_ok=True)
        return SimulationResult(counters_from_events(events, iterations, self.geometry, self.isa_cap), events,
                                iterations, warmup, self.geometry, elapsed, caveat=CAVEAT, command=self.command,
                                child=child, isa_cap=self.isa_cap)

    def _answer(self, deadline: float | None, timeout: float | None) -> dict:
        """The server's next answer line; FffError (and the server stopped) when it died or time ran out."""
        stdout = self._process.stdout.fileno()
        while b"\n" not in self._buffer:
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                self.close()
                raise FffError(f"cache simulation took longer than {timeout:.0f} s; use a smaller model "
                               "(valgrind runs code 50-100x slower)")
            ready, _, _ = select.select([stdout], [], [], None if wait is None else min(wait, 1.0))
            if not ready:
                continue
            chunk = os.read(stdout, 65536)
            if not chunk:
                status = self._process.wait()
                raise FffError(f"the cache simulation server stopped ({_exit_text(status)}): {self._stderr_tail()}")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def _stderr_tail(self) -> str:
        self._stderr.flush()
        self._stderr.seek(0)
        lines = [line for line in self._stderr.read().strip().splitlines() if not line.startswith("==")]
        return "\n".join(lines[-8:])

    def close(self) -> None:
        """Stop the server and whatever job it is running, and remove its files."""
        if self._process.poll() is None:
            try:
                os.killpg(self._process.pid, signal.SIGKILL)  # the forked job is in the same group
            except ProcessLookupError:
                pass
        self._process.wait()
        for stream in (self._process.stdin, self._process.stdout, self._stderr):
            try:
                stream.close()
            except OSError:
                pass
        self._directory.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()


def _exit_text(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


# --- the server (under valgrind) ------------------------------------------------------------

def _run_job(job: dict) -> int:
    """In the forked child: the job between the client requests, its outcome written to a file."""
    from fff.measure.child_process import import_user_module  # a plugin stack may live in the working directory

    from fff import _native

    out = {"running_on_valgrind": bool(_native.running_on_valgrind())}
    status = 0
    try:
        module, _, function = job["run"].partition(":")
        out.update(getattr(import_user_module(module), function)(**job["kwargs"]) or {})
    except FffError as error:
        out.update(error=str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__,
                   error_class=type(error).__name__)
        status = 2
    except Exception as error:  # noqa: BLE001 - whatever a user's model raises is this job's outcome
        out.update(error=f"{type(error).__name__}: {error}", error_class=type(error).__name__)
        status = 1
    with open(job["result"], "w") as f:
        json.dump(out, f)
    return status


def _serve(preload: list[str]) -> int:
    from fff.measure.child_process import import_user_module  # a plugin stack may live in the working directory

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever a runtime prints goes to stderr, not into the answers
    for name in preload:
        import_user_module(name)
    answers.write(json.dumps({"event": "ready"}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the job: never back into this loop, whatever happens
            status = 1
            try:
                status = _run_job(request["job"])
            except BaseException:  # noqa: BLE001 - a SystemExit or worse from a user's model
                pass
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(status)
        answers.write(json.dumps({"id": request["id"], "pid": pid, "event": "started"}) + "\n")
        _, wait_status = os.waitpid(pid, 0)
        answers.write(json.dumps({"id": request["id"], "pid": pid, "exit": os.waitstatus_to_exitcode(wait_status)})
                      + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(_serve(sys.argv[1:]))
