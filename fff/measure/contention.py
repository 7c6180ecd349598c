"""Did a timed round get the CPU it asked for? Contention read from what any Linux machine offers.

No PMU is needed. Per round, the worker brackets its timed loop with its own CPU time (every
thread of its process, ``CLOCK_PROCESS_CPUTIME_ID``) and its involuntary context switches
(``getrusage``); the parent reads ``/proc/stat`` over the same round for the CPUs this process
may run on (busy and steal time) and subtracts the worker's own CPU time, which leaves the CPU
time other processes took. PyTorch's OpenMP threads and OpenVINO's TBB threads spin while they
wait, so a backend alone on its cores shows CPU time close to wall time x threads; a round in
which it got clearly less while other processes (or the hypervisor: steal) took CPU time is
contended. Thresholds below come from measurements on the development VM (bench/README.md,
"bench_contention.py").

Everything here is a pure function of recorded numbers, except the three ``sample`` readers.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import asdict, dataclass
from statistics import median

from fff.errors import UsageError

__all__ = ["ProcessSample", "MachineSample", "RoundUsage", "RoundMeter", "process_sample", "machine_sample",
           "round_usage", "others_cpus", "round_problem", "summarize_rounds", "record_verdict", "worst", "preflight",
           "VERDICTS", "MIN_SHARE", "MIN_OTHERS_CPUS", "MAX_STEAL_CPUS", "NOISY_CI", "check_threads", "settle",
           "SETTLE_POLL_S", "SETTLE_QUIET_POLLS", "SETTLE_MAX_S"]

VERDICTS = ("ok", "noisy", "contended")

# A round is contended when the backend got less than MIN_SHARE of wall x threads while other
# processes (or steal) took at least MIN_OTHERS_CPUS CPUs' worth over the round. Measured on the
# development VM (2 vCPUs, bench/README.md, "Thresholds"): alone, torch and OpenVINO rounds got
# 0.91-1.00 of wall x threads; with one busy process on their CPUs, 0.22-0.74. /proc/stat counts
# in 10 ms ticks, so over a 0.2 s round on 2 CPUs "others" reads up to ~0.1 CPUs from rounding
# alone: 0.25 is well above that.
MIN_SHARE = 0.85
MIN_OTHERS_CPUS = 0.25
# The hypervisor taking this much CPU from the guest's CPUs is contention whatever the share says.
MAX_STEAL_CPUS = 0.25
# A record with enough clean rounds whose median (or speed-up) 95% CI is wider than +-NOISY_CI
# is "noisy": measured cleanly, but not to the precision a headline needs.
NOISY_CI = 0.05

# After its round a stack's thread pool may spin on before it sleeps (onnxruntime's, at its default,
# keeps one CPU busy for about 40 ms; bench/README.md, "bench_onnxruntime_spin_verdicts.py"), right
# when the next stack's round starts: the worker answers a round only once no other thread of its
# process is running (state R in /proc/self/task) at SETTLE_QUIET_POLLS polls in a row,
# SETTLE_POLL_S apart, waiting at most SETTLE_MAX_S. Thread states, not CPU time: the CPU time of
# a thread running on another core is brought up to date only at the scheduler's tick (4-10 ms),
# so a spinning pool read as idle over a 1 ms poll.
SETTLE_POLL_S = 0.001
SETTLE_QUIET_POLLS = 3
SETTLE_MAX_S = 0.25


@dataclass(frozen=True)
class ProcessSample:
    """This process (every thread) at one instant."""

    wall_ns: int
    cpu_ns: int
    involuntary_switches: int


def process_sample() -> ProcessSample:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return ProcessSample(time.monotonic_ns(), time.process_time_ns(), usage.ru_nivcsw)


@dataclass(frozen=True)
class MachineSample:
    """/proc/stat summed over some CPUs, in clock ticks; None fields when it cannot be read."""

    wall_ns: int
    busy_ticks: int | None
    steal_ticks: int | None
    cpus: int


def machine_sample(cpus=None, stat_text: str | None = None) -> MachineSample:
    """Busy (everything but idle and iowait) and steal ticks of ``cpus`` (default: the CPUs this
    process may run on). ``stat_text`` replaces reading /proc/stat (tests)."""
    wall = time.monotonic_ns()
    cpus = set(os.sched_getaffinity(0) if cpus is None else cpus)
    if stat_text is None:
        try:
            with open("/proc/stat") as f:
                stat_text = f.read()
        except OSError:
            return MachineSample(wall, None, None, len(cpus))
    busy = steal = 0
    seen = 0
    for line in stat_text.splitlines():
        name, *fields = line.split()
        if not (name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus):
            continue
        # user nice system idle iowait irq softirq steal guest guest_nice; guest time is already in user
        values = [int(v) for v in fields[:8]] + [0] * (8 - len(fields[:8]))
        busy += values[0] + values[1] + values[2] + values[5] + values[6]
        steal += values[7]
        seen += 1
    if not seen:
        return MachineSample(wall, None, None, len(cpus))
    return MachineSample(wall, busy, steal, seen)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def others_cpus(before: MachineSample, after: MachineSample, own_cpu_s: float) -> tuple[float | None, float | None]:
    """(CPUs' worth used by other processes, CPUs' worth stolen) between two samples, or None
    where /proc/stat could not be read. ``own_cpu_s``: CPU time of the processes being measured."""
    wall = (after.wall_ns - before.wall_ns) / 1e9
    if before.busy_ticks is None or after.busy_ticks is None or wall <= 0:
        return None, None
    busy = (after.busy_ticks - before.busy_ticks) / CLOCK_TICKS
    steal = (after.steal_ticks - before.steal_ticks) / CLOCK_TICKS
    return max(0.0, busy - own_cpu_s) / wall, steal / wall


@dataclass(frozen=True)
class RoundUsage:
    """What one backend got during one timed round."""

    wall_s: float
    cpu_s: float
    threads: int  # CPUs the backend asked for: min(its threads, CPUs available)
    involuntary_switches: int
    inferences: int
    others_cpus: float | None = None  # other processes' CPU use on our CPUs, in CPUs
    steal_cpus: float | None = None

    @property
    def cpu_share(self) -> float:
        """CPU time got / wall x threads: about 1 for a spinning pool alone on its cores."""
        return self.cpu_s / (self.wall_s * self.threads) if self.wall_s > 0 and self.threads else float("nan")

    def as_dict(self) -> dict:
        return {**asdict(self), "cpu_share": round(self.cpu_share, 4)}


def round_usage(before: ProcessSample, after: ProcessSample, *, threads: int, inferences: int,
                machine_before: MachineSample | None = None, machine_after: MachineSample | None = None) -> RoundUsage:
    cpu_s = (after.cpu_ns - before.cpu_ns) / 1e9
    others = steal = None
    if machine_before is not None and machine_after is not None:
        others, steal = others_cpus(machine_before, machine_after, cpu_s)
    return RoundUsage(wall_s=(after.wall_ns - before.wall_ns) / 1e9, cpu_s=cpu_s, threads=threads,
                      involuntary_switches=after.involuntary_switches - before.involuntary_switches,
                      inferences=inferences, others_cpus=others, steal_cpus=steal)


class RoundMeter:
    """Brackets a timed loop (outside its timed region): ``meter = RoundMeter(threads)`` just
    before it, ``meter.stop(inferences)`` just after, which returns the RoundUsage."""

    def __init__(self, threads: int):
        self.threads = threads
        self._machine = machine_sample()
        self._process = process_sample()

    def stop(self, inferences: int) -> RoundUsage:
        process, machine = process_sample(), machine_sample()
        return round_usage(self._process, process, threads=self.threads, inferences=inferences,
                           machine_before=self._machine, machine_after=machine)


def round_problem(usage: RoundUsage) -> str | None:
    """Why a round must be left out, or None when it is clean."""
    if usage.steal_cpus is not None and usage.steal_cpus >= MAX_STEAL_CPUS:
        return "steal"  # the hypervisor ran someone else on our virtual CPUs
    if usage.cpu_share >= MIN_SHARE:
        return None
    if usage.others_cpus is None:
        # No /proc/stat: the share alone decides, with a stricter bound (a backend that leaves
        # cores idle by itself must not be called contended without evidence).
        return "cpu-share" if usage.cpu_share < MIN_SHARE / 2 else None
    return "other-processes" if usage.others_cpus >= MIN_OTHERS_CPUS else None


def summarize_rounds(rounds: list[RoundUsage], problems: list[str | None], tails: list[dict | None] = ()) -> dict:
    """The record's account of its rounds: how many were kept, dropped and why, and the medians;
    ``tails``: per round, how long the stack's threads took to go quiet after it (``settle``)."""
    dropped: dict[str, int] = {}
    for problem in problems:
        if problem:
            dropped[problem] = dropped.get(problem, 0) + 1
    known = [r.others_cpus for r in rounds if r.others_cpus is not None]
    inferences = sum(r.inferences for r in rounds)
    return {
        "rounds_clean": sum(p is None for p in problems),
        "rounds_dropped": sum(dropped.values()),
        "dropped_because": dropped,
        "cpu_share_median": round(median(r.cpu_share for r in rounds), 4) if rounds else None,
        "others_cpus_median": round(median(known), 4) if known else None,
        "involuntary_switches_per_inference": round(sum(r.involuntary_switches for r in rounds) / inferences, 4)
        if inferences else None,
        "tail_ms_median": round(median(t["ms"] for t in said), 3) if (said := [t for t in tails if t]) else None,
        "tail_cpu_ms_median": round(median(t["cpu_ms"] for t in said), 3) if said else None,
        "tails_unsettled": sum(t["settled"] is False for t in said),
        "thresholds": {"min_share": MIN_SHARE, "min_others_cpus": MIN_OTHERS_CPUS, "max_steal_cpus": MAX_STEAL_CPUS,
                       "noisy_ci": NOISY_CI, "settle_quiet_polls": SETTLE_QUIET_POLLS, "settle_max_s": SETTLE_MAX_S},
    }


def record_verdict(clean_rounds: int, min_rounds: int, ci_halfwidths: list[float]) -> tuple[str, str]:
    """(verdict, reason) for one record: ``contended`` with fewer than ``min_rounds`` clean rounds,
    ``noisy`` when any of ``ci_halfwidths`` (relative 95% CI half-widths of the medians and the
    speed-up this record depends on) is wider than NOISY_CI, else ``ok``."""
    if clean_rounds < min_rounds:
        return "contended", f"{clean_rounds} clean round(s) of the {min_rounds} needed"
    widest = max(ci_halfwidths, default=0.0)
    if widest > NOISY_CI:
        return "noisy", f"95% CI +-{100 * widest:.1f}%, wider than +-{100 * NOISY_CI:.0f}%"
    return "ok", ""


def other_threads_running() -> int | None:
    """How many threads of this process, the caller left out, are running or waiting for a CPU
    (state R), or None where /proc/self/task cannot be read."""
    import threading

    me = str(threading.get_native_id())
    try:
        threads = os.listdir("/proc/self/task")
    except OSError:
        return None
    running = 0
    for tid in threads:
        if tid == me:
            continue
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # it ended meanwhile
        running += stat[stat.rindex(")") + 2] == "R"  # the state follows the parenthesised name
    return running


def settle(max_s: float = SETTLE_MAX_S, *, running=other_threads_running, cpu_ns=time.process_time_ns,
           wall_ns=time.monotonic_ns, sleep=time.sleep) -> dict:
    """Wait, sleeping, until no other thread of this process runs (a pool spinning on after its
    work), at most ``max_s``. Returns the tail: ``{"ms": waited, "cpu_ms": CPU the process used
    meanwhile, "settled": went quiet within max_s}``, ``settled`` None where thread states cannot be
    read (nothing waited). The other arguments are for tests."""
    began_wall, began_cpu = wall_ns(), cpu_ns()
    quiet = 0
    while True:
        now = running()
        if now is None:
            return {"ms": 0.0, "cpu_ms": 0.0, "settled": None}
        quiet = quiet + 1 if now == 0 else 0
        waited = wall_ns() - began_wall
        if quiet >= SETTLE_QUIET_POLLS or waited >= max_s * 1e9:
            return {"ms": round(waited / 1e6, 3), "cpu_ms": round((cpu_ns() - began_cpu) / 1e6, 3),
                    "settled": quiet >= SETTLE_QUIET_POLLS}
        sleep(SETTLE_POLL_S)


def worst(verdicts) -> str:
    """The least trustworthy of several verdicts (a speed-up is as good as its worse side)."""
    return max(verdicts, key=VERDICTS.index, default="ok")


def preflight(seconds: float = 0.5) -> str | None:
    """Half a second of /proc/stat: a line saying how busy other processes keep this process's
    CPUs, or None when they are (nearly) idle or /proc/stat cannot be read."""
    before_self = process_sample()
    before = machine_sample()
    time.sleep(seconds)
    after = machine_sample()
    after_self = process_sample()
    others, steal = others_cpus(before, after, (after_self.cpu_ns - before_self.cpu_ns) / 1e9)
    if others is None or others + (steal or 0) < MIN_OTHERS_CPUS:
        return None
    load = os.getloadavg()[0]
    stolen = f", the hypervisor steals {steal:.1f}" if steal and steal >= 0.05 else ""
    return (f"other processes are using {others:.1f} of the {after.cpus} CPU(s) fff may run on{stolen} "
            f"(load average {load:.1f}); every round will be checked for contention and re-measured if it was")


def check_threads(threads: int | None) -> None:
    """More threads than the CPUs this process may run on (its affinity mask, not the host's core
    count: taskset, cgroups, a batch scheduler) would make every round contended by construction:
    a UsageError naming both counts."""
    usable = len(os.sched_getaffinity(0))
    if threads is not None and threads > usable:
        raise UsageError(f"{threads} threads asked for, but this process may run on {usable} CPU"
                         f"{'s' if usable > 1 else ''} (its affinity mask): every round would be contended; "
                         f"ask for {usable} or fewer")
