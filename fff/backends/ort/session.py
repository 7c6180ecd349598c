"""An onnxruntime CPU session configured as fff measures it, and its configuration read back.

- ``intra_op_num_threads = threads``: onnxruntime counts the calling thread in it, so a pool of
  ``threads - 1`` workers is started and ``threads`` threads compute, as the other stacks' do.
- ``inter_op_num_threads = 1`` and sequential execution: one operator at a time, as PyTorch eager
  and OpenVINO's single stream run.
- Spinning on, onnxruntime's default (``session.intra_op.allow_spinning`` and
  ``session.inter_op.allow_spinning`` = 1, set and read back): between parallel sections its
  workers spin rather than sleep, as PyTorch's OpenMP and OpenVINO's TBB threads do by their
  defaults, and turning it off made onnxruntime 1.2-1.7x slower on a quiet machine. fff runs each
  stack in a process of its own, so the 50x slow-down of PyTorch in the same process
  (onnxruntime#13808) cannot happen; the pool's spinning after a round (about 40 ms of a CPU) is
  waited out before the next stack's round starts (fff.measure.contention.settle).
  bench/bench_onnxruntime_spin.py and bench/bench_onnxruntime_spin_verdicts.py measure both
  policies (figures in bench/README.md).
- Graph optimisations at ``ORT_ENABLE_ALL`` (the default): constant folding, conv + activation
  fusion and the NCHWc layout transformer, what a user of onnxruntime gets.

``effective_config`` reads the options back from the session (``get_session_options``), and counts
the threads the session actually started (the process's OS threads before and after it was
made), so a record says what ran, not what was asked.
"""

from __future__ import annotations

import os

__all__ = ["make_session", "effective_config", "SPIN_KEYS"]

SPIN_KEYS = ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning")


def _os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def make_session(path, threads: int, *, spinning: bool = True, profile_prefix: str | None = None,
                 optimized_path: str | None = None):
    """(session, threads the session started) for the ONNX file at ``path`` on the CPU provider;
    ``spinning``: the pool's wait policy (False only for bench/ comparisons); ``optimized_path``:
    where onnxruntime saves the graph it optimised (what it runs)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: its warnings about unused initialisers are not the user's
    for key in SPIN_KEYS:
        options.add_session_config_entry(key, "1" if spinning else "0")
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    if optimized_path is not None:
        options.optimized_model_filepath = str(optimized_path)
    before = _os_threads()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session, _os_threads() - before


def effective_config(session, started_threads: int) -> dict:
    """What the session runs with, read back from it."""
    import onnxruntime as ort

    options = session.get_session_options()
    return {
        "threads": options.intra_op_num_threads,  # counts the calling thread
        "pool_threads_started": started_threads,  # OS threads the session added: threads - 1 expected
        "inter_op_threads": options.inter_op_num_threads,
        "execution_mode": str(options.execution_mode).rsplit(".", 1)[-1],
        "graph_optimization_level": str(options.graph_optimization_level).rsplit(".", 1)[-1],
        **{key: options.get_session_config_entry(key) for key in SPIN_KEYS},
        "providers": ",".join(session.get_providers()),
        "onnxruntime": ort.__version__,
    }
