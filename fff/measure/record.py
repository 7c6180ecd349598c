"""The record of one target on one stack: what was measured, as the JSON that ``--json`` writes.

``measured_record`` makes the fields every record has (latency statistics, first inference,
verdict, contention, counters, effective configuration, machine, versions); ``compare_with_baseline``
adds an accelerated stack's speed-up, its verdict as the worse of its two sides, and parity.
Explanations (cache model, simulation, roofline, breakdown, flame graph) are added by the caller
from fff.explain. The schema's fields are listed in ../shared/design.md ("Interfaces").
"""

from __future__ import annotations

from datetime import datetime, timezone

from fff.measure.contention import record_verdict, summarize_rounds, worst
from fff.measure.machine import machine_info, versions
from fff.measure.stats import instability_warnings, speedup_with_ci, summarize

__all__ = ["SCHEMA", "measured_record", "compare_with_baseline", "verdict_of"]

SCHEMA = "fff.profile/1"


def verdict_of(side, min_rounds: int) -> tuple[str, str]:
    """(verdict, reason) of one stack's rounds (fff.measure.contention.record_verdict)."""
    return record_verdict(side.clean_rounds, min_rounds, [summarize(side.all_samples).ci_halfwidth_rel])


def measured_record(target: str, side, model, options, *, device: str, verdict: tuple[str, str],
                    interleaving: dict, timestamp: str | None = None, packages: tuple[str, ...] = ()) -> dict:
    """The fields of one stack's record that its own rounds give (``side``: fff.measure.rounds.Side)."""
    samples = side.all_samples
    latency = summarize(samples)
    record = {
        "schema": SCHEMA,
        "target": target,
        "backend": side.name,
        "device": device,
        "precision": options.precision,
        "threads": options.threads,
        "batch": model.input_shape[0],
        "input_shape": list(model.input_shape),
        "flops": model.flops,
        "flops_convention": f"2 x multiply-adds ({model.flops_counter}), one inference of the whole batch",
        "uncounted_ops": list(model.uncounted_ops),  # what the FLOPs leave out
        "input_shape_source": model.input_shape_source,
        "outputs": list(model.outputs),  # the output tensors' names; parity lists each when there are several
        "params": model.params,
        "latency_ms": latency.as_dict(),
        "first_inference_ms": side.prepared["first_inference_ns"] / 1e6,
        "gflops_per_s": model.flops / (latency.median / 1e3) / 1e9 if model.flops else None,
        "speedup": None,
        "speedup_ci95": None,
        "parity": None,
        "counters": {},
        "derived_counters": {},
        "verdict": verdict[0],
        "verdict_reason": verdict[1],
        "contention": {**summarize_rounds(side.usages, side.problems, side.tails),
                       "rounds": [dict(u.as_dict(), left_out=p, tail=t)
                                  for u, p, t in zip(side.usages, side.problems, side.tails)]},
        "warnings": list(model.notes) + instability_warnings(latency, f"{target} {side.name}",
                                                             target_rel=options.target_ci),
        "interleaving": interleaving,
        "clock": side.prepared["clock"],
        "config": side.prepared["config"],
        "machine": machine_info(),
        "versions": versions(packages),  # packages: the stack's own (Backend.packages)
        "timestamp": timestamp or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "samples_ns": samples.tolist() if options.keep_samples else None,
    }
    if side.kept_counter_rounds:
        from fff.measure.counters import merge

        merged = merge(side.kept_counter_rounds)
        record["counters"] = merged.as_record()
        record["derived_counters"] = {name: {"value": m.value, "reason": m.reason}
                                      for name, m in merged.derived().items()}
    return record


def compare_with_baseline(record: dict, side, baseline, baseline_verdict: tuple[str, str], min_rounds: int,
                          parity: dict) -> None:
    """An accelerated stack's speed-up over ``baseline`` (a Side) with its bootstrap CI, its verdict
    (as trustworthy as the worse of its two sides and its own CI) and ``parity`` (a Parity record)."""
    point, low, high = speedup_with_ci(baseline.all_samples, side.all_samples)
    record["speedup"], record["speedup_ci95"] = point, [low, high]
    spread, why = record_verdict(min_rounds, min_rounds, [(high - low) / 2 / point])
    candidates = [(record["verdict"], record["verdict_reason"]),
                  (baseline_verdict[0], f"{baseline.name}: {baseline_verdict[1]}" if baseline_verdict[1] else ""),
                  (spread, f"speed-up's {why}" if why else "")]
    record["verdict"] = worst(v for v, _ in candidates)
    record["verdict_reason"] = "; ".join(r for v, r in candidates if v == record["verdict"] and r)
    record["parity"] = parity
