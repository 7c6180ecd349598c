"""Which study configuration measured a row, so that cells measured differently are never pooled.

Every row a study appends carries ``config`` (the settings below) and ``config_fingerprint`` (a
hash of them). In every row rather than a header line: shards appending to one file concurrently
need no agreement on who writes the header, and a row copied into another file keeps its origin.

The settings are those that change what a cell's numbers mean and that are not already part of
the cell's identity (target, resolution, precision, threads): backends, device, batch, counters,
cache simulation, and how long and how precisely each cell is timed; with ``calibration``, the
digest of its images (the cell's identity holds the directory's path, not what is in it). The list of cells is not:
adding depths or models to a study and resuming it is extending it, not mixing two studies.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from fff.errors import UsageError

__all__ = ["measurement_settings", "config_fingerprint", "check_resume_configuration", "describe_differences"]

SETTINGS = ("backends", "device", "batch", "counters", "simulate_cache", "max_seconds", "min_rounds", "target_ci",
            "warmup")


def measurement_settings(config) -> dict:
    """The StudyConfig's settings that a results row records (JSON types only)."""
    values = {}
    for name in SETTINGS:
        value = getattr(config, name)
        values[name] = list(value) if isinstance(value, tuple) else value
    if getattr(config, "calibration", None) is not None:  # absent otherwise: older files keep their fingerprint
        from fff.backends.calibration import images_digest

        values["calibration_images"] = images_digest(config.calibration)
    return values


def config_fingerprint(settings: dict) -> str:
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def describe_differences(old: dict, new: dict, old_label: str = "in the file", new_label: str = "now") -> str:
    """'counters: [] in the file, ["task-clock"] now; max_seconds: 3.0 in the file, 1.0 now'."""
    names = sorted(set(old) | set(new), key=lambda n: SETTINGS.index(n) if n in SETTINGS else len(SETTINGS))
    return "; ".join(f"{name}: {json.dumps(old.get(name))} {old_label}, {json.dumps(new.get(name))} {new_label}"
                     for name in names if old.get(name) != new.get(name))


def check_resume_configuration(rows: list[dict], settings: dict, path: str | Path, *, extend: bool) -> None:
    """A resumed study must measure as the file's study did, unless ``extend`` says on purpose.
    Rows written before fingerprints existed carry none and are not compared."""
    fingerprint = config_fingerprint(settings)
    earlier = {}
    for row in rows:
        if isinstance(row.get("config"), dict) and row.get("config_fingerprint"):
            earlier.setdefault(row["config_fingerprint"], row["config"])
    if not earlier or fingerprint in earlier:
        return
    now = settings.get("calibration_images")
    stale = [config for config in earlier.values() if config.get("calibration_images") not in (None, now)]
    if now is not None and stale:
        # even with --extend: the int8 cells already in the file would count as measured, on the old images
        raise UsageError(f"{path}: its int8 cells were calibrated on other images than --calibration gives now "
                         f"({describe_differences(stale[-1], settings)}); choose a new --out to measure them on these")
    if extend:
        return
    last = list(earlier.values())[-1]
    raise UsageError(f"{path} was measured under another study configuration ({describe_differences(last, settings)}); "
                     f"resume with the same options, or add --extend to add cells measured this way on purpose "
                     f"(fff-report keeps the two configurations apart)")
