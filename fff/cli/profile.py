"""fff-profile: how much faster is TARGET through OpenVINO than in PyTorch, and why."""

from __future__ import annotations

import sys

from fff.cli.common import (OneLineParser, comma_list, fail, positive_float, positive_int, shape_argument,
                            write_atomically, write_json, writable_path)

PROG = "fff-profile"
# per-layer lists of a breakdown: in --json, not in a CSV row (its categories and honesty fields stay)
BREAKDOWN_LISTS = ("breakdown.layers", "breakdown.comparison", "breakdown.unattributed", "breakdown.not_run")


def build_parser() -> OneLineParser:
    parser = OneLineParser(
        prog=PROG,
        description="Time a neural network in its native framework (PyTorch) and through OpenVINO on the same "
                    "weights, input, precision and threads; report the speed-up with its confidence interval, "
                    "FLOPs, parity and hardware counters.",
        epilog="TARGET: a zoo name (resnet50, darts), a pattern spec (dw-bottleneck:depth=8,width=1.0), an .onnx or "
               "OpenVINO .xml file, or module:function returning an nn.Module. With no TARGET, a small built-in "
               "model. FLOPs are 2 x multiply-adds. Exit codes: 0 ok, 1 parity failed, 2 bad input.",
    )
    parser.add_argument("targets", nargs="*", metavar="TARGET")
    parser.add_argument("--list", action="store_true", help="list models, design patterns and counters, then exit")
    parser.add_argument("--backends", type=comma_list, default=["torch", "openvino"], help="default: torch,openvino")
    parser.add_argument("--device", default="CPU", help="OpenVINO device (default CPU)")
    parser.add_argument("--precision", default="f32", help="f32 (default), bf16 or f16, on both sides")
    parser.add_argument("--threads", type=positive_int, help="threads on both sides (default: every available CPU)")
    parser.add_argument("--batch", type=positive_int, help="batch size (default 1)")
    parser.add_argument("--resolution", type=positive_int, help="input height and width (default: the model's own)")
    parser.add_argument("--input-shape", type=shape_argument, metavar="N,C,H,W",
                        help="the whole input shape, for model files with dynamic dims and functions without an "
                             "input_shape attribute")
    parser.add_argument("--counters", type=comma_list, default=[], help="perf counters, e.g. llc-misses,instructions")
    parser.add_argument("--simulate-cache", action="store_true",
                        help="also count cache misses under valgrind's cache simulator (slow; works without a PMU)")
    parser.add_argument("--target-ci", type=positive_float, default=1.0,
                        help="stop when each median's 95%% CI is within +-this %% (default 1)")
    parser.add_argument("--max-time", type=positive_float, default=20.0,
                        help="seconds of timed rounds per target at most (default 20)")
    parser.add_argument("--min-rounds", type=positive_int, default=3, help="interleaved rounds at least (default 3)")
    parser.add_argument("--breakdown", action="store_true",
                        help="after the timed rounds, profile every layer in both backends and show where the time "
                             "goes and where the speed-up comes from (adds a few seconds per target)")
    parser.add_argument("--json", type=writable_path, metavar="PATH", help="write the records as JSON")
    parser.add_argument("--csv", type=writable_path, metavar="PATH", help="write the records as CSV (no raw samples)")
    parser.add_argument("--flamegraph", type=writable_path, metavar="PATH",
                        help="py-spy profile of the PyTorch run: .svg flame graph or speedscope .json")
    return parser


def _fmt(value, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def format_table(records: list[dict]) -> str:
    width = min(max([len("target")] + [len(r["target"]) for r in records]), 60)
    header = f"{'target':<{width}} {'backend':<9} {'median ms':>10} {'+-CI':>6} {'p90 ms':>9} {'first ms':>9} " \
             f"{'speed-up [95% CI]':>22} {'GFLOPs':>8} {'GFLOP/s':>8}  parity"
    lines = [header, "-" * len(header)]
    for r in records:
        lat = r["latency_ms"]
        ci = 100 * (lat["ci95_high"] - lat["ci95_low"]) / 2 / lat["median"]
        if r["speedup"] is not None:
            speedup = f"{r['speedup']:.2f}x [{r['speedup_ci95'][0]:.2f}, {r['speedup_ci95'][1]:.2f}]"
        else:  # no PyTorch row to compare against: a model file, or --backends without torch
            speedup = "baseline" if r["backend"] == "torch" else "no baseline"
        parity = "-" if r["parity"] is None else \
            f"{'ok' if r['parity']['ok'] else 'FAILED'} (rel {r['parity']['max_rel_err']:.1e})"
        lines.append(f"{r['target'][:width]:<{width}} {r['backend']:<9} {lat['median']:>10.3f} {ci:>5.1f}% {lat['p90']:>9.3f} "
                     f"{r['first_inference_ms']:>9.2f} {speedup:>22} {_fmt(r['flops'] and r['flops'] / 1e9, '.3f'):>8} "
                     f"{_fmt(r['gflops_per_s'], '.1f'):>8}  {parity}")
    counter_lines = []
    for r in records:
        for kind, key in (("measured", "counters"), ("simulated", "simulated_counters")):
            for name, c in (r.get(key) or {}).items():
                value = "not counted" if c.get("per_inference") is None else f"{c['per_inference']:,.0f} per inference"
                note = f"{c['status']}: {c['reason']}" if c.get("reason") else c["status"]
                counter_lines.append(f"  {r['target'][:width]:<{width}} {r['backend']:<9} {kind:<9} {name:<18} {value} ({note})")
        for name, d in (r.get("derived_counters") or {}).items():
            if d["value"] is not None:
                counter_lines.append(f"  {r['target'][:width]:<{width}} {r['backend']:<9} {'derived':<9} {name:<18} {d['value']:.3f}")
    if counter_lines:
        lines += ["", "counters (summed over every thread of the backend's process):"] + counter_lines
    caveats = {r["simulation"]["caveat"] for r in records if r.get("simulation")}
    lines += [f"note: {caveat}" for caveat in sorted(caveats)]
    return "\n".join(lines)


def list_everything() -> str:
    from fff.counters import KNOWN_COUNTERS
    from fff.models import list_targets

    lines = []
    for kind, entries in list_targets().items():
        lines.append(f"{kind}:")
        lines += [f"  {name:<22} {description}" for name, description in entries.items()]
    lines.append("counters:")
    lines += [f"  {name:<22} {description}" for name, description in KNOWN_COUNTERS.items()]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from fff.errors import FffError

    try:
        if args.list:
            print(list_everything())
            return 0
        return _profile(args)
    except FffError as error:
        return fail(PROG, error)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; results measured so far were written", file=sys.stderr)
        return 130


def _profile(args) -> int:
    from fff.errors import FffError
    from fff.models import DEFAULT_TARGET
    from fff.profiling import ProfileOptions, profile_records

    options = ProfileOptions(
        backends=tuple(args.backends), device=args.device, precision=args.precision, threads=args.threads,
        batch=args.batch, resolution=args.resolution, input_shape=args.input_shape, counters=tuple(args.counters),
        simulate_cache=args.simulate_cache, target_ci=args.target_ci / 100, max_seconds=args.max_time,
        min_rounds=args.min_rounds, flamegraph=str(args.flamegraph) if args.flamegraph else None,
        breakdown=args.breakdown,
    ).validated()  # every option checked before the first measurement
    targets = args.targets or [DEFAULT_TARGET]

    def save(records):
        if args.json:
            write_json(args.json, records)
        if args.csv:
            import pandas as pd

            flat = pd.json_normalize([{k: v for k, v in r.items() if k != "samples_ns"} for r in records], sep=".")
            flat = flat.drop(columns=[c for c in flat.columns if c.startswith(BREAKDOWN_LISTS)])  # JSON has them
            write_atomically(args.csv, flat.to_csv(index=False))

    def progress(message):
        print(f"[{PROG}] {message}", file=sys.stderr, flush=True)

    records: list[dict] = []

    def keep(so_far):
        records[:] = so_far
        save(so_far)

    try:
        profile_records(targets, options, progress=progress, on_target=keep)
    except FffError:
        if records:
            print(format_table(records))
        raise
    print(format_table(records))
    if args.breakdown:
        from fff.cli.breakdown_table import format_breakdown

        print("\n" + format_breakdown(records))
    for record in records:
        for warning in record["warnings"]:
            print(f"warning: {warning}", file=sys.stderr)
    failed = [r for r in records if r["parity"] is not None and not r["parity"]["ok"]]
    for r in failed:
        print(f"{PROG}: parity FAILED for {r['target']} on {r['backend']}: max abs err {r['parity']['max_abs_err']:.3g}, "
              f"max rel err {r['parity']['max_rel_err']:.3g}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
