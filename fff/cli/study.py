"""fff-study: sweep design patterns and zoo models through fff-profile into a crash-safe results file."""

from __future__ import annotations

import argparse
import signal
import sys

from fff.cli.common import WRITE_FAILED_EXIT, OneLineParser, comma_list, fail, positive_float

PROG = "fff-study"
# A cell's fixed cost on a 2-core machine besides its timed rounds: two worker starts, build,
# conversion, warm-up and calibration (measured with tiny patterns; big zoo models take longer).
FIXED_SECONDS_PER_CELL = 4.5


def _numbers(kind, what: str):
    def parse(text: str):
        values = []
        for item in comma_list(text):
            try:
                value = kind(item)
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected a comma-separated list of {what}, got {item!r}") from None
            if not value > 0:
                raise argparse.ArgumentTypeError(f"expected {what}, got {item!r}")
            values.append(value)
        return values
    return parse


def _counter_list(text: str) -> list[str]:
    return [] if text.strip().lower() == "none" else comma_list(text)


def build_parser() -> OneLineParser:
    from fff.models.names import PATTERN_DESCRIPTIONS, ZOO_MODELS  # plain tables: --help stays instant
    from fff.explain.simulation_server import ISA_CAPS

    parser = OneLineParser(
        prog=PROG,
        description="Measure design patterns (patterns x depths x widths x resolutions) and zoo models, each "
                    "crossed with precisions and thread counts, through PyTorch and OpenVINO. One line per finished "
                    "cell is appended (flushed, fsync'd, locked) to --out, so a killed study loses at most the cell "
                    "in progress and --resume continues it. Without STUDY.toml, the built-in default study "
                    "(a small-machine reproduction of the paper) is used.",
        epilog="Naming only --patterns or only --zoo runs only that kind. A failed cell is recorded as an error "
               "row and the study goes on (exit 0); see fff-report. Shards: --shard K/N (1 <= K <= N) runs the K-th "
               "of N deterministic parts, e.g. as a Slurm job array. Exit codes: 0 done, 2 bad input, "
               "3 a row could not be appended to --out (a full disk; nothing torn is left, a finished cell's row is "
               "saved to a fallback file it names; resume with --resume), 130 interrupted (resume with --resume). "
               f"Patterns: {', '.join(PATTERN_DESCRIPTIONS)}. Zoo models: {', '.join(ZOO_MODELS)}. "
               "fff-profile --list describes each.",
    )
    parser.add_argument("study", nargs="?", metavar="STUDY.toml",
                        help="study file, or a built-in study's name: default (the paper's experiment, "
                        "used without STUDY.toml), since-2021 (attention, ConvNeXt and MobileViT forms) or stacks "
                        "(patterns and zoo models through PyTorch, OpenVINO, ONNX Runtime and torch.compile, f32 "
                        "and int8)")
    parser.add_argument("--patterns", type=comma_list, help="design patterns, e.g. plain,dw-bottleneck")
    parser.add_argument("--depths", type=_numbers(int, "whole numbers >= 1"), help="blocks per pattern, e.g. 1,2,4")
    parser.add_argument("--widths", type=_numbers(float, "positive numbers"), help="channel multipliers, e.g. 0.5,1")
    # Both spellings, as in fff-profile: a user need not remember which command takes which.
    parser.add_argument("--resolutions", "--resolution", type=_numbers(int, "whole numbers >= 1"), dest="resolutions",
                        help="pattern input sizes, e.g. 64,224")
    parser.add_argument("--zoo", type=comma_list, help="zoo models, e.g. mobilenet_v2,darts,resnet50")
    parser.add_argument("--zoo-resolutions", type=_numbers(int, "whole numbers >= 1"),
                        help="zoo input sizes (default: each model's own)")
    parser.add_argument("--precisions", type=comma_list,
                        help="f32 (default), bf16, f16, int8 (the stacks that offer it, against the baseline in f32)")
    parser.add_argument("--calibration", metavar="DIR",
                        help="int8 cells calibrate on the images in DIR instead of fixed-seed noise")
    parser.add_argument("--threads", type=_numbers(int, "whole numbers >= 1"),
                        help="thread counts (default: every available CPU)")
    parser.add_argument("--counters", type=_counter_list,
                        help="perf counters per cell, e.g. llc-misses; 'none' for no counters")
    parser.add_argument("--simulate-cache", action="store_const", const=True,
                        help="count cache misses under valgrind's cache simulator (slow; works without a PMU)")
    parser.add_argument("--simulate-isa", choices=tuple(ISA_CAPS),
                        help="cap the simulated kernels' instruction set: 5-9x faster under valgrind (the default "
                             "study: avx); each record says what the cap changes per counter")
    parser.add_argument("--cache", metavar="LL=SIZE[,Nway]", action="append",
                        help="what-if last-level cache for the cache model and simulation, e.g. LL=8MiB,16way; "
                             "given more than once, an LL-size axis ('machine' is this machine's own): "
                             "--cache machine --cache LL=12MiB,16way models (and simulates) each cell at both "
                             "sizes from one timed run")
    parser.add_argument("--max-time", type=positive_float, help="seconds of timed rounds per cell at most")
    parser.add_argument("--out", required=True, metavar="RESULTS.jsonl", help="results file (JSON Lines)")
    parser.add_argument("--resume", action="store_true", help="continue a study in --out, skipping finished cells")
    parser.add_argument("--retry-errors", action="store_true", help="with --resume: run failed cells again")
    parser.add_argument("--extend", action="store_true",
                        help="with --resume: add cells measured under other settings (counters, time cap...) to a "
                             "results file on purpose; fff-report keeps the two configurations apart")
    parser.add_argument("--shard", metavar="K/N", help="run only the K-th of N parts of the study")
    parser.add_argument("--dry-run", action="store_true", help="list the cells and an estimated duration, then exit")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress bar or per-cell lines (errors and the closing summary stay)")
    return parser


def _caches(specs):
    if specs is not None:  # a bad spec is a UsageError: one line, exit 2
        from fff.explain.cache_geometry import parse_cache_sizes

        parse_cache_sizes(specs)
    return specs


def _config(args):
    from fff.study.config import default_study, load_study

    base = load_study(args.study) if args.study else default_study()
    return base.with_overrides(
        patterns=args.patterns, depths=args.depths, widths=args.widths, pattern_resolutions=args.resolutions,
        zoo=args.zoo, zoo_resolutions=args.zoo_resolutions, precisions=args.precisions, threads=args.threads,
        counters=args.counters, simulate_cache=args.simulate_cache, caches=_caches(args.cache),
        simulate_isa=args.simulate_isa, max_seconds=args.max_time, calibration=args.calibration)


def _dry_run(config, shard) -> int:
    from fff.study.progress import format_duration
    from fff.study.sweep import check_targets, select_shard

    cells = select_shard(config.cells(), shard)
    check_targets(cells)  # a typo is refused here too, not listed as a cell
    for precision in config.precisions:  # which stacks each precision's cells time, and which it leaves out
        skipped = config.left_out().get(precision, {})
        print(f"{precision}: " + (", ".join(config.stacks_at(precision)) if precision not in config.precisions_without_stacks()
                                  else "no cells (no stack beside the baseline computes in it)")
              + "".join(f"; {name} left out: {why}" for name, why in skipped.items()), file=sys.stderr)
    for cell in cells:
        print(f"{cell.cell_id}  {cell.label}")
    # the fixed cost was measured for two stacks; a cell of more stacks starts, builds and checks more
    estimate = sum(FIXED_SECONDS_PER_CELL * max(1, len(cell.backends)) / 2 + config.max_seconds for cell in cells)
    simulated = sum(cell.simulate_cache for cell in cells)
    sizes = 1 + len(config.extra_caches)
    print(f"{len(cells)} cells; about {format_duration(estimate)} at {FIXED_SECONDS_PER_CELL:g} s + "
          f"{config.max_seconds:g} s of timed rounds per cell of two stacks (large zoo models, and "
          f"torch-compile's compilation, take longer: a built-in study's file states its measured budget)"
          + (f"; then {simulated} simulated under valgrind (minutes per cell on one core, every core at once)"
             + (f", at each of {sizes} LL sizes" if sizes > 1 else "") if simulated else "")
          + (f"; the cache model runs at {sizes} LL sizes ({config.cache or 'machine'}, "
             f"{', '.join(config.extra_caches)}), timing once" if sizes > 1 else ""), file=sys.stderr)
    return 0


def _stop_on_sigterm(*_):
    # A batch scheduler's time limit sends SIGTERM: stop like Ctrl-C, so worker processes are
    # closed and the message says how to resume.
    raise KeyboardInterrupt


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from fff.errors import FffError, UsageError
    from fff.study.store import ResultsWriteError

    try:
        from fff.study.sweep import parse_shard, run_study

        if args.retry_errors and not args.resume:
            raise UsageError("--retry-errors continues an existing study: add --resume")
        if args.extend and not args.resume:
            raise UsageError("--extend continues an existing study: add --resume")
        shard = parse_shard(args.shard) if args.shard else None
        config = _config(args)
        if args.dry_run:
            return _dry_run(config, shard)
        signal.signal(signal.SIGTERM, _stop_on_sigterm)
        summary = run_study(config, args.out, resume=args.resume, retry_errors=args.retry_errors, shard=shard,
                            extend=args.extend, quiet=args.quiet)
    except ResultsWriteError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return WRITE_FAILED_EXIT
    except FffError as error:
        return fail(PROG, error)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; every finished cell is in {args.out}: continue with --resume", file=sys.stderr)
        return 130
    print(summary.describe(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
