"""Building a target and each stack's artifact in a child process: the main process does no risky work.

A user's ``module:function`` may never return, call ``os._exit``, or allocate more memory than
the machine has; ``ov.convert_model`` keeps about 14 MB per converted model for the life of the
process. So the profiler's pipeline builds the model, counts its FLOPs and has every stack
prepare its artifact (``Backend.prepare_artifact``: OpenVINO's IR, ...) in a long-lived child (a
Worker serving ``BuildService``), under the workers' time limit (FFF_WORKER_TIMEOUT) and crash
containment, and gets back plain data: the input shape, FLOPs, parameters and each stack's
artifact. A hang becomes a one-line error after the limit, a crash a one-line
error naming the exit status or signal, an allocation failure "input too large: ... needs N GB".

One child is reused across targets because starting one costs an import of torch and openvino
(seconds; bench/README.md has the figures); it is started again after it crashed or hung, and
when its memory grew by more than RESTART_GROWTH_BYTES since its first target, which keeps both
processes' memory flat over hundreds of targets. ``fff.build()`` stays in-process: it returns
an ``nn.Module``, which cannot cross a process boundary cheaply.
"""

from __future__ import annotations

import atexit
import os
import time
from dataclasses import dataclass, field

from fff.errors import FffError, UsageError, allocation_failure

__all__ = ["Builder", "BuiltTarget", "BuildService", "shared_builder", "RESTART_GROWTH_BYTES"]

RESTART_GROWTH_BYTES = 1 << 30


@dataclass(frozen=True)
class BuiltTarget:
    """What the profiler needs of a built target, as plain data."""

    name: str
    input_shape: tuple[int, ...]
    flops: int | None
    params: int
    has_module: bool  # False for model files: no PyTorch baseline
    # backend name -> what Backend.prepare_artifact gave (plain data: an IR's path, "cached", "notes")
    artifacts: dict = field(default_factory=dict)
    notes: tuple[str, ...] = field(default=())  # said once to the user (a rebuilt cache entry)
    uncounted_ops: tuple[str, ...] = ()  # what the FLOPs leave out (fff.models.Model)
    flops_counter: str = "torch.utils.flop_counter"
    input_shape_source: str | None = None
    outputs: tuple[str, ...] = ()  # the output tensors' names, in order (fff.models.outputs); () for files


def _machine_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def too_large(target: str, build_options: dict, needed: int) -> UsageError:
    given = ", ".join(f"{k} {v}" for k, v in build_options.items() if v is not None)
    gigabytes = needed / 1e9
    size = (f"needs {gigabytes:,.0f} GB for one tensor" if gigabytes >= 10 else f"needs {gigabytes:.2g} GB for one tensor"
            ) if needed else "needs more memory than it could get"
    return UsageError(f"input too large: {target}{f' ({given})' if given else ''} {size}; this machine has "
                      f"{_machine_memory() / 1e9:.0f} GB (choose a smaller resolution, batch or width)")


# --- the child's side ----------------------------------------------------------------------------

def _backend(where: str):
    """The backend class at ``module:Class`` (resolved in the parent first, so a bad name never gets here)."""
    from fff.backends import backend_class

    return backend_class(where)


def _prepares(cls) -> bool:
    """Whether the stack prepares anything here (overrides Backend.prepare_artifact, which makes nothing)."""
    from fff.backends.base import Backend

    return getattr(cls.prepare_artifact, "__func__", None) is not Backend.prepare_artifact.__func__


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class BuildService:
    """Served by fff.measure.worker in the builder child: one call per target."""

    name = "builder"

    def __init__(self, **_):
        self._last = None  # (target, build_options, model): the cache model reuses the module just built

    def build(self, target: str, build_options: dict, backends: dict[str, str], cache_dir: str | None = None,
              fresh: tuple[str, ...] = (), precisions: dict[str, str] | None = None,
              calibration: str | None = None) -> dict:
        """Build the target and the artifact of each of ``backends`` (name -> ``module:Class``) that can
        run it; ``fresh``: the backends whose cached artifact is made again regardless; ``precisions``:
        the precision each backend computes in (f32 where not given); ``calibration``: the images an
        int8 stack calibrates on (None: synthetic)."""
        from fff.models import build

        self._last = None
        try:
            model = build(target, **build_options)
            self._last = (target, build_options, model)
            artifacts = {}
            for name, where in backends.items():
                cls = _backend(where)
                if model.module is None and cls.needs_module:
                    continue  # a model file: the stacks that need the PyTorch module sit it out
                precision = (precisions or {}).get(name, "f32")
                # Passed on only where it changes the artifact (int8: a quantized model), so a stack written
                # before precisions reached the builder (no such parameter) still runs f32, bf16 and f16.
                extra = {"precision": precision} if precision == "int8" else {}
                if extra and calibration is not None:
                    extra["calibration"] = calibration
                started = time.perf_counter()
                artifacts[name] = cls.prepare_artifact(model, cache_dir=cache_dir, fresh=name in fresh, **extra)
                if _prepares(cls):  # a stack with nothing to prepare (PyTorch eager) has no prepare_s, not 0
                    artifacts[name]["prepare_s"] = time.perf_counter() - started
        except (RuntimeError, MemoryError) as error:
            needed = allocation_failure(error)
            if needed is None:
                raise
            raise too_large(target, build_options, needed) from None
        return {"name": model.name, "input_shape": list(model.input_shape), "flops": model.flops,
                "params": model.params, "has_module": model.module is not None, "artifacts": artifacts,
                "rss_bytes": _rss_bytes(), "uncounted_ops": list(model.uncounted_ops),
                "flops_counter": model.flops_counter, "input_shape_source": model.input_shape_source,
                "outputs": list(model.outputs)}

    def model_caches(self, target: str, build_options: dict, backends: dict[str, str], artifacts: dict,
                     precision: str | dict, cache: str | None, extra_caches: tuple[str, ...] = ()) -> dict:
        """fff.explain.cache_model's tensor-level LL model of every backend, here rather than in the main
        process: tracing runs the user's module once and compiles the artifacts."""
        from fff.explain.cache_model import record_fields

        tracers = {name: _backend(where).cache_trace for name, where in backends.items()}
        return record_fields(tracers, artifacts, precision=precision, cache=cache,
                             model=self._model(target, build_options), extra_caches=tuple(extra_caches))

    def save_module(self, target: str, build_options: dict, path: str) -> bool:
        """The module just built, saved whole (torch.save) for the simulation child to load instead of
        building it again under valgrind. False when it cannot be pickled (a user's local class)."""
        import pickle

        import torch

        model = self._model(target, build_options)
        if model.module is None:
            return False
        try:
            torch.save(model.module, path)
        except (pickle.PicklingError, AttributeError, TypeError):
            if os.path.exists(path):
                os.unlink(path)
            return False
        return True

    def rss(self) -> int:
        return _rss_bytes()

    def _model(self, target: str, build_options: dict):
        """The model ``build`` just built for this target, else built now."""
        from fff.models import build

        if self._last is not None and self._last[:2] == (target, build_options):
            return self._last[2]
        return build(target, **build_options)


# --- the parent's side ---------------------------------------------------------------------------

class Builder:
    """Parent side: one builder child, reused, restarted when it died, hung or grew."""

    def __init__(self, *, timeout: float | None = None, max_growth: int = RESTART_GROWTH_BYTES):
        self.timeout = timeout  # None: the workers' limit (FFF_WORKER_TIMEOUT, else 600 s)
        self.max_growth = max_growth
        self._worker = None
        self._worker_roots = ()  # user_module_roots() when the child started: its PYTHONPATH
        self._first_rss = None
        self.restarts = 0  # after the first start: crashes, hangs and memory growth

    @property
    def pid(self) -> int | None:
        return None if self._worker is None else self._worker.pid

    def prepare(self, target: str, build_options: dict, backends: dict[str, str], *, cache_dir=None,
                fresh: tuple[str, ...] = (), precisions: dict[str, str] | None = None,
                calibration: str | None = None) -> BuiltTarget:
        """Build ``target`` and the artifacts of ``backends`` (name -> ``module:Class``) in the child,
        each at its precision in ``precisions`` (f32 where not given); ``calibration``: int8's images."""
        reply = self._call("build", target, build_options=build_options, backends=dict(backends),
                           cache_dir=None if cache_dir is None else str(cache_dir), fresh=tuple(fresh),
                           precisions=dict(precisions or {}), calibration=calibration)
        rss = reply.pop("rss_bytes")
        if self._first_rss is None:
            self._first_rss = rss
        elif rss - self._first_rss > self.max_growth:
            self._discard()  # a fresh child next time: memory back to its start
        notes = tuple(note for artifact in reply["artifacts"].values() for note in artifact.get("notes", ()))
        return BuiltTarget(name=reply["name"], input_shape=tuple(reply["input_shape"]), flops=reply["flops"],
                           params=reply["params"], has_module=reply["has_module"], artifacts=reply["artifacts"],
                           notes=notes,
                           uncounted_ops=tuple(reply["uncounted_ops"]), flops_counter=reply["flops_counter"],
                           input_shape_source=reply["input_shape_source"], outputs=tuple(reply["outputs"]))

    def model_caches(self, target: str, build_options: dict, backends: dict[str, str], artifacts: dict,
                     precision: str | dict, cache: str | None, extra_caches: tuple[str, ...] = ()) -> dict:
        """The cache model's record fields per backend, computed in the builder child; ``extra_caches``:
        further LL sizes, modelled from the same trace (each backend's ``ll_sizes``)."""
        return self._call("model_caches", target, build_options=build_options, backends=dict(backends),
                          artifacts=artifacts, precision=precision, cache=cache, extra_caches=list(extra_caches))

    def save_module(self, target: str, build_options: dict, path: str) -> bool:
        """Save the target's PyTorch module whole to ``path`` (BuildService.save_module)."""
        return self._call("save_module", target, build_options=build_options, path=str(path))

    def _call(self, command: str, target: str, **kwargs):
        from fff.measure.child_process import user_module_roots
        from fff.measure.worker import Worker

        if self._worker is not None and self._worker_roots != user_module_roots():
            self.close()  # a plugin or target from a directory the child's PYTHONPATH lacks
        if self._worker is None:
            self._worker_roots = user_module_roots()
            self._worker = Worker("builder", served="fff.builder:BuildService")
            self._first_rss = None
        try:
            return self._worker.call(command, timeout=self.timeout, target=target, **kwargs)
        except FffError as error:
            if not self._worker.running:  # hung (and stopped) or crashed: name the target
                self._discard()
                raise FffError(f"{target}: {str(error).splitlines()[0]}") from None
            raise
        except BaseException:
            self._worker.kill()  # interrupted mid-call: its answer would arrive out of turn
            self._discard()
            raise

    def _discard(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None
            self.restarts += 1

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None


_shared: Builder | None = None


def shared_builder() -> Builder:
    """The builder of this process (started on first use, closed at exit)."""
    global _shared
    if _shared is None:
        _shared = Builder()
        atexit.register(_shared.close)
    return _shared
