"""Interleaved rounds: every stack timed in turn (A B, B A, ...) until each median is known.

The parent drives one worker per stack (fff.measure.worker). A short calibration sizes the rounds
so that ``min_rounds`` rounds of every stack fit in the time cap (a default cap is raised where
they cannot, a user's never); then rounds alternate in order
so that linear drift cancels, each checked for contention (fff.measure.contention): a round in
which a stack got clearly less CPU than it asked for is left out of the statistics and measured
again while the time cap allows. The rounds know stacks only as workers with a name.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from fff.errors import UsageError
from fff.measure.contention import round_problem
from fff.measure.stats import summarize

__all__ = ["Side", "size_rounds", "measure_rounds", "ROUND_SECONDS", "MIN_ITERATIONS", "ROUND_WARMUP", "FIT_MARGIN"]

ROUND_SECONDS = 0.2  # long enough to amortise a round's overhead, short enough to interleave often
MIN_ITERATIONS = 5  # per round: fewer makes every sample one taken just after the other backend ran
# Untimed inferences at the start of every round: the first inference after the other backend
# ran was slower (bench/README.md, "first inference of a round"), so it is run, not timed.
ROUND_WARMUP = 1
# A raised time cap is this much above what the calibration says min_rounds rounds take: each
# round also carries its messages to and from the worker, and rounds vary.
FIT_MARGIN = 1.5


@dataclass
class Side:
    """What one backend gave during one target's measurement."""

    name: str
    worker: object
    prepared: dict
    iterations_per_round: int = 1
    round_seconds: float = 0.0  # the last round's duration as the parent saw it (warm-up and messages included)
    calibration_s: float = 0.0  # the probe that sized its rounds, as the parent saw it (a record's phases)
    rounds_s: float = 0.0  # all its timed rounds together, as the parent saw them (a record's phases)
    samples: list = field(default_factory=list)  # per round, clean or not
    counter_rounds: list = field(default_factory=list)
    usages: list = field(default_factory=list)  # fff.measure.contention.RoundUsage per round
    problems: list = field(default_factory=list)  # None for a clean round, else why it was left out
    tails: list = field(default_factory=list)  # per round, how long its pool took to go quiet after it (settle)

    @property
    def clean_rounds(self) -> int:
        return sum(p is None for p in self.problems)

    def _kept(self, per_round: list) -> list:
        """The clean rounds' entries; every round's when none was clean (the verdict says so)."""
        clean = [value for value, problem in zip(per_round, self.problems) if problem is None]
        return clean if self.clean_rounds else list(per_round)

    @property
    def all_samples(self) -> np.ndarray:
        kept = self._kept(self.samples)
        return np.concatenate(kept) if kept else np.empty(0)

    @property
    def kept_counter_rounds(self) -> list:
        return [c for c in self._kept(self.counter_rounds) if c is not None]


def size_rounds(sides: list[Side], options, label: str) -> dict:
    """Iterations per round from a short calibration (``options``: fff.profiling.ProfileOptions), so
    that ``min_rounds`` rounds of every backend fit in the time cap. A cap that cannot hold them is a
    usage error when the user gave it (never overridden); a default cap (``options.fit_cap``: a
    built-in study's, fff-profile's without --max-time) is a budget, raised for this target to what
    the calibration says they need. Returns the cap the rounds run under, and why it was raised."""
    per_inference, overhead, contended = {}, {}, False
    for side in sides:
        began = time.monotonic()
        probe = side.worker.call("round", iterations=3, warmup=ROUND_WARMUP)
        per_inference[side.name] = float(np.median(probe["samples_ns"])) / 1e9
        # what a round costs beyond its inferences (the messages to and from the worker, its
        # bookkeeping): next to a small model's inferences it is most of a round
        overhead[side.name] = max(0.0, time.monotonic() - began - (3 + ROUND_WARMUP) * per_inference[side.name])
        side.calibration_s += time.monotonic() - began
        contended |= round_problem(probe["usage"]) is not None
    smallest = options.iterations or MIN_ITERATIONS
    cycle = sum((smallest + ROUND_WARMUP) * per_inference[s.name] for s in sides)
    cap, fitted = options.max_seconds, None
    if options.min_rounds * cycle > cap and options.fit_cap:
        cap = round(FIT_MARGIN * options.min_rounds * (cycle + sum(overhead.values())), 3)
        fitted = (f"the default time cap of {options.max_seconds:g} s cannot hold {options.min_rounds} rounds of "
                  f"{smallest} iterations of every backend (one round of each takes about {cycle:.2f} s here, by "
                  f"the calibration): raised to {cap:g} s for this target")
    # Only a calibration that got its CPUs proves the cap too small; a contended one measured the
    # load, and the rounds (smallest size) will say so in the verdict.
    elif options.min_rounds * cycle > cap and not contended:
        raise UsageError(
            f"{label}: a time cap of {options.max_seconds:g} s cannot hold {options.min_rounds} rounds of "
            f"{smallest} iterations of every backend (one round of each takes about {cycle:.2f} s here); raise "
            f"--max-time or lower --min-rounds" + (" or --iterations" if options.iterations else ""))
    wanted = {s.name: options.iterations or ROUND_SECONDS / max(per_inference[s.name], 1e-6) for s in sides}
    if fitted:  # the cap was raised for rounds of the smallest size: larger ones would not fit it again
        wanted = {s.name: smallest for s in sides}
    elif not options.iterations:  # shrink the rounds so that min_rounds pairs of them fit in the cap
        budget = cap / options.min_rounds - sum(ROUND_WARMUP * t for t in per_inference.values())
        scale = min(1.0, budget / sum(wanted[name] * t for name, t in per_inference.items()))
        wanted = {name: int(np.clip(w * scale, MIN_ITERATIONS, 2000)) for name, w in wanted.items()}
    for side in sides:
        side.iterations_per_round = int(wanted[side.name])
        side.round_seconds = (side.iterations_per_round + ROUND_WARMUP) * per_inference[side.name]
    return {"time_cap_s": cap, "time_cap_raised": fitted}


def measure_rounds(sides: list[Side], options, progress: Callable[[str], None], label: str) -> dict:
    """Interleaved rounds until every backend has ``min_rounds`` clean rounds and every median's
    CI is within target, or until the next pair of rounds would not fit in the time cap.
    Contended rounds are left out of the statistics (and re-measured while time remains)."""
    cap = size_rounds(sides, options, label)
    if cap["time_cap_raised"]:
        progress(f"{label}: {cap['time_cap_raised']}")
    order, start, rounds = [], time.monotonic(), 0
    deadline = start + cap["time_cap_s"]
    while True:
        sequence = sides if rounds % 2 == 0 else sides[::-1]  # A B, B A: linear drift cancels
        for side in sequence:
            began = time.monotonic()
            # PyTorch stops timing at the cap (its rounds slow down most under contention);
            # with counters a round runs whole, so that counts and inferences match.
            measured = side.worker.call("round", iterations=side.iterations_per_round, counters=options.counters,
                                        warmup=ROUND_WARMUP,
                                        deadline_s=None if options.counters else max(deadline - began, 0.0))
            side.round_seconds = time.monotonic() - began
            side.rounds_s += side.round_seconds
            side.samples.append(measured["samples_ns"])
            side.counter_rounds.append(measured["counters"])
            side.usages.append(measured["usage"])
            side.problems.append(round_problem(measured["usage"]))
            side.tails.append(measured.get("tail"))  # fff's worker says; tests' scripted workers may not
            order.append(side.name)
        rounds += 1
        elapsed = time.monotonic() - start
        widths = {s.name: summarize(s.all_samples).ci_halfwidth_rel for s in sides}
        progress(f"{label}: round {rounds}, " + ", ".join(
            f"{name} {np.median(s.all_samples) / 1e6:.3f} ms +-{100 * widths[name]:.1f}%"
            + (f" ({len(s.problems) - s.clean_rounds} contended)" if s.clean_rounds < len(s.problems) else "")
            for name, s in zip(widths, sides)) + f" ({elapsed:.1f} s)")
        enough = all(s.clean_rounds >= options.min_rounds for s in sides)
        converged = enough and all(w <= options.target_ci for w in widths.values())
        next_pair = sum(s.round_seconds for s in sides)
        if converged or elapsed + next_pair > cap["time_cap_s"]:
            break
    return {"rounds": rounds, "order": order, "converged": converged, "seconds": round(elapsed, 3), **cap,
            "iterations_per_round": {s.name: s.iterations_per_round for s in sides},
            "round_warmup": ROUND_WARMUP, "min_iterations": MIN_ITERATIONS}
