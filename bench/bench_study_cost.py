"""What the cache figures cost a study, from the study's own results file.

    python bench/bench_study_cost.py RESULTS.jsonl

Reads one run of a study (fff-study --out RESULTS.jsonl) and splits its time: the timed cells
(builds, conversions, timed rounds, breakdowns), the tensor-level cache model inside them
(each record's cache_model.elapsed_s), and the simulation phase after them (the last
"simulated" row's phase_seconds). The study without cache figures is the same run less the model
and the simulation phase; the ratio is issue #13's target (a): at most 1.5x. A fully simulated
study (simulate_cache = true, or a timed one resumed with --resume --extend --simulate-cache)
gives target (b): its simulation phase at most 45 minutes.
"""

from __future__ import annotations

import json
import sys


def _model_seconds(records: list[dict]) -> float:
    """The cache model's cost in one cell: the whole call (target_seconds, both backends), else the
    sum of each backend's own time (results written before target_seconds existed)."""
    models = [rec.get("cache_model") or {} for rec in records]
    whole = [m["target_seconds"] for m in models if m.get("target_seconds") is not None]
    return max(whole) if whole else sum(m.get("elapsed_s") or 0 for m in models)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    rows = [json.loads(line) for line in open(argv[0]) if line.strip()]
    timed = [r for r in rows if r.get("status") in ("ok", "error")]
    simulated = [r for r in rows if r.get("status") == "simulated"]
    cells_s = sum(r.get("seconds") or 0 for r in timed)
    model_s = sum(_model_seconds(r.get("records") or []) for r in timed)
    phases = {}
    for r in simulated:  # one entry per simulation phase (a resumed study may have run several)
        phases[r.get("phase_started")] = max(phases.get(r.get("phase_started"), 0), r.get("phase_seconds") or 0)
    simulation_s = sum(phases.values())
    jobs = [(b, f.get("simulation") or {}) for r in simulated for b, f in (r.get("simulations") or {}).items()]
    print(f"cells timed: {len(timed)}, {cells_s:.0f} s (of which the cache model {model_s:.0f} s)")
    print(f"cells simulated: {len(simulated)} in {len(phases)} phase(s), {simulation_s:.0f} s; "
          f"{sum(1 for _, s in jobs if s.get('error'))} failed backend(s); "
          f"job seconds summed {sum(s.get('elapsed_s') or 0 for _, s in jobs):.0f}")
    without = cells_s - model_s
    with_ = cells_s + simulation_s
    print(f"study without cache figures: {without:.0f} s; with them: {with_:.0f} s; ratio {with_ / without:.2f} "
          f"(target (a) <= 1.5 when only the calibration subset is simulated); simulation phase "
          f"{simulation_s / 60:.1f} min (target (b) <= 45 min when every cell is simulated)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
