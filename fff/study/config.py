"""What a study measures: a TOML file (or flags) turned into a list of cells.

A cell is one target measured once on every backend under one set of options: a design
pattern at one depth, width and resolution, or a zoo model, at one precision and thread count.
Patterns x depths x widths x resolutions, plus zoo models x resolutions, each crossed with
precisions x thread counts.

A study file has four tables; every key is optional, unknown keys and wrong types are errors:

    [study]    name, description
    [measure]  backends, device, precisions, calibration, threads, batch, counters, simulate_cache, cache
               (one LL or a list), calibrate_every, calibrate_from, simulate_isa, max_seconds, min_rounds, target_ci, warmup, keep_samples,
               breakdown
    [patterns] names, depths, widths, resolutions
    [zoo]      models, resolutions

A cell's identity (``cell_id``) is a hash of what it measures (target, resolution, precision,
threads as declared, batch, backends, device, counters, what-if cache, further LL sizes) and not of how long
it is measured (max_seconds, target_ci, min_rounds, warmup, breakdown), so a study resumed with a longer
time cap keeps what it has. Nor of whether its caches are simulated: simulation runs after the
timing (fff.study.sweep's simulation phase) and changes nothing that is timed, so a timed study
resumed with --simulate-cache --extend simulates its cells without timing them again. Threads left to "every available CPU" stay ``None`` in the identity,
so shards agree on the split even when their machines have different core counts.

Backends and precisions are axes: a cell at a precision times the stacks that compute in it (each
backend class's ``precisions``, read through the registry) and the baseline always (in f32 where it
lacks the precision, as fff.profiling allows). A stack left out of a precision is said once
(``StudyConfig.left_out``: the dry run, each row's ``stacks_left_out``, the report), never an error
row per cell. A study whose every stack computes in every precision it asks for keeps its cells' ids.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from importlib import resources
from pathlib import Path

from fff.backends import DEFAULT_BACKENDS
from fff.errors import UsageError
from fff.explain.simulation_server import ISA_CAPS

__all__ = ["Cell", "StudyConfig", "load_study", "default_study", "parse_study", "DEFAULT_STUDY_RESOURCE",
           "BUILTIN_STUDIES", "builtin_study"]

DEFAULT_STUDY_RESOURCE = "default.toml"  # in the fff.study package, shipped in the wheel
# Built-in studies a user names instead of a file (``fff-study since-2021``): name -> resource.
BUILTIN_STUDIES = {"default": DEFAULT_STUDY_RESOURCE, "since-2021": "since2021.toml", "stacks": "stacks.toml"}


@dataclass(frozen=True)
class Cell:
    """One target under one set of options; measured on every backend in one go."""

    kind: str  # "pattern" or "zoo"
    target: str  # what fff.profiling.profile_target is given
    pattern: str | None
    depth: int | None
    width: float | None
    model: str | None
    resolution: int | None  # None: the model's own
    precision: str
    threads: int | None  # None: every CPU the process may run on
    batch: int | None
    backends: tuple[str, ...]
    device: str
    counters: tuple[str, ...]
    simulate_cache: bool
    cache: str | None = None  # what-if LL ("LL=8MiB,16way"); None: the machine's own
    # further LL sizes ("machine" or what-if specs) the cache model and simulation also run at, from the
    # same timed run: a study's cache axis (the record's ll_sizes)
    extra_caches: tuple[str, ...] = ()
    calibration: str | None = None  # int8 cells: the images their quantization calibrates on; None: synthetic

    def identity(self) -> dict:
        identity = {**asdict(self), "backends": list(self.backends), "counters": list(self.counters),
                    "extra_caches": list(self.extra_caches)}
        if identity["cache"] is None:  # cells measured before what-if caches existed keep their ids
            del identity["cache"]
        if not identity["extra_caches"]:  # nor do cells of a single LL size
            del identity["extra_caches"]
        if identity["calibration"] is None:  # nor do cells calibrated synthetically
            del identity["calibration"]
        return identity

    @property
    def cell_id(self) -> str:
        # simulate_cache stays in the row's "cell" (what was asked) but not in the hash: the same
        # timing with or without a simulation is the same cell (False keeps older studies' ids).
        canonical = json.dumps({**self.identity(), "simulate_cache": False}, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        extras = [f"{self.resolution}px" if self.resolution else None,
                  self.precision if self.precision != "f32" else None,
                  f"{self.threads}t" if self.threads else None]
        return " ".join([self.target, *filter(None, extras)])


@dataclass(frozen=True)
class StudyConfig:
    """A whole study; ``cells()`` expands it. Field names follow the TOML keys."""

    name: str = "custom"
    description: str = ""
    # [measure]
    backends: tuple[str, ...] = DEFAULT_BACKENDS  # registry names or module:Class (fff.backends)
    device: str = "CPU"
    precisions: tuple[str, ...] = ("f32",)
    calibration: str | None = None  # a directory of images the int8 cells calibrate on (fff.backends.calibration)
    threads: tuple[int | None, ...] = (None,)
    batch: int | None = None
    counters: tuple[str, ...] = ()
    simulate_cache: bool = False
    cache: str | None = None  # the first LL size: None for the machine's own
    extra_caches: tuple[str, ...] = ()  # the other LL sizes of a cache axis (cache = [...] in the file)
    simulate_isa: str | None = None  # fff.explain.cache_sim.ISA_CAPS key for the simulated cells
    calibrate_every: int | None = None  # simulate one cell in N (every cell is modelled): the model's calibration
    calibrate_from: int = 0  # the first of them (0-based, in cell order): which depth/width each pattern calibrates
    max_seconds: float = 3.0
    # Whether the user set max_seconds (their study file or --max-time): then it is a limit, and a cell
    # whose min_rounds rounds cannot fit in it is an error row. Otherwise (the built-in study, a file
    # without it) it is a budget each cell's calibration raises where needed, said in its records.
    max_seconds_given: bool = False
    min_rounds: int = 3
    target_ci: float = 0.02
    warmup: int = 3
    keep_samples: bool = False  # raw samples make a line hundreds of kB; the summaries are kept
    breakdown: bool = False  # per-layer profiles after each cell's timed rounds (fff.explain.breakdown)
    # [patterns]
    patterns: tuple[str, ...] = ()
    depths: tuple[int, ...] = (1, 2, 4)
    widths: tuple[float, ...] = (1.0,)
    pattern_resolutions: tuple[int | None, ...] = (None,)
    # [zoo]
    zoo: tuple[str, ...] = ()
    zoo_resolutions: tuple[int | None, ...] = (None,)
    source: str = field(default="(flags)", compare=False)

    def left_out(self) -> dict[str, dict[str, str]]:
        """precision -> {stack: why it is not timed at that precision}, for the stacks that cannot compute
        in it (the baseline is never left out: it runs f32 where it lacks the precision)."""
        from fff.backends import BASELINE, backend_class
        from fff.backends.base import PRECISIONS

        out = {}
        for precision in self.precisions:
            if precision not in PRECISIONS:  # said as fff-profile says it, not as a study without cells
                raise UsageError(f"invalid precision '{precision}' (choose {', '.join(PRECISIONS)})")
            for name in self.backends:
                offered = backend_class(name).precisions
                if name != BASELINE and precision not in offered:
                    out.setdefault(precision, {})[name] = f"no {precision} kernels (it computes in {', '.join(offered)})"
        return out

    def stacks_at(self, precision: str) -> tuple[str, ...]:
        """The backends a cell at ``precision`` times, in the study's order; just the baseline when no
        other stack computes in it (such cells are not measured: StudyConfig.cells leaves them out)."""
        skipped = self.left_out().get(precision, {})
        return tuple(name for name in self.backends if name not in skipped)

    def precisions_without_stacks(self) -> tuple[str, ...]:
        """The precisions at which every stack beside the baseline was left out: no cells there."""
        from fff.backends import BASELINE

        left_out = self.left_out()
        return tuple(p for p in self.precisions if p in left_out and not set(self.stacks_at(p)) - {BASELINE})

    def cells(self) -> list[Cell]:
        common = dict(batch=self.batch, device=self.device,
                      counters=tuple(self.counters), simulate_cache=self.simulate_cache, cache=self.cache,
                      extra_caches=tuple(self.extra_caches))
        if self.calibration is not None and "int8" not in self.precisions:
            raise UsageError(f"{self.source}: calibration calibrates int8 quantization; it needs int8 among the "
                             f"precisions (got {', '.join(self.precisions)})")
        cells = []
        empty = self.precisions_without_stacks()
        for precision in self.precisions:
            if precision in empty:
                continue
            common["backends"] = self.stacks_at(precision)
            for threads in self.threads:
                for pattern in self.patterns:
                    for depth in self.depths:
                        for width in self.widths:
                            for resolution in self.pattern_resolutions:
                                cells.append(Cell("pattern", f"{pattern}:depth={depth},width={float(width):g}",
                                                  pattern, depth, float(width), None, resolution, precision,
                                                  threads, **common))
                for model in self.zoo:
                    for resolution in self.zoo_resolutions:
                        cells.append(Cell("zoo", model, None, None, None, model, resolution, precision, threads,
                                          **common))
        seen, unique = set(), []
        for cell in cells:  # a name listed twice is measured once
            if cell.cell_id not in seen:
                seen.add(cell.cell_id)
                unique.append(cell)
        if self.calibration is not None:
            unique = [replace(cell, calibration=self.calibration) if cell.precision == "int8" else cell
                      for cell in unique]
        if self.calibrate_every:  # in cell order: with the default order, the same depth and width of each pattern
            unique = [replace(cell, simulate_cache=True)
                      if i >= self.calibrate_from and (i - self.calibrate_from) % self.calibrate_every == 0 else cell
                      for i, cell in enumerate(unique)]
        return unique

    def profile_options(self, cell: Cell):
        from fff.profiling import ProfileOptions

        # simulate_cache=False: a study simulates in a phase of its own, after every cell is timed
        # (fff.study.sweep), so that no simulation competes with a timed round for the cores.
        return ProfileOptions(backends=cell.backends, device=cell.device, precision=cell.precision,
                              threads=cell.threads, batch=cell.batch, resolution=cell.resolution,
                              counters=cell.counters, simulate_cache=False, cache=cell.cache,
                              extra_caches=cell.extra_caches,
                              simulate_isa=self.simulate_isa,
                              target_ci=self.target_ci, max_seconds=self.max_seconds,
                              fit_cap=not self.max_seconds_given,
                              min_rounds=self.min_rounds, warmup=self.warmup, keep_samples=self.keep_samples,
                              breakdown=self.breakdown, calibration=cell.calibration)

    def with_overrides(self, **overrides) -> "StudyConfig":
        """Flags over a file: ``None`` means "not given". Naming patterns or zoo models picks what
        to run, so giving only one of the two drops the other kind."""
        given = {k: v for k, v in overrides.items() if v is not None}
        unknown = set(given) - {f.name for f in fields(self)} - {"caches"}
        if unknown:
            raise TypeError(f"unknown study field(s): {', '.join(sorted(unknown))}")
        if "max_seconds" in given:  # --max-time: the user's limit
            given["max_seconds_given"] = True
        if "patterns" in given and "zoo" not in given:
            given["zoo"] = ()
        if "zoo" in given and "patterns" not in given:
            given["patterns"] = ()
        if "caches" in given:  # a list of LL sizes (--cache A B): the first, and the others
            from fff.explain.cache_geometry import split_cache_sizes

            given["cache"], given["extra_caches"] = split_cache_sizes(given.pop("caches"))
        return replace(self, **{k: tuple(v) if isinstance(v, list) else v for k, v in given.items()})


# --- the TOML schema: table -> key -> (StudyConfig field, checker) ---------------------------------

def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _one_of(names) -> str:
    """'"a", "b" or "c"'"""
    quoted = [f'"{name}"' for name in names]
    return ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _whole_or_zero(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 and value != float("inf")


def _text(value) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _list_of(check, what: str):
    def checker(value):
        if isinstance(value, list) and value and all(check(v) for v in value):
            return tuple(value)
        raise ValueError(f"a non-empty list of {what}")
    return checker


def _scalar(check, what: str):
    def checker(value):
        if check(value):
            return value
        raise ValueError(what)
    return checker


def _cache_spec(value):
    from fff.explain.cache_geometry import CACHE_SPEC_USAGE, MACHINE, parse_cache_spec, split_cache_sizes

    try:
        if isinstance(value, list):  # a cache axis: "machine" and what-if specs
            return split_cache_sizes(value)
        parse_cache_spec(value)
    except UsageError as error:
        what = (f"a list of LL sizes, each {MACHINE!r} or {CACHE_SPEC_USAGE}, none twice ({error})"
                if isinstance(value, list) else f"a what-if cache {CACHE_SPEC_USAGE}, or a list of LL sizes")
        raise ValueError(what) from None
    return value, ()


def _flag(value):
    if isinstance(value, bool):
        return value
    raise ValueError("true or false")


_SCHEMA = {
    "study": {
        "name": ("name", _scalar(_text, "a non-empty string")),
        "description": ("description", _scalar(lambda v: isinstance(v, str), "a string")),
    },
    "measure": {
        "backends": ("backends", _list_of(_text, "backend names")),
        "device": ("device", _scalar(_text, "a device name such as \"CPU\"")),
        "precisions": ("precisions", _list_of(_text, "precisions (\"f32\", \"bf16\", \"f16\", \"int8\")")),
        "calibration": ("calibration", _scalar(_text, "a directory of images")),
        "threads": ("threads", _list_of(_whole, "whole numbers >= 1")),
        "batch": ("batch", _scalar(_whole, "a whole number >= 1")),
        "counters": ("counters", lambda v: () if v == [] else _list_of(_text, "counter names")(v)),
        "simulate_cache": ("simulate_cache", _flag),
        "cache": (("cache", "extra_caches"), _cache_spec),
        "calibrate_every": ("calibrate_every", _scalar(_whole, "a whole number >= 1")),
        "calibrate_from": ("calibrate_from", _scalar(_whole_or_zero, "a whole number >= 0")),
        "simulate_isa": ("simulate_isa", _scalar(lambda v: v in ISA_CAPS, _one_of(ISA_CAPS))),
        "max_seconds": ("max_seconds", _scalar(_positive, "a positive number of seconds")),
        "min_rounds": ("min_rounds", _scalar(_whole, "a whole number >= 1")),
        "target_ci": ("target_ci", _scalar(lambda v: _positive(v) and v < 1, "a fraction between 0 and 1 (0.02 = +-2%)")),
        "warmup": ("warmup", _scalar(_whole_or_zero, "a whole number >= 0")),
        "keep_samples": ("keep_samples", _flag),
        "breakdown": ("breakdown", _flag),
    },
    "patterns": {
        "names": ("patterns", _list_of(_text, "pattern names")),
        "depths": ("depths", _list_of(_whole, "whole numbers >= 1")),
        "widths": ("widths", _list_of(_positive, "positive numbers")),
        "resolutions": ("pattern_resolutions", _list_of(_whole, "whole numbers >= 1")),
    },
    "zoo": {
        "models": ("zoo", _list_of(_text, "model names")),
        "resolutions": ("zoo_resolutions", _list_of(_whole, "whole numbers >= 1")),
    },
}


def parse_study(text: str, source: str = "<study>") -> StudyConfig:
    """A study from TOML text; any problem is a UsageError naming the file and the key."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"{source}: not valid TOML: {error}") from None
    values = {}
    for table, content in document.items():
        schema = _SCHEMA.get(table)
        if schema is None:
            raise UsageError(f"{source}: unknown table [{table}] (known: {', '.join(f'[{t}]' for t in _SCHEMA)})")
        if not isinstance(content, dict):
            raise UsageError(f"{source}: '{table}' must be a table ([{table}]), got {type(content).__name__}")
        for key, value in content.items():
            if key not in schema:
                raise UsageError(f"{source}: unknown key '{table}.{key}' (known in [{table}]: {', '.join(schema)})")
            name, check = schema[key]
            try:
                checked = check(value)
            except ValueError as expected:
                raise UsageError(f"{source}: '{table}.{key}' must be {expected}, got {value!r}") from None
            if isinstance(name, tuple):  # one key, several fields (cache: the first LL size and the others)
                values.update(zip(name, checked))
            else:
                values[name] = checked
    return StudyConfig(**values, max_seconds_given="max_seconds" in values, source=source)


def load_study(path: str | Path) -> StudyConfig:
    """A study file, or a built-in study's name (BUILTIN_STUDIES) where no such file exists."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        if str(path) in BUILTIN_STUDIES:
            return builtin_study(str(path))
        raise UsageError(f"study file {path} does not exist (built-in studies: {', '.join(BUILTIN_STUDIES)})") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"study file {path} cannot be read: {error}") from None
    return parse_study(text, str(path))


def default_study() -> StudyConfig:
    """The built-in study that reproduces the paper's experiment at a size for a small machine."""
    return builtin_study("default")


def builtin_study(name: str) -> StudyConfig:
    """A study shipped with fff, by name (BUILTIN_STUDIES)."""
    resource = BUILTIN_STUDIES[name]
    text = resources.files("fff.study").joinpath(resource).read_text()
    # Its max_seconds is fff's choice, not the user's: a budget every cell may exceed where its
    # calibration says min_rounds rounds need more (vgg16 on a slow machine), so that every cell
    # of a built-in study is measured on any machine that can run it.
    return replace(parse_study(text, f"fff/study/{resource} (built-in)"), max_seconds_given=False)
