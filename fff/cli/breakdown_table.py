"""The text fff-profile --breakdown prints after its main table: time per category in each backend,
which categories the time saved comes from, and the top layers side by side."""

from __future__ import annotations

TOP_LAYERS = 15


def _ms(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _honesty(breakdown: dict) -> str:
    if "error" in breakdown:
        return f"{breakdown['backend']}: no profile ({breakdown['error']})"
    slowdown = "-" if breakdown["slowdown"] is None else f"{breakdown['slowdown']:.2f}x"
    unattributed = breakdown["unattributed"]
    text = (f"{breakdown['backend']}: {breakdown['iterations']} profiled inferences, coverage "
            f"{_pct(breakdown['coverage'])} of {breakdown.get('coverage_against_ms') or breakdown['latency_profiled_ms']:.3f} ms, "
            f"profiling slowdown {slowdown}")
    if breakdown.get("profiled_build"):  # a stack whose own code is not what was profiled says what was
        text += f", profiled: {breakdown['profiled_build']}"
    if unattributed:
        text += (f", {len(unattributed)} node(s) not attributed to a layer "
                 f"({sum(u['ms'] for u in unattributed):.3f} ms)")
    return text


def _int8(backend: str, int8: dict) -> str:
    """Which layers ran int8 kernels and which stayed in floating point (a quantized run)."""
    rest = int8["layers_not_int8"]
    named = ", ".join(rest[:6]) + (f", ... ({len(rest) - 6} more)" if len(rest) > 6 else "")
    return (f"{backend}: int8 kernels in {len(int8['layers_int8'])} layer(s), {int8['ms_int8']:.3f} ms; "
            f"not int8 in {len(rest)} ({int8['ms_not_int8']:.3f} ms)" + (f": {named}" if rest else ""))


def format_breakdown(records: list[dict]) -> str:
    """One section per target whose records carry a breakdown; empty when none do."""
    sections = []
    for target in dict.fromkeys(r["target"] for r in records):
        rows = [r for r in records if r["target"] == target and r.get("breakdown")]
        if not rows:
            continue
        lines = [f"per-layer breakdown: {target} (after the timed rounds; the latencies above are unaffected)"]
        lines += [f"  {_honesty(r['breakdown'])}" for r in rows]
        lines += [f"  {_int8(r['backend'], r['breakdown']['int8'])}" for r in rows if r["breakdown"].get("int8")]
        compared = [r for r in rows if r["breakdown"].get("comparison")]
        if not compared:
            for r in rows:
                lines += _single(r["breakdown"])
        for r in compared:
            lines += _comparison(rows[0]["backend"], r["backend"], r["breakdown"]["comparison"])
        sections.append("\n".join(lines))
    return "\n\n".join(sections)


def _single(breakdown: dict) -> list[str]:
    if "error" in breakdown:
        return []
    total = sum(breakdown["categories"].values())
    lines = ["", f"  {'category':<20} {breakdown['backend'] + ' ms':>12} {'share':>6}"]
    for category, ms in sorted(breakdown["categories"].items(), key=lambda item: -item[1]):
        lines.append(f"  {category:<20} {ms:>12.3f} {_pct(ms / total if total else None):>6}")
    return lines


def _comparison(baseline: str, accelerated: str, comparison: dict) -> list[str]:
    header = (f"  {'category':<20} {baseline + ' ms':>11} {'share':>6} {accelerated + ' ms':>12} {'share':>6} "
              f"{'speed-up':>9} {'saved ms':>9} {'of saved':>9}")
    lines = ["", header, "  " + "-" * (len(header) - 2)]
    for row in sorted(comparison["categories"], key=lambda row: -row["saved_ms"]):
        speedup = "-" if row["speedup"] is None else f"{row['speedup']:.2f}x"
        if row["speedup"] is None and row["baseline_ms"] > 0:
            speedup = "gone"  # no time left in the accelerated runtime: fused or folded away
        lines.append(f"  {row['category']:<20} {row['baseline_ms']:>11.3f} {_pct(row['baseline_share']):>6} "
                     f"{row['accelerated_ms']:>12.3f} {_pct(row['accelerated_share']):>6} {speedup:>9} "
                     f"{row['saved_ms']:>9.3f} {_pct(row['share_of_saved']):>9}")
    base, fast = comparison["baseline_total_ms"], comparison["accelerated_total_ms"]
    lines.append(f"  {'total':<20} {base:>11.3f} {'':>6} {fast:>12.3f} {'':>6} "
                 f"{(f'{base / fast:.2f}x' if fast else '-'):>9} {comparison['saved_ms']:>9.3f}")
    explaining = [row for row in sorted(comparison["categories"], key=lambda row: -row["saved_ms"])
                  if row["share_of_saved"] and row["share_of_saved"] > 0][:3]
    if explaining:
        lines.append("  most of the time saved: " + ", ".join(
            f"{row['category']} ({_pct(row['share_of_saved'])})" for row in explaining))
    lines += ["", "  top layers (by the larger of the two times; FLOPs = 2 x multiply-adds):",
              f"  {'layer':<34} {'category':<19} {'MFLOPs':>8} {baseline + ' ms':>10} {accelerated + ' ms':>12} "
              f"{'speed-up':>9}  kernel / note"]
    for row in comparison["layers"][:TOP_LAYERS]:
        b, a = row["baseline_ms"], row["accelerated_ms"]
        speedup = f"{b / a:.2f}x" if b and a else "-"
        detail = row["note"] or ",".join(row["exec_types"] or [])
        flops = "-" if not row["flops"] else f"{row['flops'] / 1e6:.1f}"
        lines.append(f"  {row['layer'][-34:]:<34} {row['category'][:19]:<19} {flops:>8} {_ms(b):>10} {_ms(a):>12} "
                     f"{speedup:>9}  {detail}")
    return lines
