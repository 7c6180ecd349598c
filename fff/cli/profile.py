"""fff-profile: how much faster is TARGET through OpenVINO than in PyTorch, and why."""

from __future__ import annotations

import sys

from fff.cli.common import (WRITE_FAILED_EXIT, OneLineParser, comma_list, distinct_outputs, fail, non_negative_int,
                            positive_float, positive_int, shape_argument, writable_path)

PROG = "fff-profile"
DEFAULT_MAX_SECONDS = 20.0  # without --max-time: a budget per target, raised where min-rounds rounds need more


def build_parser() -> OneLineParser:
    from fff.backends import BASELINE, DEFAULT_BACKENDS  # names only: --help stays instant
    from fff.explain.simulation_server import ISA_CAPS

    parser = OneLineParser(
        prog=PROG,
        description="Time a neural network in its native framework (PyTorch) and through OpenVINO on the same "
                    "weights, input, precision and threads; report the speed-up with its confidence interval, "
                    "FLOPs, parity and hardware counters.",
        epilog="TARGET: a zoo name (resnet50, darts), a pattern spec (dw-bottleneck:depth=8,width=1.0), an .onnx or "
               "OpenVINO .xml file, or module:function returning an nn.Module. With no TARGET, a small built-in "
               "model. FLOPs are 2 x multiply-adds. Exit codes: 0 ok, 1 parity failed, 2 bad input, 3 measured but "
               "--json/--csv could not be written (the records were saved to a fallback file it names), "
               "130 interrupted (Ctrl-C or SIGTERM).",
    )
    parser.add_argument("targets", nargs="*", metavar="TARGET",
                        help="what to measure (see below and --list); default: a small built-in model")
    parser.add_argument("--list", action="store_true", help="list models, design patterns and counters, then exit")
    parser.add_argument("--backends", type=comma_list, default=list(DEFAULT_BACKENDS),
                        help=f"registry names or package.module:ClassName; the baseline is {BASELINE}; "
                             f"default: {','.join(DEFAULT_BACKENDS)} (--list shows the registered ones)")
    parser.add_argument("--device", default="CPU", help="OpenVINO device (default CPU)")
    parser.add_argument("--precision", default="f32",
                        help="f32 (default), bf16 or f16 on both sides; int8: the accelerated stacks that offer it "
                             "(openvino through NNCF, onnxruntime through quantize_static; synthetic calibration "
                             "unless --calibration) against the baseline in f32")
    parser.add_argument("--calibration", metavar="DIR",
                        help="with --precision int8: calibrate the quantization on the images in DIR (the first 16 "
                             "in name order, resized and centre-cropped to the input, ImageNet-normalised) instead "
                             "of fixed-seed noise")
    parser.add_argument("--threads", type=positive_int, help="threads on both sides (default: every available CPU)")
    parser.add_argument("--batch", type=positive_int, help="batch size (default 1)")
    # Both spellings, as in fff-study: a user need not remember which command takes which.
    parser.add_argument("--resolution", "--resolutions", type=positive_int, dest="resolution",
                        help="input height and width (default: the model's own)")
    parser.add_argument("--input-shape", type=shape_argument, metavar="N,C,H,W",
                        help="the whole input shape, for model files with dynamic dims and functions without an "
                             "input_shape attribute")
    parser.add_argument("--counters", type=comma_list, default=[], help="perf counters, e.g. llc-misses,instructions")
    parser.add_argument("--simulate-cache", action="store_true",
                        help="also count cache misses under valgrind's cache simulator (slow; works without a PMU)")
    parser.add_argument("--simulate-isa", choices=tuple(ISA_CAPS),
                        help="with --simulate-cache: cap the simulated kernels' instruction set, 5-9x faster under "
                             "valgrind; each record says what the cap changes per counter")
    parser.add_argument("--cache", metavar="LL=SIZE[,Nway]", action="append",
                        help="what-if last-level cache for the cache model and --simulate-cache, e.g. LL=8MiB,16way "
                             "(default: this machine's); given more than once, each size ('machine': this "
                             "machine's own) from one timed run, the others in each record's ll_sizes")
    parser.add_argument("--target-ci", type=positive_float, default=1.0,
                        help="stop when each median's 95%% CI is within +-this %% (default 1)")
    parser.add_argument("--max-time", type=positive_float,
                        help="seconds of timed rounds per target at most; given, it is a limit (a cap too small "
                             "for --min-rounds is an error); by default 20, raised for a target whose calibration "
                             "shows its rounds need more (its record says so)")
    parser.add_argument("--min-rounds", type=positive_int, default=3,
                        help="clean (uncontended) interleaved rounds of each backend at least (default 3); they must "
                             "fit in --max-time, else it is an error")
    parser.add_argument("--iterations", type=positive_int,
                        help="timed inferences per round (default: about 0.2 s worth, at least 5)")
    parser.add_argument("--warmup", type=non_negative_int, default=5,
                        help="untimed inferences before the first round (default 5)")
    parser.add_argument("--breakdown", action="store_true",
                        help="after the timed rounds, profile every layer in both backends and show where the time "
                             "goes and where the speed-up comes from (adds a few seconds per target)")
    parser.add_argument("--json", type=writable_path, metavar="PATH", help="write the records as JSON")
    parser.add_argument("--csv", type=writable_path, metavar="PATH", help="write the records as CSV (no raw samples)")
    parser.add_argument("--flamegraph", type=writable_path, metavar="PATH",
                        help="py-spy profile of the PyTorch run: .svg flame graph or speedscope .json")
    parser.add_argument("--quiet", "-q", action="store_true",
                        help="no progress lines; errors, warnings and the results still print")
    return parser


def _fmt(value, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def _tolerance_text(parity: dict, form: str = " <= {:.0e}") -> str:
    """The tolerance the record was held to (None-safe: NaN/inf errors are written as null)."""
    return form.format(parity["tolerance"]) if parity.get("tolerance") is not None else ""


def _threads_text(record: dict) -> str:
    """The threads the runtime read back, and the ones asked for where they differ (or it said none)."""
    effective, asked = record.get("effective_threads"), record.get("threads")
    if effective is None:
        return f"? ({asked})"
    return str(effective) if effective == asked else f"{effective} ({asked})"


def _outputs_text(parity: dict) -> str:
    """', worst of N outputs' for a model with several outputs (each one's parity follows the table)."""
    return f", worst of {len(parity['outputs'])} outputs" if parity.get("outputs") else ""


def _parity_text(parity: dict) -> str:
    """What parity was judged by: SQNR and cosine (int8), else the error relative to the output's scale."""
    if parity.get("metric") == "sqnr_db":
        return (f"SQNR {_fmt(parity.get('sqnr_db'), '.1f', 'inf')} dB >= {parity['tolerance']:g}, "
                f"cos {_fmt(parity.get('cosine'), '.4f', 'nan')} >= {parity.get('min_cosine'):g}")
    return f"rel {_fmt(parity['max_rel_err'], '.1e', 'inf')}{_tolerance_text(parity)}"


def format_table(records: list[dict]) -> str:
    from fff.backends import BASELINE

    width = min(max([len("target")] + [len(r["target"]) for r in records]), 60)
    bw = max([9] + [len(r["backend"]) for r in records])  # a plugin's module:Class is longer than a built-in name
    header = f"{'target':<{width}} {'backend':<{bw}} {'prec':<5} {'median ms':>10} {'+-CI':>6} {'p90 ms':>9} " \
             f"{'first ms':>9} {'speed-up [95% CI]':>22} {'verdict':<9} {'GFLOPs':>8} {'GFLOP/s':>8} {'threads':>7}  parity"
    lines = [header, "-" * len(header)]
    legend = "+-CI: half the median's 95% CI, in % of the median; first ms: the first inference, not in " \
             f"the statistics; speed-up: {BASELINE} median / this median, each side at its own prec " \
             f"({BASELINE} runs f32 where it lacks the precision asked for, e.g. int8); threads: as the runtime " \
             "reports them (asked for in brackets where they differ)"
    for r in records:
        lat = r["latency_ms"]
        ci = 100 * (lat["ci95_high"] - lat["ci95_low"]) / 2 / lat["median"]
        if r["speedup"] is not None:
            speedup = f"{r['speedup']:.2f}x [{r['speedup_ci95'][0]:.2f}, {r['speedup_ci95'][1]:.2f}]"
        else:  # no baseline row to compare against: a model file, or --backends without the baseline
            speedup = "baseline" if r["backend"] == BASELINE else "no baseline"
        parity = "-" if r["parity"] is None else \
            f"{'ok' if r['parity']['ok'] else 'FAILED'} ({_parity_text(r['parity'])}{_outputs_text(r['parity'])})"
        lines.append(f"{r['target'][:width]:<{width}} {r['backend']:<{bw}} {r['precision']:<5} {lat['median']:>10.3f} "
                     f"{ci:>5.1f}% {lat['p90']:>9.3f} "
                     f"{r['first_inference_ms']:>9.2f} {speedup:>22} {r['verdict']:<9} "
                     f"{_fmt(r['flops'] and r['flops'] / 1e9, '.3f'):>8} "
                     f"{_fmt(r['gflops_per_s'], '.1f'):>8} {_threads_text(r):>7}  {parity}")
    lines.append(legend)
    for r in records:  # a model with several outputs: each one's parity, not only the worst
        if r["parity"] is not None and r["parity"].get("outputs"):
            each = ", ".join(f"{o['name']} {_fmt(o['max_rel_err'], '.1e', 'inf')} {'ok' if o['ok'] else 'FAILED'}"
                             for o in r["parity"]["outputs"])
            lines.append(f"  {r['target'][:width]:<{width}} {r['backend']:<{bw}} parity per output (rel): {each}")
    counter_lines = []
    reasons: dict[tuple[str, str], set[str]] = {}  # (counter, status) -> reasons: each said once, not per backend
    for r in records:
        for kind, key in (("measured", "counters"), ("simulated", "simulated_counters"), ("modelled", "modelled_counters")):
            for name, c in (r.get(key) or {}).items():
                value = "not counted" if c.get("per_inference") is None else f"{c['per_inference']:,.0f} per inference"
                if c.get("reason"):
                    reasons.setdefault((name, c["status"]), set()).add(c["reason"])
                counter_lines.append(f"  {r['target'][:width]:<{width}} {r['backend']:<{bw}} {kind:<9} {name:<18} {value} "
                                     f"({c['status']})")
        for size, fields in (r.get("ll_sizes") or {}).items():  # a cache axis: each further LL size's misses
            what = "this machine's LL" if size == "machine" else f"what-if {size}"
            for kind, key in (("simulated", "simulated_counters"), ("modelled", "modelled_counters")):
                c = ((fields or {}).get(key) or {}).get("llc-misses")
                if c:
                    value = "not counted" if c.get("per_inference") is None else f"{c['per_inference']:,.0f} per inference"
                    counter_lines.append(f"  {r['target'][:width]:<{width}} {r['backend']:<{bw}} {kind:<9} "
                                         f"{'llc-misses':<18} {value} ({c['status']}, at {what})")
        cache_model = r.get("cache_model") or {}
        why_not = cache_model.get("not_modelled") or cache_model.get("error")
        if why_not:  # said, not left out silently: a stack the cache model cannot trace, or a model that failed
            counter_lines.append(f"  {r['target'][:width]:<{width}} {r['backend']:<{bw}} {'modelled':<9} "
                                 f"{'-':<18} {'not modelled' if 'not_modelled' in cache_model else 'failed'}: {why_not}")
        for name, d in (r.get("derived_counters") or {}).items():
            if d["value"] is not None:
                counter_lines.append(f"  {r['target'][:width]:<{width}} {r['backend']:<{bw}} {'derived':<9} {name:<18} {d['value']:.3f}")
    from fff.measure.contention import NOISY_CI

    doubtful = [f"  {r['target'][:width]:<{width}} {r['backend']:<{bw}} {r['verdict']}: {r['verdict_reason']}"
                for r in records if r["verdict"] != "ok"]
    if doubtful:
        lines += ["", "verdicts other than ok (contended: too few rounds got their CPUs; noisy: CI wider than "
                      f"+-{100 * NOISY_CI:g}%); not for headlines:"] + doubtful
    if counter_lines:
        lines += ["", "counters (measured: summed over every thread of the backend's process; simulated: valgrind, "
                      "one thread; modelled: fff's tensor-level model):"] + counter_lines
        lines += [f"  {name} {status}: {reason}" for (name, status), why in sorted(reasons.items()) for reason in sorted(why)]
    # A failed or refused simulation (NotSimulated) has its reason in the counter lines and no caveat.
    caveats = {r["simulation"]["caveat"] for r in records if (r.get("simulation") or {}).get("caveat")}
    caveats |= {r["cache_model"]["caveat"] for r in records if (r.get("cache_model") or {}).get("caveat")}
    lines += [f"note: {caveat}" for caveat in sorted(caveats)]
    return "\n".join(lines)


_PHASE_WORDS = {"prepare_s": "prepare", "worker_start_s": "start", "warmup_s": "warm-up",
                "calibration_s": "calibration", "rounds_s": "rounds", "breakdown_s": "breakdown",
                "cache_model_s": "cache model", "simulation_s": "simulation"}


def format_phases(records: list[dict]) -> list[str]:
    """One line per target: each stack's phases in seconds (fff.measure.phases), fresh or cached."""
    lines, targets = [], dict.fromkeys(r["target"] for r in records)
    for target in targets:
        stacks = []
        for record in (r for r in records if r["target"] == target and r.get("phases")):
            phases = record["phases"]
            parts = [f"{word} {phases[name]:.2f}" + (f" ({phases['prepared']})" if name == "prepare_s" and
                                                     "prepared" in phases else "")
                     for name, word in _PHASE_WORDS.items() if name in phases]
            stacks.append(f"{record['backend']} " + ", ".join(parts))
        shared = next((r["phases"].get("target") for r in records if r["target"] == target and r.get("phases")), None)
        once = f" (build {shared['build_s']:.2f}" + (f", roofline {shared['roofline_s']:.2f}" if "roofline_s" in shared
                                                    else "") + ")" if shared and "build_s" in shared else ""
        if stacks:
            lines.append(f"seconds by phase, {target}{once}: " + "; ".join(stacks))
    return lines


def list_everything() -> str:
    # Static tables only: listing names must not import torch or build anything.
    from fff.backends import BASELINE, backend_label, registered_names
    from fff.measure.counters import KNOWN_COUNTERS
    from fff.models.names import list_targets

    lines = []
    for kind, entries in list_targets().items():
        lines.append(f"{kind}:")
        lines += [f"  {name:<22} {description}" for name, description in entries.items()]
    lines.append("counters:")
    lines += [f"  {name:<22} {description}" for name, description in KNOWN_COUNTERS.items()]
    lines.append("backends (--backends; also package.module:ClassName):")
    lines += [f"  {name:<22} {backend_label(name)}" + (" (the baseline)" if name == BASELINE else "")
              for name in registered_names()]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from fff.cli.results_output import ResultsOutput, stop_on_sigterm
    from fff.errors import FffError

    output = ResultsOutput(PROG, json_path=args.json, csv_path=args.csv)
    try:
        if args.list:
            print(list_everything())
            return 0
        distinct_outputs(json=args.json, csv=args.csv, flamegraph=args.flamegraph)
        stop_on_sigterm()
        return _profile(args, output)
    except FffError as error:
        return fail(PROG, error)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; {output.kept_text()}", file=sys.stderr)
        return 130


def _check_before_importing(args, targets: list[str]) -> None:
    """What can be refused from the text alone, first: every target, the thread count against the
    affinity mask, the flame graph's format, the counters' names, a what-if cache. numpy, torch and openvino are not
    imported yet, so a typo costs a fraction of a second; ProfileOptions.validated() checks these
    again (for the Python API) with what needs the stacks' own modules."""
    from fff.explain.cache_geometry import parse_cache_sizes
    from fff.explain.flamegraph import check_output_path
    from fff.measure.contention import check_threads
    from fff.measure.counters import validate_names
    from fff.models.target_check import check_target

    for target in targets:
        check_target(target, batch=args.batch, resolution=args.resolution, input_shape=args.input_shape)
    check_threads(args.threads)
    if args.flamegraph:
        check_output_path(args.flamegraph)
    if args.counters:
        validate_names(args.counters)
    if args.cache:
        parse_cache_sizes(args.cache)  # each size valid, none twice


def _caches(specs) -> dict:
    """--cache given once or more: the record's own LL and the further sizes (ProfileOptions)."""
    if not specs:
        return {}
    from fff.explain.cache_geometry import split_cache_sizes

    cache, extra = split_cache_sizes(specs)
    return {"cache": cache, "extra_caches": extra}


def _profile(args, output) -> int:
    from fff.models.names import DEFAULT_TARGET

    targets = args.targets or [DEFAULT_TARGET]
    _check_before_importing(args, targets)
    from fff.measure.contention import preflight
    from fff.errors import FffError
    from fff.profiling import ProfileOptions, check_available, profile_records

    options = ProfileOptions(
        backends=tuple(args.backends), device=args.device, precision=args.precision, calibration=args.calibration,
        threads=args.threads,
        batch=args.batch, resolution=args.resolution, input_shape=args.input_shape, counters=tuple(args.counters),
        simulate_cache=args.simulate_cache, simulate_isa=args.simulate_isa, **_caches(args.cache),
        target_ci=args.target_ci / 100,
        max_seconds=DEFAULT_MAX_SECONDS if args.max_time is None else args.max_time, fit_cap=args.max_time is None,
        min_rounds=args.min_rounds, iterations=args.iterations, warmup=args.warmup,
        flamegraph=str(args.flamegraph) if args.flamegraph else None, breakdown=args.breakdown,
    ).validated()  # every option checked before the first measurement, and before torch is imported
    check_available(options)  # a device this machine lacks, before the note on the machine's load
    output.targets = targets
    busy = preflight()
    if busy:
        print(f"{PROG}: {busy}", file=sys.stderr, flush=True)

    def progress(message):
        if not args.quiet:
            print(f"[{PROG}] {message}", file=sys.stderr, flush=True)

    records = output.records
    try:
        profile_records(targets, options, progress=progress, on_target=output.save)
    except FffError:
        if records:
            print(format_table(records))
            output.report_failed_writes()
        raise
    print(format_table(records))
    if args.breakdown:
        from fff.cli.breakdown_table import format_breakdown

        print("\n" + format_breakdown(records))
    if not args.quiet:
        for line in format_phases(records):
            print(line)
    for record in records:
        if record.get("flamegraph"):
            print(f"flame graph of {record['target']} ({record['backend']}): {record['flamegraph']['path']}")
    # a target's notes (a rebuilt cache entry) sit in both of its records: say each once
    for warning in dict.fromkeys(w for record in records for w in record["warnings"]):
        print(f"warning: {warning}", file=sys.stderr)
    failed = [r for r in records if r["parity"] is not None and not r["parity"]["ok"]]
    for r in failed:
        parity = r["parity"]
        judged = (f"{_parity_text(parity)} at {r['precision']}" if parity.get("metric") == "sqnr_db" else
                  f"max rel err {_fmt(parity['max_rel_err'], '.3g', 'inf')}"
                  f"{_tolerance_text(parity, ' (tolerance {:g} at ' + r['precision'] + ')')}")
        print(f"{PROG}: parity FAILED for {r['target']} on {r['backend']}: max abs err "
              f"{_fmt(parity['max_abs_err'], '.3g', 'inf')}, {judged}"
              + "".join(f"; output {o['name']}: max rel err {_fmt(o['max_rel_err'], '.3g', 'inf')}"
                        for o in parity.get("outputs") or () if not o["ok"]), file=sys.stderr)
    if output.report_failed_writes():
        return WRITE_FAILED_EXIT
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
