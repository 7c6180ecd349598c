"""Contention: the per-round detection and the record verdicts on recorded sequences, the round
policy of the profiler with scripted workers, and one real busy process."""

import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from fff.measure.contention import (MIN_OTHERS_CPUS, MIN_SHARE, NOISY_CI, SETTLE_POLL_S, SETTLE_QUIET_POLLS,
                            MachineSample, ProcessSample, RoundUsage, machine_sample, other_threads_running, others_cpus,
                            record_verdict, round_problem, round_usage, settle, summarize_rounds, worst)
from fff.errors import UsageError

STAT = """cpu  900 0 300 5000 10 0 20 40 0 0
cpu0 400 0 100 2500 5 0 10 20 0 0
cpu1 500 0 200 2500 5 0 10 20 0 0
intr 12345
"""


def test_proc_stat_is_summed_over_the_cpus_asked_for():
    both = machine_sample({0, 1}, stat_text=STAT)
    assert (both.busy_ticks, both.steal_ticks, both.cpus) == (400 + 100 + 10 + 500 + 200 + 10, 40, 2)
    one = machine_sample({1}, stat_text=STAT)
    assert (one.busy_ticks, one.steal_ticks, one.cpus) == (710, 20, 1)
    unreadable = machine_sample({0}, stat_text="intr 1\n")
    assert unreadable.busy_ticks is None


def test_other_processes_cpu_is_the_busy_time_less_our_own():
    from fff.measure.contention import CLOCK_TICKS

    second = 1_000_000_000
    before = MachineSample(0, busy_ticks=1000, steal_ticks=0, cpus=2)
    after = MachineSample(2 * second, busy_ticks=1000 + 3 * CLOCK_TICKS, steal_ticks=CLOCK_TICKS // 2, cpus=2)
    others, steal = others_cpus(before, after, own_cpu_s=2.0)  # 3 CPU-seconds busy, 2 of them ours, in 2 s
    assert (others, steal) == pytest.approx((0.5, 0.25))
    assert others_cpus(before, after, own_cpu_s=5.0)[0] == 0.0  # tick rounding never makes it negative
    assert others_cpus(MachineSample(0, None, None, 2), after, own_cpu_s=1.0) == (None, None)


def test_a_round_usage_is_read_from_two_samples():
    usage = round_usage(ProcessSample(0, 0, 3), ProcessSample(500_000_000, 800_000_000, 10), threads=2, inferences=50)
    assert (usage.wall_s, usage.cpu_s, usage.involuntary_switches, usage.inferences) == (0.5, 0.8, 7, 50)
    assert usage.cpu_share == pytest.approx(0.8)
    assert usage.as_dict()["cpu_share"] == 0.8


def usage(share, others, steal=0.0, threads=2):
    return RoundUsage(wall_s=0.2, cpu_s=0.2 * threads * share, threads=threads, involuntary_switches=3,
                      inferences=20, others_cpus=others, steal_cpus=steal)


# Rounds recorded on the development VM (2 vCPUs, bench/README.md), then two constructed cases.
RECORDED = [
    (usage(0.985, 0.07), None),  # OpenVINO alone, 2 threads
    (usage(0.998, 1.02, threads=1), None),  # 1 thread; others ran on the other CPU, not on ours
    (usage(0.737, 0.60), "other-processes"),  # torch, one busy process: the highest share seen under load
    (usage(0.226, 1.59), "other-processes"),  # torch with four engineers' jobs on the 2 CPUs
    (usage(0.492, 1.51, threads=1), "other-processes"),
    (usage(0.60, 0.10), None),  # constructed: the backend left CPUs idle by itself and nobody took them
    (usage(0.95, 0.0, steal=0.4), "steal"),  # constructed: the hypervisor ran someone else
]


@pytest.mark.parametrize("round_, problem", RECORDED)
def test_a_round_is_contended_when_the_backend_got_less_cpu_while_others_took_it(round_, problem):
    assert round_problem(round_) == problem


def test_without_proc_stat_only_a_collapsed_share_counts_as_contention():
    assert round_problem(usage(MIN_SHARE / 2 - 0.01, None)) == "cpu-share"
    assert round_problem(usage(0.6, None)) is None


def test_rounds_are_summarised_with_what_was_dropped_and_why():
    rounds = [r for r, _ in RECORDED]
    summary = summarize_rounds(rounds, [round_problem(r) for r in rounds])
    assert (summary["rounds_clean"], summary["rounds_dropped"]) == (3, 4)
    assert summary["dropped_because"] == {"other-processes": 3, "steal": 1}
    assert summary["cpu_share_median"] == pytest.approx(0.737)
    assert summary["involuntary_switches_per_inference"] == pytest.approx(3 / 20)
    assert summary["thresholds"]["min_share"] == MIN_SHARE


class _SpinningPool:
    """A process whose pool keeps one thread running for ``spin_ms`` after a round, on a simulated clock."""

    def __init__(self, spin_ms: float, *, readable: bool = True):
        self.wall = self.cpu = 0
        self.spin_ns, self.readable = spin_ms * 1e6, readable

    def running(self):
        return None if not self.readable else int(self.wall < self.spin_ns)

    def sleep(self, seconds):
        step = int(seconds * 1e9) + 50_000  # a sleep overshoots a little
        self.cpu += max(0, min(step, self.spin_ns - self.wall))
        self.wall += step

    def settle(self, **kwargs):
        return settle(running=self.running, cpu_ns=lambda: self.cpu, wall_ns=lambda: self.wall, sleep=self.sleep,
                      **kwargs)


def test_a_round_is_answered_once_its_pool_stops_spinning_and_says_how_long_that_took():
    poll_ms = 1e3 * SETTLE_POLL_S + 0.05
    tail = _SpinningPool(spin_ms=40).settle()
    assert tail["settled"] and 40 + (SETTLE_QUIET_POLLS - 1) * poll_ms - 0.01 <= tail["ms"] <= 40 + (SETTLE_QUIET_POLLS + 1) * poll_ms
    assert tail["cpu_ms"] == pytest.approx(40, abs=0.01)
    quiet = _SpinningPool(spin_ms=0).settle()  # quiet at once: only the polls that prove it
    assert quiet == {"ms": pytest.approx((SETTLE_QUIET_POLLS - 1) * poll_ms), "cpu_ms": 0.0, "settled": True}
    endless = _SpinningPool(spin_ms=10_000).settle(max_s=0.1)
    assert not endless["settled"] and 100 <= endless["ms"] < 100 + 2 * poll_ms
    assert _SpinningPool(spin_ms=40, readable=False).settle() == {"ms": 0.0, "cpu_ms": 0.0, "settled": None}


def test_thread_states_show_a_busy_thread_and_not_a_sleeping_one():
    import hashlib
    import threading
    import time

    assert settle(max_s=2.0)["settled"]  # pools earlier tests left spinning (BLAS, OpenMP) have gone quiet
    stop = threading.Event()
    sleeper = threading.Thread(target=stop.wait)
    sleeper.start()
    try:
        assert other_threads_running() == 0  # the sleeping thread is not counted, nor the caller
    finally:
        stop.set()
        sleeper.join()
    done = threading.Event()

    def spin():  # busy in C with the GIL released, as a pool's worker spins (hashlib, not BLAS: no pool of its own)
        data = bytes(4 << 20)
        while not done.is_set():
            hashlib.sha256(data).digest()

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        seen = max(other_threads_running() for _ in range(50) if time.sleep(0.001) is None)
    finally:
        done.set()
        spinner.join()
    assert seen == 1  # runnable counts as running: true on a loaded machine too


def test_rounds_summarise_their_tails():
    rounds = [r for r, _ in RECORDED][:3]
    tails = [{"ms": 1.1, "cpu_ms": 0.0, "settled": True}, {"ms": 41.0, "cpu_ms": 40.0, "settled": True},
             {"ms": 250.0, "cpu_ms": 250.0, "settled": False}]
    summary = summarize_rounds(rounds, [None] * 3, tails)
    assert summarize_rounds(rounds, [None] * 3, [{"ms": 0.0, "cpu_ms": 0.0, "settled": None}] * 3)["tails_unsettled"] == 0
    assert (summary["tail_ms_median"], summary["tail_cpu_ms_median"], summary["tails_unsettled"]) == (41.0, 40.0, 1)
    assert summarize_rounds(rounds, [None] * 3)["tail_ms_median"] is None  # no tails said: none claimed


def test_record_verdicts():
    assert record_verdict(1, 3, [0.001]) == ("contended", "1 clean round(s) of the 3 needed")
    verdict, reason = record_verdict(3, 3, [0.01, NOISY_CI * 2])
    assert verdict == "noisy" and f"+-{100 * NOISY_CI * 2:.1f}%" in reason
    assert record_verdict(5, 3, [0.01, NOISY_CI]) == ("ok", "")
    assert worst(["ok", "noisy", "ok"]) == "noisy" and worst(["noisy", "contended"]) == "contended"


# --- the profiler's round policy, with workers that replay a script ----------------------------------

class ScriptedWorker:
    """Answers 'round' with constant latencies and the next usage of its script (the last one repeats)."""

    def __init__(self, name, ms, script):
        self.name, self.ms, self.script, self.calls = name, ms, list(script), []

    def call(self, command, **kwargs):
        assert command == "round"
        self.calls.append(kwargs)
        n = kwargs["iterations"]
        rng = np.random.default_rng(len(self.calls))
        samples = self.ms * 1e6 * (1 + 0.001 * rng.standard_normal(n))
        script_usage = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        return {"samples_ns": samples, "counters": None, "usage": replace(script_usage, inferences=n)}


def sides_for(torch_script, openvino_script):
    from fff.measure.rounds import Side

    return [Side("torch", ScriptedWorker("torch", 2.0, torch_script), {}),
            Side("openvino", ScriptedWorker("openvino", 1.0, openvino_script), {})]


def options(**changes):
    from fff.profiling import ProfileOptions

    return ProfileOptions(**{"threads": 2, "max_seconds": 5.0, "min_rounds": 3, "target_ci": 0.05, **changes})


CLEAN, BUSY = usage(0.98, 0.02), usage(0.3, 1.5)


def test_contended_rounds_are_left_out_and_measured_again():
    from fff.measure.rounds import ROUND_WARMUP, measure_rounds

    sides = sides_for([CLEAN, CLEAN, BUSY, BUSY, CLEAN], [CLEAN])  # the first answers the calibration
    measure_rounds(sides, options(), lambda _: None, "t")
    torch, openvino = sides
    # torch rounds 1 (clean), 2 and 3 (busy), 4, 5 and on (clean): 3 clean rounds take 5
    assert torch.problems[:4] == [None, "other-processes", "other-processes", None]
    assert torch.clean_rounds >= 3 and len(torch.problems) >= 5
    assert len(torch.all_samples) == torch.clean_rounds * torch.iterations_per_round
    assert all(call["warmup"] == ROUND_WARMUP for call in torch.worker.calls)
    assert all(call["iterations"] >= 5 for call in torch.worker.calls[1:])


def test_a_backend_that_never_gets_a_clean_round_is_measured_until_the_cap_then_called_contended():
    from fff.measure.rounds import measure_rounds

    sides = sides_for([BUSY], [CLEAN])
    result = measure_rounds(sides, options(max_seconds=0.5, min_rounds=2), lambda _: None, "t")
    torch, openvino = sides
    assert torch.clean_rounds == 0 and openvino.clean_rounds == len(openvino.problems)
    assert not result["converged"]
    assert len(torch.all_samples) > 0  # the contended samples stand in, and the verdict will say so


def test_rounds_are_sized_to_fit_the_cap_and_a_cap_too_small_for_min_rounds_is_an_error():
    from fff.measure.rounds import MIN_ITERATIONS, ROUND_WARMUP, size_rounds

    sides = sides_for([CLEAN], [CLEAN])
    size_rounds(sides, options(max_seconds=0.3, min_rounds=3), "t")
    cycle = sum((s.iterations_per_round + ROUND_WARMUP) * s.worker.ms / 1e3 for s in sides)
    assert 3 * cycle <= 0.3 + 1e-9 and min(s.iterations_per_round for s in sides) >= MIN_ITERATIONS
    with pytest.raises(UsageError, match=r"time cap of 0\.05 s cannot hold 3 rounds of 5 iterations"):
        size_rounds(sides_for([CLEAN], [CLEAN]), options(max_seconds=0.05, min_rounds=3), "t")
    busy = sides_for([BUSY], [CLEAN])  # a contended calibration measured the load, not the model
    size_rounds(busy, options(max_seconds=0.05, min_rounds=3), "t")
    assert busy[0].iterations_per_round == MIN_ITERATIONS <= busy[1].iterations_per_round
    fixed = sides_for([CLEAN], [CLEAN])
    size_rounds(fixed, options(iterations=7), "t")
    assert [s.iterations_per_round for s in fixed] == [7, 7]


def test_a_default_cap_too_small_for_min_rounds_is_raised_by_the_calibration_and_said():
    from fff.measure.rounds import FIT_MARGIN, MIN_ITERATIONS, ROUND_WARMUP, measure_rounds, size_rounds

    # 3 rounds of 5 (+1 warm-up) iterations of 2 ms and 1 ms take 54 ms: a 50 ms cap cannot hold them
    cap = size_rounds(sides_for([CLEAN], [CLEAN]), options(max_seconds=0.05, min_rounds=3, fit_cap=True), "t")
    needed = 3 * (MIN_ITERATIONS + ROUND_WARMUP) * (2.0 + 1.0) / 1e3
    assert cap["time_cap_s"] >= round(FIT_MARGIN * needed, 3)  # and each round's cost beyond its inferences
    assert cap["time_cap_raised"].startswith("the default time cap of 0.05 s cannot hold 3 rounds of 5 iterations "
                                             "of every backend (one round of each takes about 0.02 s here")
    assert cap["time_cap_raised"].endswith(f"raised to {cap['time_cap_s']:g} s for this target")
    # a cap that holds them is left as it is, and a user's cap is never raised (the test above)
    assert size_rounds(sides_for([CLEAN], [CLEAN]), options(max_seconds=5.0, fit_cap=True), "t") == \
        {"time_cap_s": 5.0, "time_cap_raised": None}

    sides, said = sides_for([CLEAN], [CLEAN]), []
    result = measure_rounds(sides, options(max_seconds=0.05, min_rounds=3, fit_cap=True), said.append, "t")
    assert all(side.clean_rounds >= 3 for side in sides)  # every round measured, none refused
    assert [side.iterations_per_round for side in sides] == [MIN_ITERATIONS, MIN_ITERATIONS]  # the size it fits
    assert result["time_cap_s"] == cap["time_cap_s"] and result["time_cap_raised"] == cap["time_cap_raised"]
    assert said[0] == f"t: {cap['time_cap_raised']}"


def test_only_a_cap_the_user_gave_is_a_limit():
    from fff.study.config import StudyConfig, default_study, parse_study

    built_in = default_study()
    cell = built_in.cells()[0]
    assert built_in.profile_options(cell).fit_cap and not built_in.max_seconds_given
    assert not built_in.with_overrides(max_seconds=10.0).profile_options(cell).fit_cap  # --max-time
    assert built_in.with_overrides(patterns=["plain"]).profile_options(cell).fit_cap  # other flags: still fff's cap
    assert parse_study("[measure]\nmax_seconds = 4.0\n[patterns]\nnames = [\"plain\"]").max_seconds_given is True
    assert StudyConfig(patterns=("plain",)).profile_options(cell).fit_cap  # a file without max_seconds

    from fff.cli.profile import DEFAULT_MAX_SECONDS, build_parser

    assert build_parser().parse_args([]).max_time is None and DEFAULT_MAX_SECONDS == 20.0


# --- one real busy process -----------------------------------------------------------------------------

TINY = "plain:depth=1,width=0.25,resolution=32"


@pytest.mark.slow
def test_a_busy_process_on_every_cpu_is_seen_and_marked_or_the_result_stays_in_tolerance():
    quiet = _profile()
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in os.sched_getaffinity(0)]
    try:
        loaded = _profile()
    finally:
        for process in busy:
            process.kill()
            process.wait()
    for before, after in zip(quiet, loaded):
        assert after["verdict"] in ("ok", "noisy", "contended")
        assert (after["verdict"] == "ok") == (not after["verdict_reason"])
        assert after["contention"]["others_cpus_median"] >= MIN_OTHERS_CPUS  # the busy processes were seen
        if after["verdict"] == "ok" and before["verdict"] == "ok" and after["speedup"] is not None:
            # both trusted: they must agree (wider than bench_contention's +-10%: a 1-second profile)
            assert after["speedup"] == pytest.approx(before["speedup"], rel=0.3)


def _profile():
    from fff.profiling import ProfileOptions, profile_records

    return profile_records(TINY, ProfileOptions(threads=1, max_seconds=1.0, min_rounds=2, warmup=1))


def test_the_python_api_warns_once_naming_every_target_not_ok():
    from fff.errors import MeasurementWarning
    from fff.profiling import _warn_untrustworthy

    records = [{"target": "a", "backend": "torch", "verdict": "ok", "verdict_reason": ""},
               {"target": "a", "backend": "openvino", "verdict": "noisy", "verdict_reason": "95% CI +-7.0%"},
               {"target": "b", "backend": "openvino", "verdict": "contended", "verdict_reason": "0 clean round(s)"}]
    with pytest.warns(MeasurementWarning) as caught:
        _warn_untrustworthy(records)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "a openvino: noisy (95% CI +-7.0%)" in message and "b openvino: contended" in message
    assert "a torch" not in message


def test_the_verdict_is_a_column_of_the_table_and_its_reason_follows_it():
    from fff.cli.profile import format_table
    from fff.profiling import ProfileOptions

    fakes = sys.modules["study_fakes"]  # loaded by conftest.py
    records = fakes.fake_measure("plain:depth=1,width=1.0", ProfileOptions())
    records[1] = {**records[1], "verdict": "contended", "verdict_reason": "0 clean round(s) of the 3 needed"}
    lines = format_table(records).splitlines()
    header, torch_row, openvino_row = lines[0], lines[2], lines[3]
    column = header.index("verdict")
    assert torch_row[column:].startswith("ok ") and openvino_row[column:].startswith("contended ")
    assert header.index("speed-up") < column < header.index("parity")
    assert any(line.strip() == "plain:depth=1,width=1.0 openvino  contended: 0 clean round(s) of the 3 needed"
               for line in lines[4:])
