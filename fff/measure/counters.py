"""Hardware and software counters over every thread of this process, with honest statuses.

The native layer (cpp/perf_counters.*) opens perf_event groups with inherit on every thread in
/proc/self/task and returns raw counts with time_enabled/time_running summed over threads.
This module turns them into results the way perf's evsel.c does:

- running == 0: "not counted", total None (never 0: zero would be a measurement);
- running < enabled: multiplexed, total = value * enabled / running, status "scaled", with the
  running fraction kept so readers can judge it;
- a counter that could not be opened keeps the status and plain-language reason the kernel's
  answer implies ("not supported" on machines without a PMU, "no permission" with how to fix it).

Use it around any code (the PyTorch baseline, for one)::

    with fff.measure.counters.count(["task-clock", "llc-misses"], inferences=100) as c:
        for _ in range(100):
            model(x)
    c.results["task-clock"].per_inference()   # ns of CPU time per inference, all threads
    c.results.derived()["llc-mpki"]           # None with a reason where a PMU is missing

The native runner counts around its timed loop (``fff.Runner.run(..., counters=[...])``), and
fff.explain.cache_sim gives the same names with status "simulated" from valgrind's cache simulator.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from fff.errors import UsageError

__all__ = [
    "STATUSES",
    "CounterResult",
    "CounterResults",
    "DerivedMetric",
    "count",
    "known_counters",
    "validate_names",
    "counter_results",
    "scale",
]

STATUSES = ("ok", "scaled", "not supported", "no permission", "not counted", "error", "simulated")


def known_counters() -> dict[str, str]:
    """fff's named counters and what each counts; raw rHEX and pmu/term=value/ events work too."""
    from fff import _native

    return dict(_native.known_counters())


def __getattr__(name):
    # KNOWN_COUNTERS comes from the native layer, the single table of encodings; loading it
    # lazily keeps `import fff.measure.counters` free of the extension.
    if name == "KNOWN_COUNTERS":
        return known_counters()
    raise AttributeError(f"module 'fff.measure.counters' has no attribute {name!r}")


def validate_names(names: Iterable[str]) -> tuple[str, ...]:
    """The names as given, or UsageError naming the first unknown one and listing the known ones."""
    from fff import _native

    if isinstance(names, str):
        raise UsageError(f"counter names must be a list, got the string {names!r} (split it at commas)")
    names = tuple(names)
    seen = set()
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise UsageError(f"counter names must be non-empty strings, got {name!r}")
        _native.resolve_counter(name)  # raises UsageError listing the known names
        if name in seen:
            raise UsageError(f"counter {name!r} is listed twice")
        seen.add(name)
    return names


@dataclass(frozen=True)
class CounterResult:
    """One counter over one measured interval, summed over every thread of the process.

    ``total`` is None whenever nothing was counted (status "not supported", "no permission",
    "not counted", "error"); it is never 0 for "could not count". ``per_iteration`` (when asked
    for) is aligned with the runner's per-iteration latencies, NaN where an iteration was not
    counted.
    """

    name: str
    total: float | None
    status: str
    reason: str = ""
    scaled: bool = False
    running_fraction: float | None = None
    inferences: int | None = None
    raw: int | None = None
    time_enabled_ns: int | None = None
    time_running_ns: int | None = None
    per_iteration: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def counted(self) -> bool:
        return self.total is not None

    def per_inference(self, inferences: int | None = None) -> float | None:
        """total / inferences (the count given here or when measuring); None when not counted."""
        n = self.inferences if inferences is None else inferences
        if self.total is None or not n:
            return None
        return self.total / n

    def as_record(self, inferences: int | None = None) -> dict:
        """The JSON shape fff's records use: per_inference, total, status, reason, scaled."""
        return {
            "per_inference": self.per_inference(inferences),
            "total": self.total,
            "status": self.status,
            "reason": self.reason,
            "scaled": self.scaled,
            "running_fraction": self.running_fraction,
        }


@dataclass(frozen=True)
class DerivedMetric:
    name: str
    value: float | None
    reason: str = ""
    description: str = ""


# name -> (numerator, denominator, factor, description)
_DERIVED = {
    "ipc": ("instructions", "cycles", 1.0, "instructions per cycle"),
    "llc-mpki": ("llc-misses", "instructions", 1000.0, "last-level cache read misses per 1,000 instructions"),
    "llc-miss-ratio": ("llc-misses", "llc-loads", 1.0, "last-level cache read misses per read access"),
}


@dataclass(frozen=True)
class CounterResults(Mapping):
    """Counter name -> CounterResult for one interval, in the order the names were given."""

    results: dict[str, CounterResult]
    inferences: int | None = None
    threads: int | None = None  # threads counters were opened on (inherited ones come on top)
    source: str = "perf_event"  # or "callgrind" for simulated counts

    def __getitem__(self, name: str) -> CounterResult:
        return self.results[name]

    def __iter__(self):
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def derived(self) -> dict[str, DerivedMetric]:
        """IPC, LLC MPKI and LLC miss ratio where both inputs were counted; None with a reason otherwise."""
        out = {}
        for name, (top, bottom, factor, description) in _DERIVED.items():
            missing = []
            for needed in (top, bottom):
                result = self.results.get(needed)
                if result is None:
                    missing.append(f"{needed} was not asked for")
                elif result.total is None:
                    missing.append(f"{needed} is {result.status}" + (f" ({result.reason})" if result.reason else ""))
            if missing:
                out[name] = DerivedMetric(name, None, "; ".join(missing), description)
            elif self.results[bottom].total == 0:
                out[name] = DerivedMetric(name, None, f"{bottom} counted 0", description)
            else:
                value = factor * self.results[top].total / self.results[bottom].total
                out[name] = DerivedMetric(name, value, "", description)
        return out

    def as_record(self, inferences: int | None = None) -> dict:
        """name -> {per_inference, total, status, reason, scaled, running_fraction}."""
        n = self.inferences if inferences is None else inferences
        return {name: result.as_record(n) for name, result in self.results.items()}


def scale(value: int, enabled: int, running: int) -> tuple[float | None, str, bool, float | None, str]:
    """(total, status, scaled, running fraction, reason) for one raw reading, as evsel.c scales."""
    if running == 0:
        why = ("no counted thread ran during the interval" if enabled == 0 else
               "enabled but never scheduled on the PMU (too many events competing for its counters?)")
        return None, "not counted", False, 0.0 if enabled else None, why
    if running < enabled:
        fraction = running / enabled
        return (value * enabled / running, "scaled", True, fraction,
                f"multiplexed: on the PMU {100 * fraction:.1f}% of the time, scaled by enabled/running")
    return float(value), "ok", False, 1.0, ""


def _results_from(infos: list[dict], totals: np.ndarray, per_iteration: np.ndarray | None,
                  inferences: int | None, threads: int | None) -> CounterResults:
    results = {}
    for i, info in enumerate(infos):
        name = info["name"]
        if info["status"] != "ok":  # never opened: its status and reason say why
            results[name] = CounterResult(name, None, info["status"], info["reason"], inferences=inferences)
            continue
        value, enabled, running = (int(x) for x in totals[i])
        total, status, scaled, fraction, why = scale(value, enabled, running)
        reason = "; ".join(r for r in (info["reason"], why) if r)
        iterations = None
        if per_iteration is not None:
            import numpy as np  # here, not at the top: checking a counter's name (a flag) must not wait for numpy

            iterations = np.array([np.nan if t is None else t for t in
                                   (scale(int(v), int(e), int(r))[0] for v, e, r in per_iteration[:, i, :])],
                                  dtype=np.float64)
        results[name] = CounterResult(name, total, status, reason, scaled, fraction, inferences, value,
                                      enabled, running, iterations)
    return CounterResults(results, inferences, threads)


def counter_results(report: Mapping, inferences: int | None = None) -> CounterResults:
    """CounterResults from the native runner's counter report (see cpp/bind_counters.h)."""
    import numpy as np

    return _results_from(list(report["counters"]), np.asarray(report["totals"]), report["per_iteration"],
                         inferences, int(report["threads"]))


class count:
    """Counters around a block of Python code, every thread of the process included.

    ``names``: counter names (``known_counters()``, rHEX, pmu/term=value/); an unknown one is a
    UsageError before anything is opened. ``inferences``: how many inferences the block runs,
    for ``per_inference``. Call ``sample()`` between iterations for per-iteration values
    (outside whatever the caller times). ``results`` is available after the block.
    """

    def __init__(self, names: Iterable[str], *, inferences: int | None = None, group_reads: bool = True):
        self.names = validate_names(names)
        if inferences is not None and (isinstance(inferences, bool) or not isinstance(inferences, int) or inferences < 1):
            raise UsageError(f"inferences must be a whole number >= 1, got {inferences!r}")
        self.inferences = inferences
        self._group_reads = group_reads
        self._native = None
        self._start = self._last = None
        self._samples: list[np.ndarray] = []
        self._results: CounterResults | None = None

    def __enter__(self) -> "count":
        from fff import _native

        # Opened here, not in __init__: thread pools created in between must be in the set.
        self._native = _native.Counters(list(self.names), self._group_reads)
        self._samples = []
        self._start = self._last = self._native.read()
        return self

    def sample(self) -> None:
        """Close one per-iteration interval (since entry or the previous sample)."""
        if self._native is None:
            raise UsageError("sample() is for inside the `with count(...)` block")
        now = self._native.read()
        self._samples.append(_difference(now, self._last))
        self._last = now

    def __exit__(self, *exc) -> None:
        end = self._native.read()
        infos = list(self._native.info)
        threads = int(self._native.threads)
        self._native.close()
        self._native = None
        import numpy as np

        per_iteration = np.stack(self._samples) if self._samples else None
        self._results = _results_from(infos, _difference(end, self._start), per_iteration, self.inferences, threads)

    @property
    def results(self) -> CounterResults:
        if self._results is None:
            raise UsageError("counter results exist once the `with count(...)` block has ended")
        return self._results


def _difference(later: np.ndarray, earlier: np.ndarray) -> np.ndarray:
    # Counts are cumulative and never decrease; clip guards the unsigned subtraction anyway.
    import numpy as np

    return np.where(later >= earlier, later - earlier, 0).astype(np.uint64)


def merge(rounds: Sequence[CounterResults]) -> CounterResults:
    """One CounterResults for several measured intervals (the profiler's interleaved rounds):
    totals and inferences add up; a counter missed in any round is not counted overall, since
    a partial sum would undercount."""
    if not rounds:
        raise UsageError("no counter readings to merge")
    inferences = sum(r.inferences or 0 for r in rounds) or None
    merged = {}
    for name in rounds[0]:
        parts = [r[name] for r in rounds]
        missing = next((p for p in parts if p.total is None), None)
        if missing is not None:
            merged[name] = CounterResult(name, None, missing.status, missing.reason, inferences=inferences)
            continue
        fractions = [p.running_fraction for p in parts if p.running_fraction is not None]
        scaled = any(p.scaled for p in parts)
        reason = next((p.reason for p in parts if p.reason), "")
        merged[name] = CounterResult(name, float(sum(p.total for p in parts)), "scaled" if scaled else parts[0].status,
                                     reason, scaled, min(fractions) if fractions else None, inferences)
    return CounterResults(merged, inferences, rounds[0].threads, rounds[0].source)
