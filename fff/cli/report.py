"""fff-report: figures, tables and the paper comparison from fff-study results files."""

from __future__ import annotations

import sys

from fff.cli.common import OneLineParser, fail

PROG = "fff-report"


def build_parser() -> OneLineParser:
    parser = OneLineParser(
        prog=PROG,
        description="Merge fff-study results files (shards, machines) and write an HTML report with figures: "
                    "speed-up per design pattern, latency against depth and FLOPs, LLC misses, architectures, "
                    "and the paper's headline numbers beside this study's. Machines are compared side by side, "
                    "never pooled.",
    )
    parser.add_argument("results", nargs="+", metavar="RESULTS.jsonl", help="one or more fff-study results files")
    parser.add_argument("--out", required=True, metavar="DIR", help="directory for index.html, the PNGs and records.csv")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from fff.errors import FffError

    try:
        from fff.report import report

        page = report(args.results, args.out)
    except FffError as error:
        return fail(PROG, error)
    except OSError as error:  # an unwritable --out, a results file that cannot be read
        return fail(PROG, f"{error.strerror or error}: {error.filename or ''}".rstrip(": "))
    print(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
