"""The caches a simulation (and the cache model) stands for: the machine's own, read from sysfs, or a
what-if last level given as ``LL=8MiB,16way``, in the form valgrind's --I1/--D1/--LL take.

Valgrind's own guess is unreliable in VMs (it took a 335 MB direct-mapped LL here), and it needs
a power-of-two set count: a size it cannot simulate keeps its bytes and widens its ways, as
valgrind itself does, and the level's note says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from fff.errors import FffError, UsageError

__all__ = ["CacheLevel", "CacheGeometry", "cache_geometry", "parse_cache_spec", "simulable", "CACHE_SPEC_USAGE",
           "MACHINE", "parse_cache_sizes", "split_cache_sizes"]


@dataclass(frozen=True)
class CacheLevel:
    size: int  # bytes
    assoc: int
    line: int
    note: str = ""

    def option(self) -> str:
        return f"{self.size},{self.assoc},{self.line}"


@dataclass(frozen=True)
class CacheGeometry:
    I1: CacheLevel
    D1: CacheLevel
    LL: CacheLevel
    source: str

    def valgrind_options(self) -> list[str]:
        return [f"--I1={self.I1.option()}", f"--D1={self.D1.option()}", f"--LL={self.LL.option()}"]

    def as_dict(self) -> dict:
        return {name: {"size": level.size, "assoc": level.assoc, "line": level.line, "note": level.note}
                for name, level in (("I1", self.I1), ("D1", self.D1), ("LL", self.LL))} | {"source": self.source}


def simulable(size: int, assoc: int, line: int) -> CacheLevel:
    """Valgrind needs a power-of-two set count; keep the size and widen the ways, as valgrind does itself."""
    sets = size // (assoc * line)
    if sets >= 1 and sets & (sets - 1) == 0:
        return CacheLevel(size, assoc, line)
    pow2 = 1 << (max(sets, 1).bit_length() - 1)
    if size % (pow2 * line) == 0:
        wide = size // (pow2 * line)
        return CacheLevel(size, wide, line, f"{assoc}-way with {sets} sets simulated as {wide}-way with {pow2} sets")
    return CacheLevel(pow2 * assoc * line, assoc, line,
                      f"{size} B with {sets} sets simulated as {pow2 * assoc * line} B with {pow2} sets")


CACHE_SPEC_USAGE = "LL=SIZE[,Nway][,line=B], e.g. LL=8MiB,16way (SIZE in B, KiB, MiB or GiB)"
# In a list of LL sizes (a study's axis), the machine's own last level, read from sysfs.
MACHINE = "machine"
_UNITS = {"b": 1, "kib": 1024, "kb": 1024, "k": 1024, "mib": 1024**2, "mb": 1024**2, "m": 1024**2,
          "gib": 1024**3, "gb": 1024**3, "g": 1024**3}


def parse_cache_spec(text: str) -> CacheLevel:
    """A what-if last-level cache from ``LL=8MiB,16way`` (ways default to 16, lines to 64 B);
    UsageError naming the problem otherwise. A size valgrind cannot simulate (its set count must be
    a power of two) is adapted as the machine's own LL is, and the note says how."""
    import re

    def bad(why: str) -> UsageError:
        return UsageError(f"bad cache spec {text!r}: {why}; expected {CACHE_SPEC_USAGE}")

    if not isinstance(text, str) or not text.upper().startswith("LL="):
        raise bad("it must start with LL=")
    parts = [p.strip() for p in text[3:].split(",")]
    size_match = re.fullmatch(r"(\d+)\s*([A-Za-z]*)", parts[0])
    if not size_match or size_match[2].lower() not in _UNITS:
        raise bad(f"size {parts[0]!r} is not a number with a unit (B, KiB, MiB, GiB)")
    size, assoc, line = int(size_match[1]) * _UNITS[size_match[2].lower()], 16, 64
    for part in parts[1:]:
        if (ways := re.fullmatch(r"(\d+)\s*-?way", part, re.IGNORECASE)):
            assoc = int(ways[1])
        elif (bytes_ := re.fullmatch(r"line=(\d+)", part, re.IGNORECASE)):
            line = int(bytes_[1])
        else:
            raise bad(f"{part!r} is neither Nway nor line=B")
    if assoc < 1 or line < 16 or line & (line - 1):
        raise bad("ways must be >= 1 and the line a power of two >= 16 B")
    if size < assoc * line * 2:
        raise bad(f"{size} B is too small for {assoc} ways of {line} B lines")
    level = simulable(size, assoc, line)
    return CacheLevel(level.size, level.assoc, level.line,
                      f"what-if LL from {text!r}" + (f"; {level.note}" if level.note else ""))


def cache_geometry(ll: CacheLevel | None = None) -> CacheGeometry:
    """I1, D1 and the last level of cpu0 (from sysfs, via fff.measure.machine), in the form valgrind's
    --I1/--D1/--LL take; ``ll`` replaces the last level (a what-if cache, parse_cache_spec)."""
    from fff.measure.machine import CPU_SYSFS, sysfs_caches

    levels = {}
    for name, cache in sysfs_caches(0).items():
        size, assoc, line = cache["size_bytes"], cache["ways"], cache["line_bytes"]
        if size and assoc and line:  # 0 ways: fully associative or unreported
            levels[name] = simulable(size, assoc, line)
    unified = sorted(name for name in levels if name[-1].isdigit())  # "L2", "L3": no i/d suffix
    if "L1i" not in levels or "L1d" not in levels or not unified:
        raise FffError(f"cannot read the cache geometry from {CPU_SYSFS}/cpu0/cache (need L1 instruction, "
                       "L1 data and a unified last level); cache simulation needs it to model this machine")
    if ll is not None:
        return CacheGeometry(levels["L1i"], levels["L1d"], ll, f"{CPU_SYSFS}/cpu0/cache for L1; what-if LL")
    return CacheGeometry(levels["L1i"], levels["L1d"], levels[unified[-1]],
                         f"{CPU_SYSFS}/cpu0/cache ({unified[-1]} as LL)")


def parse_cache_sizes(specs) -> tuple[str, ...]:
    """A list of LL sizes for a study's cache axis: ``"machine"`` (this machine's own LL) or what-if
    specs (parse_cache_spec), each checked, none twice; a single string is a list of one. UsageError
    naming the problem otherwise."""
    specs = [specs] if isinstance(specs, str) else list(specs or ())
    if not specs:
        raise UsageError(f"no LL size given; expected {MACHINE!r} or {CACHE_SPEC_USAGE}")
    seen = {}
    for spec in specs:
        if not isinstance(spec, str):
            raise UsageError(f"bad cache spec {spec!r}: expected {MACHINE!r} or {CACHE_SPEC_USAGE}")
        if spec.strip().lower() == MACHINE:
            key = MACHINE
        else:
            level = parse_cache_spec(spec)
            key = (level.size, level.assoc, level.line)
        if key in seen:
            raise UsageError(f"LL size {spec!r} is listed twice (as {seen[key]!r} before)")
        seen[key] = spec
    return tuple(MACHINE if spec.strip().lower() == MACHINE else spec for spec in specs)


def split_cache_sizes(specs) -> tuple[str | None, tuple[str, ...]]:
    """(the first LL size as a single-size study states it: None for the machine's own, and the
    others): the first is the one a record's own cache fields describe, the others go in its
    ``ll_sizes``."""
    sizes = parse_cache_sizes(specs)
    return (None if sizes[0] == MACHINE else sizes[0]), sizes[1:]
