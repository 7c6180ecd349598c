"""What a record cost, phase by phase: its ``phases`` object, in seconds of wall time.

Every name ends in ``_s`` and is seconds; a phase that did not run for the record is absent, never 0.

- ``prepare_s``: what the stack prepares before its worker can run: the builder child's
  ``prepare_artifact`` (export, convert, quantize; a cache hit costs the key's hashing and the
  checksum check) plus a compilation its worker times itself (``config.compile.seconds``:
  torch-compile compiles in its worker, after its threads are set). ``prepared`` is ``fresh`` or
  ``cached`` as the artifact cache (or the worker's compile cache) knows it, not guessed from the
  time; ``prepared_in`` says where it ran. A stack with nothing to prepare (PyTorch eager) has none.
- ``worker_start_s``: the worker process started, its imports, and the stack loading its artifact
  (a session created, a model compiled by the runtime), as the parent saw it.
- ``warmup_s``: the first inference and the warm-up (the worker's ``prepare`` call, less a
  compilation timed inside it, which is in ``prepare_s``).
- ``calibration_s``: the short probe that sized the rounds.
- ``rounds_s``: the stack's share of the timed rounds (its rounds' wall time, messages included).
- ``breakdown_s``, ``cache_model_s``, ``simulation_s``: the per-layer profile (profiling and
  attribution), the cache model (trace and model) and valgrind's simulation of this stack, where run.
- ``target``: what the target cost once for all its stacks, the same in each of its records (count
  it once per target): ``build_s`` (the builder child's call less the stacks' ``prepare_artifact``:
  building the model, counting its FLOPs, the child's start when it started) and ``roofline_s``
  (the machine's roofs: read from their cache, or measured: tens of seconds, again every few
  minutes while the machine is contended, fff.explain.roofline).
"""

from __future__ import annotations

__all__ = ["record_phases", "PHASES"]

PHASES = ("prepare_s", "worker_start_s", "warmup_s", "calibration_s", "rounds_s", "breakdown_s", "cache_model_s",
          "simulation_s")


def _seconds(value) -> float | None:
    return None if value is None else round(float(value), 6)  # microseconds: a fast phase is never 0


def record_phases(record: dict, artifact: dict, parent: dict, target: dict | None = None) -> dict:
    """``phases`` for ``record`` (its config, breakdown, cache model and simulation already in it):
    ``artifact`` is what the builder gave the stack (``prepare_s``, ``cached``), ``parent`` what the
    profiler timed (``prepare_s`` of artifacts made afresh since, ``worker_start_s``, ``prepare_call_s``,
    ``calibration_s``, ``rounds_s``), ``target`` what it timed once for every stack (``build_s``, ``roofline_s``)."""
    phases: dict = {}
    compiled = (record.get("config") or {}).get("compile")
    compile_s = compiled.get("seconds") if isinstance(compiled, dict) else None
    built = artifact.get("prepare_s")
    if built is not None:
        built += parent.get("prepare_s", 0.0)  # an artifact made afresh after a bad cached one: both count
    if built is not None or compile_s is not None:
        phases["prepare_s"] = _seconds((built or 0.0) + (compile_s or 0.0))
        phases["prepared_in"] = "+".join(where for where, s in (("builder", built), ("worker", compile_s)) if s is not None)
        # The worker's compile cache decides where the worker compiles; else the builder's artifact cache.
        cached = compiled.get("cached") if compile_s is not None else artifact.get("cached")
        if cached is not None:
            phases["prepared"] = "cached" if cached else "fresh"
    if parent.get("worker_start_s") is not None:
        phases["worker_start_s"] = _seconds(parent["worker_start_s"])
    if parent.get("prepare_call_s") is not None:
        phases["warmup_s"] = _seconds(max(0.0, parent["prepare_call_s"] - (compile_s or 0.0)))
    for name in ("calibration_s", "rounds_s"):
        if parent.get(name):
            phases[name] = _seconds(parent[name])
    breakdown = record.get("breakdown") or {}
    if breakdown.get("cost_s") is not None:
        phases["breakdown_s"] = _seconds(breakdown["cost_s"])
    modelled = record.get("cache_model") or {}
    if modelled.get("elapsed_s") is not None:
        phases["cache_model_s"] = _seconds(modelled["elapsed_s"])
    simulated = record.get("simulation") or {}
    if simulated.get("elapsed_s") is not None:
        phases["simulation_s"] = _seconds(simulated["elapsed_s"])
    if target:
        phases["target"] = {name: _seconds(seconds) for name, seconds in target.items()}
    return phases
