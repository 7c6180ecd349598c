"""Pattern specs: the text that names one network built from a design pattern.

Grammar (whitespace around names and values is ignored)::

    spec   := PATTERN [ ":" param { "," param } ]
    param  := KEY "=" VALUE

    KEY         VALUE                                   default
    depth       whole number >= 1: blocks per stage     2
    width       number > 0: channel (or embedding) multiplier 1.0
    resolution  whole number >= 32: input height/width  224
    batch       whole number >= 1                       1
    classes     whole number >= 1: classifier outputs   1000

PATTERN is one of ``fff.models.patterns.PATTERNS`` (``plain``, ``residual``, ``bottleneck``,
``dw-separable``, ``dw-bottleneck``, ``grouped``, ``inception``, ``dense``, ``se-mbconv``,
``shuffle``, ``transformer``, ``convnext``, ``mobilevit``). Each key may appear once; keys left out take their defaults.

Examples: ``dw-bottleneck``, ``dw-bottleneck:depth=8,width=1.0,resolution=224``,
``residual:depth=3,width=0.5,resolution=64,batch=4,classes=10``.

``str(spec)`` is the canonical form: depth, width and resolution always, batch and classes only
where they differ from their defaults; ``parse(str(spec)) == spec`` for every spec, and a
canonical string comes back unchanged from ``str(parse(text))``.

The network downsamples 32x (a stride-2 stem and four stride-2 stages), so a resolution below
32 leaves nothing to pool and is refused here, before anything is built.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, replace

from fff.errors import SpecError

__all__ = ["Spec", "parse", "with_build_options", "MIN_RESOLUTION", "DEFAULTS"]

# stride-2 stem + four stride-2 stages (see fff.models.patterns.PatternNet)
MIN_RESOLUTION = 32

DEFAULTS = {"depth": 2, "width": 1.0, "resolution": 224, "batch": 1, "classes": 1000}


@dataclass(frozen=True)
class Spec:
    """One pattern network: the pattern and its five parameters, validated."""

    pattern: str
    depth: int = DEFAULTS["depth"]
    width: float = DEFAULTS["width"]
    resolution: int = DEFAULTS["resolution"]
    batch: int = DEFAULTS["batch"]
    classes: int = DEFAULTS["classes"]

    def __post_init__(self):
        # The names' table, not fff.models.patterns: a spec is checked without importing torch.
        from fff.models.names import PATTERN_DESCRIPTIONS as PATTERNS

        if self.pattern not in PATTERNS:
            close = difflib.get_close_matches(self.pattern, PATTERNS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise SpecError(f"unknown pattern {self.pattern!r}{hint}; known patterns: {', '.join(PATTERNS)}")
        for key in ("depth", "resolution", "batch", "classes"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SpecError(f"{key} must be a whole number >= 1, got {value!r}")
        if isinstance(self.width, bool) or not isinstance(self.width, (int, float)) \
                or not math.isfinite(self.width) or self.width <= 0:
            raise SpecError(f"width must be a number > 0, got {self.width!r}")
        object.__setattr__(self, "width", float(self.width))
        if self.resolution < MIN_RESOLUTION:
            raise SpecError(f"resolution {self.resolution} is too small: the network downsamples "
                            f"{MIN_RESOLUTION}x, use resolution >= {MIN_RESOLUTION}")

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, 3, self.resolution, self.resolution)

    def with_options(self, *, batch: int | None = None, resolution: int | None = None) -> Spec:
        """The same network with batch and resolution overridden where given (command-line options win)."""
        changes = {k: v for k, v in (("batch", batch), ("resolution", resolution)) if v is not None}
        return replace(self, **changes) if changes else self

    def __str__(self) -> str:
        params = [f"depth={self.depth}", f"width={self.width!r}", f"resolution={self.resolution}"]
        params += [f"{key}={getattr(self, key)}" for key in ("batch", "classes") if getattr(self, key) != DEFAULTS[key]]
        return f"{self.pattern}:{','.join(params)}"


def _whole(text: str) -> int:
    if not text.isdigit():
        raise ValueError
    return int(text)


def _number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError
    return value


_PARSERS = {"depth": (_whole, "a whole number >= 1"), "width": (_number, "a number > 0"),
            "resolution": (_whole, f"a whole number >= {MIN_RESOLUTION}"), "batch": (_whole, "a whole number >= 1"),
            "classes": (_whole, "a whole number >= 1")}


def parse(text: str) -> Spec:
    """Parse a spec string (grammar in the module docstring); a SpecError names the bad part."""
    if not isinstance(text, str) or not text.strip():
        raise SpecError(f"empty pattern spec {text!r}; expected PATTERN[:key=value,...]")
    pattern, colon, rest = text.partition(":")
    pattern = pattern.strip()
    values: dict[str, int | float] = {}
    if colon:
        if not rest.strip():
            raise SpecError(f"spec {text!r}: nothing after ':'; expected key=value pairs like depth=2,width=1.0")
        for part in rest.split(","):
            key, equals, value = (s.strip() for s in part.partition("="))
            if not equals or not key or not value:
                raise SpecError(f"spec {text!r}: {part.strip()!r} is not key=value")
            if key not in _PARSERS:
                raise SpecError(f"spec {text!r}: unknown key {key!r}; known keys: {', '.join(_PARSERS)}")
            if key in values:
                raise SpecError(f"spec {text!r}: {key} is given twice")
            convert, expected = _PARSERS[key]
            try:
                values[key] = convert(value)
            except ValueError:
                raise SpecError(f"spec {text!r}: {key} must be {expected}, got {value!r}") from None
    try:
        return Spec(pattern, **values)
    except SpecError as error:
        raise SpecError(f"spec {text!r}: {error}") from None


def with_build_options(spec: Spec, target: str, *, batch: int | None = None, resolution: int | None = None,
                       input_shape: tuple[int, ...] | None = None) -> Spec:
    """``spec`` with the command line's batch, resolution or whole input shape (they win over the
    spec's own); a SpecError naming ``target`` when the network cannot take them."""
    if input_shape is not None:
        if len(input_shape) != 4 or input_shape[1] != 3 or input_shape[2] != input_shape[3]:
            raise SpecError(f"{target}: pattern networks take square RGB inputs (N,3,R,R), not input_shape "
                            f"{tuple(input_shape)}; give batch and resolution")
        spec = spec.with_options(batch=input_shape[0], resolution=input_shape[2])
    try:
        return spec.with_options(batch=batch, resolution=resolution)
    except SpecError as error:
        raise SpecError(f"{target}: {error}") from None
