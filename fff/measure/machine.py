"""What machine and software a result was measured on, stored with every record.

Read from /proc and /sys without importing torch or openvino (versions come from package
metadata), so collecting it costs milliseconds. A value that cannot be read is None.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
from functools import lru_cache
from importlib import metadata
from pathlib import Path

__all__ = ["machine_info", "versions", "machine_fingerprint", "sysfs_caches"]

# Instruction-set extensions that change which kernels OpenVINO and PyTorch pick.
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni",
             "amx_tile", "amx_bf16", "amx_int8")

CPU_SYSFS = Path("/sys/devices/system/cpu")


def _read(path: Path | str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _cpuinfo() -> dict[str, str]:
    fields: dict[str, str] = {}
    text = _read("/proc/cpuinfo") or ""
    for line in text.splitlines():
        if not line.strip():
            break  # the first processor's block is enough
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def _size_bytes(text: str | None) -> int | None:
    """sysfs cache sizes: "48K", "32768K", "1M"; None where absent or unreadable."""
    match = re.fullmatch(r"(\d+)([KMG]?)", text or "")
    return int(match[1]) * {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[match[2]] if match else None


def sysfs_caches(cpu: int = 0) -> dict[str, dict]:
    """Caches of one CPU from sysfs: {"L1d": {"size_bytes", "ways", "line_bytes", "shared_cpus"}, ...}."""
    caches = {}
    for index in sorted((CPU_SYSFS / f"cpu{cpu}" / "cache").glob("index*")):
        level, kind = _read(index / "level"), _read(index / "type")
        if level is None or kind is None:
            continue
        name = f"L{level}" + {"Data": "d", "Instruction": "i"}.get(kind, "")
        ways = _read(index / "ways_of_associativity")
        line = _read(index / "coherency_line_size")
        caches[name] = {
            "size_bytes": _size_bytes(_read(index / "size")),
            "ways": int(ways) if ways and ways.isdigit() else None,
            "line_bytes": int(line) if line and line.isdigit() else None,
            "shared_cpus": _read(index / "shared_cpu_list"),
        }
    return caches


def versions(extra: tuple[str, ...] = ()) -> dict[str, str | None]:
    """Installed versions of fff, the built-in stacks' packages, numpy and pandas, and of ``extra``
    (a plugin stack's packages, Backend.packages); None where one is not installed."""
    found = {}
    for package in dict.fromkeys(("fff", "torch", "torchvision", "openvino", "numpy", "pandas", *extra)):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    if found["fff"] is None:  # running from a source tree, not installed
        from fff import __version__

        found["fff"] = __version__
    found["python"] = platform.python_version()
    return found


@lru_cache(maxsize=1)
def machine_info() -> dict:
    cpuinfo = _cpuinfo()
    flags = set(cpuinfo.get("flags", "").split())
    paranoid = _read("/proc/sys/kernel/perf_event_paranoid")
    memory_kb = next((line.split()[1] for line in (_read("/proc/meminfo") or "").splitlines()
                      if line.startswith("MemTotal:")), None)
    return {
        "hostname": platform.node(),
        "cpu_model": cpuinfo.get("model name") or platform.processor() or None,
        "architecture": platform.machine(),
        "logical_cpus": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)),
        "caches": sysfs_caches(),
        "isa": {flag: flag in flags for flag in ISA_FLAGS},
        "constant_tsc": {"constant_tsc", "nonstop_tsc"} <= flags,
        "governor": _read(CPU_SYSFS / "cpu0" / "cpufreq" / "scaling_governor"),
        "kernel": platform.release(),
        "perf_event_paranoid": int(paranoid) if paranoid and paranoid.lstrip("-").isdigit() else None,
        "memory_bytes": int(memory_kb) * 1024 if memory_kb else None,
        "virtualized": "hypervisor" in flags,
    }


def machine_fingerprint(info: dict | None = None) -> str:
    """Short hash of what makes two machines' timings comparable (CPU, cores, caches, kernel);
    results with different fingerprints are compared, never pooled."""
    info = info or machine_info()
    stable = {k: info[k] for k in ("cpu_model", "architecture", "logical_cpus", "cpus_available", "caches", "isa", "kernel")}
    return hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()[:16]
