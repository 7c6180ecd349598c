"""What every fff command shares: one-line errors with exit code 2, atomic result files."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

USAGE_EXIT = 2
# Measured, but the results could not be written where asked (a full disk): they were saved to a
# fallback file that the message names. Distinct from 1 (parity failed) and 2 (bad input).
WRITE_FAILED_EXIT = 3


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is a single line naming the problem (exit code 2), and no flag
    works by being a prefix of another (``--res`` is an error, not ``--resolution``)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(USAGE_EXIT, f"{self.prog}: error: {message}\n")


def fail(prog: str, message: str) -> int:
    first_line = str(message).strip().splitlines()[0] if str(message).strip() else "unknown error"
    print(f"{prog}: error: {first_line}", file=sys.stderr)
    return USAGE_EXIT


def _whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected a number >= {minimum}, got {value}")
    return value


def positive_int(text: str) -> int:
    return _whole_number(text, 1)


def non_negative_int(text: str) -> int:
    return _whole_number(text, 0)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text}")
    return value


def comma_list(text: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list, got nothing")
    return items


def shape_argument(text: str) -> tuple[int, ...]:
    """``N,C,H,W`` (or ``NxCxHxW``) -> a tuple of whole numbers >= 1."""
    parts = [part.strip() for part in text.replace("x", ",").split(",")]
    try:
        dims = tuple(int(part) for part in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole numbers like 1,3,224,224, got {text!r}") from None
    if any(d < 1 for d in dims):
        raise argparse.ArgumentTypeError(f"every dimension must be >= 1, got {text}")
    return dims


def writable_path(text: str) -> Path:
    """An output path, checked by trying to write there (fff.safe_write.check_writable)."""
    from fff.errors import UsageError
    from fff.safe_write import check_writable

    try:
        return check_writable(text)
    except UsageError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def distinct_outputs(**paths) -> None:
    """Two outputs named the same file would silently overwrite each other: a usage error."""
    from fff.errors import UsageError

    seen: dict[str, str] = {}
    for option, path in paths.items():
        if path is None:
            continue
        resolved = os.path.realpath(path)
        if resolved in seen:
            raise UsageError(f"--{seen[resolved]} and --{option} name the same file {path}; give each its own path")
        seen[resolved] = option


def write_atomically(path: Path, text: str) -> None:
    """Never leave a half-written results file: write beside it, then rename over it."""
    from fff.safe_write import write_text

    write_text(path, text)
