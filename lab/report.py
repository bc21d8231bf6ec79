"""`lab report`: merge soak results (one or more matrix runs or shards) into
summary.json, junit.xml and one self-contained report.html (inline CSS and SVG,
no network)."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Iterable, Mapping

from . import __version__
from .config import THREADING_LABELS
from .errors import LabError
from .junit import write_junit
from .soak.checks import percentiles, wake_periods
from .verdict import COLOURS as VERDICT_COLOURS, Verdict, worst

COLOURS = {**{str(v): c for v, c in VERDICT_COLOURS.items()}, "missing": "#dddddd"}
REGRESSION_PCT = 25.0


def find_cells(dirs: Iterable[Path]) -> dict[str, Path]:
    """Target name -> result directory, for every summary.json under ``dirs``."""
    cells: dict[str, Path] = {}
    for d in dirs:
        if not d.is_dir():
            raise LabError(f"{d}: not a results directory")
        for s in sorted(d.rglob("summary.json")):
            if s.parent.name == "report":
                continue
            try:
                target = json.loads(s.read_text())["target"]
            except (ValueError, KeyError):
                continue
            if target in cells and cells[target] != s.parent:
                raise LabError(f"target {target} appears twice: {cells[target]} and {s.parent}")
            cells[target] = s.parent
    if not cells:
        raise LabError("no soak results (summary.json) found in " + ", ".join(map(str, dirs)))
    return cells


def load_records(cell_dir: Path) -> list[dict[str, Any]]:
    p = cell_dir / "records.jsonl"
    if not p.is_file():
        return []
    out = []
    for line in p.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def up_smp_triage(summaries: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Lines like 'alpha: fails only on SMP (likely a race)'."""
    lines = []
    for arch in sorted({s["arch"] for s in summaries.values()}):
        cells = [s for s in summaries.values() if s["arch"] == arch]
        up = [s["verdict"] == Verdict.PASS for s in cells if s.get("smp", 1) == 1]
        smp = [s["verdict"] == Verdict.PASS for s in cells if s.get("smp", 1) > 1]
        if up and smp and all(up) and not any(smp):
            lines.append(f"{arch}: fails only on SMP: likely a race or missing locking")
        elif up and smp and all(smp) and not any(up):
            lines.append(f"{arch}: fails only on uniprocessor: look for code that relies on "
                         "another CPU making progress")
    return lines


def compare(current: Mapping[str, Mapping], previous: Mapping[str, Mapping],
            threshold_pct: float = REGRESSION_PCT) -> dict[str, list]:
    new, fixed, slower = [], [], []
    for t, s in current.items():
        p = previous.get(t)
        if not p:
            continue
        if p["verdict"] == Verdict.PASS and s["verdict"] != Verdict.PASS:
            new.append({"target": t, "was": p["verdict"], "now": s["verdict"]})
        elif p["verdict"] != Verdict.PASS and s["verdict"] == Verdict.PASS:
            fixed.append({"target": t, "was": p["verdict"]})
        for k in ("load", "unload"):
            a = (p.get("latency_ms") or {}).get(k, {}).get("p95")
            b = (s.get("latency_ms") or {}).get(k, {}).get("p95")
            if a and b and b > a * (1 + threshold_pct / 100.0):
                slower.append({"target": t, "latency": k, "was_p95_ms": round(a, 2),
                               "now_p95_ms": round(b, 2), "pct": round((b / a - 1) * 100, 1)})
    return {"new_failures": new, "fixed": fixed, "latency_regressions": slower}


def merge(dirs: Iterable[Path], previous: Iterable[Path] = ()) -> dict[str, Any]:
    cells = find_cells(list(dirs))
    summaries = {t: json.loads((d / "summary.json").read_text()) for t, d in sorted(cells.items())}
    prev_list = list(previous)
    prev = {}
    if prev_list:
        prev = {t: json.loads((d / "summary.json").read_text())
                for t, d in find_cells(prev_list).items()}
    verdicts = [s["verdict"] for s in summaries.values()]
    return {
        "lab_version": __version__,
        "verdict": str(worst(verdicts)),
        "cells": summaries,
        "counts": {v: verdicts.count(v) for v in sorted(set(verdicts))},
        "kernels": sorted({s.get("kernel_release", "?") for s in summaries.values()}),
        "module_sha256": sorted({s.get("module_sha256", "?") for s in summaries.values()}),
        "triage": up_smp_triage(summaries),
        "comparison": compare(summaries, prev) if prev else None,
    }


# ---- HTML -------------------------------------------------------------------------------
def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def _e(x: Any) -> str:
    return html.escape(str(x))


def svg_histogram(values: list[float], label: str, width: int = 320, height: int = 110,
                  bins: int = 24, colour: str = "#3a6ea5") -> str:
    if not values:
        return f'<svg class="plot" width="{width}" height="{height}"><text x="8" y="20">{_e(label)}: no data</text></svg>'
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - lo) / span * bins))] += 1
    top = max(counts)
    plot_h, bw = height - 34, (width - 16) / bins
    bars = "".join(
        f'<rect x="{8 + i * bw:.1f}" y="{18 + plot_h - c / top * plot_h:.1f}" width="{bw - 1:.1f}" '
        f'height="{c / top * plot_h:.1f}" fill="{colour}"><title>{c} cycles</title></rect>'
        for i, c in enumerate(counts) if c)
    p = percentiles(values)
    return (f'<svg class="plot" role="img" aria-label="{_e(label)}" width="{width}" height="{height}">'
            f'<text x="8" y="12" class="t">{_e(label)} (p50 {p["p50"]:.1f}, p95 {p["p95"]:.1f}, '
            f'max {p["max"]:.1f} ms)</text>{bars}'
            f'<text x="8" y="{height - 2}" class="a">{lo:.1f}</text>'
            f'<text x="{width - 8}" y="{height - 2}" class="a" text-anchor="end">{hi:.1f} ms</text></svg>')


def svg_period(periods_by_thread: Mapping[int, list[float]], period: float | None,
               width: int = 320, height: int = 110) -> str:
    """Each thread's wake-up periods as dots around the nominal period line."""
    all_p = [p for ps in periods_by_thread.values() for p in ps]
    if not all_p:
        return f'<svg class="plot" width="{width}" height="{height}"><text x="8" y="20">wake period: no dwell cycles</text></svg>'
    nominal = period or sum(all_p) / len(all_p)
    lo, hi = min(all_p + [nominal]), max(all_p + [nominal])
    span = (hi - lo) or 1.0
    plot_h = height - 34
    y = lambda v: 18 + plot_h - (v - lo) / span * plot_h  # noqa: E731
    n = max(1, len(periods_by_thread))
    dots = []
    for i, (tid, ps) in enumerate(sorted(periods_by_thread.items())):
        for j, p in enumerate(ps):
            x = 12 + (width - 24) * (i + (j + 0.5) / max(1, len(ps))) / n
            dots.append(f'<circle cx="{x:.1f}" cy="{y(p):.1f}" r="2.5" fill="#6a4c93">'
                        f'<title>thread {tid}: {p:.1f} ms</title></circle>')
    return (f'<svg class="plot" role="img" aria-label="wake period" width="{width}" height="{height}">'
            f'<text x="8" y="12" class="t">wake-up period per thread (nominal {nominal:g} ms)</text>'
            f'<line x1="8" x2="{width - 8}" y1="{y(nominal):.1f}" y2="{y(nominal):.1f}" '
            f'stroke="#999" stroke-dasharray="4 3"/>{"".join(dots)}'
            f'<text x="8" y="{height - 2}" class="a">{lo:.0f}–{hi:.0f} ms</text></svg>')


CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px}
.meta{color:#555;font-size:12px} table{border-collapse:collapse}
td,th{padding:5px 10px;border:1px solid #ddd;text-align:left;vertical-align:top}
th{background:#f4f4f4} .v{color:#fff;font-weight:600;text-align:center}
.grid td.v{min-width:90px} .plots{display:flex;flex-wrap:wrap;gap:10px}
.card{border:1px solid #ddd;border-radius:6px;padding:10px;margin:8px 0}
.plot text.t{font-size:11px} .plot text.a{font-size:10px;fill:#666}
pre{background:#f7f7f7;padding:8px;overflow-x:auto;font-size:12px}
.triage{background:#fff4e5;border-left:4px solid #e07a1f;padding:6px 10px}
"""


def render_html(merged: Mapping[str, Any], cell_dirs: Mapping[str, Path]) -> str:
    cells = merged["cells"]
    arches = sorted({s["arch"] for s in cells.values()})
    kinds = ["UP", "SMP"]
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>lab hardware matrix</title>"
           f"<style>{CSS}</style></head><body>"]
    out.append(f"<h1>Hardware matrix: <span style='color:{COLOURS.get(merged['verdict'], '#000')}'>"
               f"{_e(merged['verdict'].upper())}</span></h1>")
    keys = sorted({f"{t}: {cpu_label(s)}{threading_label(s)}, kernel {s.get('kernel_key', '?')}, rootfs "
                   f"{s.get('rootfs_key', '?')}"
                   + (f", palcode {s['palcode_key']}" if s.get("palcode_key") else "")
                   for t, s in cells.items()})
    out.append(f"<div class='meta'>lab {_e(merged['lab_version'])} · kernel "
               f"{_e(', '.join(merged['kernels']))} · module sha256 "
               f"{_e(', '.join(m[:16] for m in merged['module_sha256']))}<br>"
               f"targets (CPU model read back from each guest, image keys): "
               f"{_e('; '.join(keys))}</div>")
    # The grid: arch rows x UP/SMP columns, one coloured cell per target.
    out.append("<h2>Matrix</h2><table class='grid' id='grid'><tr><th>arch</th>" +
               "".join(f"<th>{k}</th>" for k in kinds) + "</tr>")
    for arch in arches:
        out.append(f"<tr><th>{_e(arch)}</th>")
        for kind in kinds:
            these = [s for s in cells.values() if s["arch"] == arch and
                     ((s.get("smp", 1) > 1) == (kind == "SMP"))]
            if not these:
                out.append("<td></td>")
                continue
            out.append("<td>" + "".join(
                f"<div class='v' data-target='{_e(s['target'])}' data-verdict='{_e(s['verdict'])}' "
                f"style='background:{COLOURS.get(s['verdict'], '#000')};margin:2px;padding:4px'>"
                f"{_e(s['target'])} ({s.get('smp', 1)} CPU)<br>{_e(s['verdict'])} · "
                f"{s.get('cycles', 0)} cycles</div>" for s in these) + "</td>")
        out.append("</tr>")
    out.append("</table>")
    for line in merged["triage"]:
        out.append(f"<p class='triage'>{_e(line)}</p>")
    cmp_ = merged.get("comparison")
    if cmp_:
        out.append("<h2>Against the previous run</h2><ul>")
        for x in cmp_["new_failures"]:
            out.append(f"<li><b>new failure</b>: {_e(x['target'])} was {_e(x['was'])}, now {_e(x['now'])}</li>")
        for x in cmp_["fixed"]:
            out.append(f"<li><b>fixed</b>: {_e(x['target'])} (was {_e(x['was'])})</li>")
        for x in cmp_["latency_regressions"]:
            out.append(f"<li><b>slower</b>: {_e(x['target'])} {_e(x['latency'])} p95 "
                       f"{x['was_p95_ms']} → {x['now_p95_ms']} ms (+{x['pct']}%)</li>")
        if not any(cmp_.values()):
            out.append("<li>no change in verdicts, no latency regression</li>")
        out.append("</ul>")
    # Per-target table and plots.
    out.append("<h2>Targets</h2><table><tr><th>target</th><th>cpu</th><th>verdict</th>"
               "<th>cycles</th><th>load p50/p95/max ms</th><th>unload p50/p95/max ms</th>"
               "<th>period mean / jitter ms</th><th>cycles/s</th></tr>")
    fmt = lambda d: "/".join("-" if d.get(k) is None else f"{d[k]:.1f}" for k in ("p50", "p95", "max"))  # noqa: E731
    for t, s in cells.items():
        lat = s.get("latency_ms", {})
        per = s.get("period_ms", {})
        out.append(f"<tr><td>{_e(t)}</td><td>{_e(cpu_label(s))} ×{s.get('smp', 1)}</td>"
                   f"<td class='v' style='background:{COLOURS.get(s['verdict'])}'>{_e(s['verdict'])}</td>"
                   f"<td>{s.get('cycles', 0)}</td><td>{fmt(lat.get('load', {}))}</td>"
                   f"<td>{fmt(lat.get('unload', {}))}</td>"
                   f"<td>{_num(per.get('mean'))} / {_num(per.get('jitter'))}</td>"
                   f"<td>{s.get('cycles_per_second') or '-'}</td></tr>")
    out.append("</table>")
    for t, s in cells.items():
        recs = [r for r in load_records(cell_dirs[t]) if r.get("type") == "cycle"]
        periods: dict[int, list[float]] = {}
        for r in recs:
            for tid, ps in wake_periods(r.get("wake_ts", [])).items():
                periods.setdefault(tid, []).extend(ps)
        out.append(f"<div class='card' id='cell-{_e(t)}'><b>{_e(t)}</b><div class='plots'>"
                   + svg_histogram([r["load_us"] / 1000 for r in recs if "load_us" in r], "load latency")
                   + svg_histogram([r["unload_us"] / 1000 for r in recs if "unload_us" in r],
                                   "unload latency", colour="#2e8b8b")
                   + svg_period(periods, s.get("module_period_ms"))
                   + "</div>")
        out.extend(f"<p class='meta'>{_e(line)}</p>" for line in soak_facts(s))
        if s["verdict"] != Verdict.PASS:
            out.append(f"<p><b>{_e(s['verdict'])}</b>: {_e(s.get('reason', ''))}</p>")
            if s.get("evidence"):
                # Crashes carry the first kernel report (head first); hangs end with
                # the console after the task dumps.
                out.append("<pre>" + _e("\n".join(s["evidence"][:120])) + "</pre>")
            for f in s.get("failures", [])[:10]:
                out.append(f"<p>cycle {f['cycle']}: <b>{_e(f['check'])}</b>: {_e(f['message'])}</p>")
                if f.get("evidence"):
                    out.append("<pre>" + _e("\n".join(f["evidence"])) + "</pre>")
        out.append("</div>")
    out.append("</body></html>")
    return "\n".join(out)


def cpu_label(s: Mapping[str, Any]) -> str:
    """The CPU model the guest reported (/proc/cpuinfo), and the -cpu asked for if it differs."""
    seen, asked = s.get("cpu_model") or "", s.get("cpu", "")
    if not seen:
        return f"{asked} (not read back)"
    return seen if seen.lower() == asked.lower() else f"{seen} (-cpu {asked})"


def threading_label(s: Mapping[str, Any]) -> str:
    """How the guest's vCPUs ran on the host, after a comma ("" in older summaries)."""
    how = s.get("threading")
    return f", {THREADING_LABELS.get(how, how)}" if how else ""


def soak_facts(s: Mapping[str, Any]) -> list[str]:
    """One line each: the kernel threads the soak found, memory across the soak, kmemleak."""
    lines = []
    k = s.get("kthreads")
    if k:
        per = ", ".join(f"{n} thread(s) in {c} cycle(s)" for n, c in sorted(k["per_cycle"].items()))
        lines.append(f"kernel threads found: first cycle {', '.join(k['first_cycle']) or 'none'}; "
                     f"{per or 'no cycles'}")
    m = s.get("memory") or {}
    if m.get("samples"):
        avail, slab = m.get("mem_available_kb", {}), m.get("slab_kb", {})
        lines.append(f"memory over {m['samples']} cycles: MemAvailable {avail.get('first')} → "
                     f"{avail.get('last')} kB ({m.get('MemAvailable_kb_per_cycle', '-')} kB/cycle lost), "
                     f"Slab {slab.get('first')} → {slab.get('last')} kB "
                     f"({m.get('Slab_kb_per_cycle', '-')} kB/cycle grown)")
    km = s.get("kmemleak") or {}
    if km.get("available") and "objects" in km:
        lines.append(f"kmemleak: {km['attributed']} object(s) from this module, "
                     f"{km['objects']} in all")
    elif km and not km.get("available"):
        lines.append("kmemleak: not in this kernel (i386: --config-fragment debug)")
    return lines


def write_report(dirs: list[Path], out: Path, previous: list[Path] | None = None) -> dict[str, Any]:
    """Write report.html (at ``out``) with summary.json and junit.xml beside it."""
    merged = merge(dirs, previous or [])
    cell_dirs = find_cells(dirs)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(merged, cell_dirs), encoding="utf-8")
    (out.parent / "summary.json").write_text(json.dumps(merged, indent=2, sort_keys=True))
    write_junit(out.parent / "junit.xml", merged["cells"].values())
    return merged
