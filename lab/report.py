"""`lab report`: merge soak results (one or more matrix runs or shards) into
summary.json, junit.xml and one self-contained report.html (inline CSS and SVG,
no network)."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from . import __version__
from .config import THREADING_LABELS
from .errors import LabError
from .junit import write_junit
from .results import CycleStats, MemSeries, Percentiles, SoakSummary, read_summary, write_json
from .results.files import JUNIT, RECORDS, REPORT_DIR, SUMMARY
from .results.store import read_cell
from .results.stats import wake_periods
from .verdict import COLOURS as VERDICT_COLOURS, Verdict, worst

COLOURS = {**{str(v): c for v, c in VERDICT_COLOURS.items()}, "missing": "#dddddd"}
REGRESSION_PCT = 25.0


def find_cells(dirs: Iterable[Path]) -> dict[str, Path]:
    """Target name -> result directory, for every summary.json under ``dirs``."""
    cells: dict[str, Path] = {}
    for d in dirs:
        if not d.is_dir():
            raise LabError(f"{d}: not a results directory")
        for s in sorted(d.rglob(SUMMARY)):
            if s.parent.name == REPORT_DIR:
                continue
            summary = read_cell(s)
            if summary is None:  # a merged report's summary.json
                continue
            target = summary.target
            if target in cells and cells[target] != s.parent:
                raise LabError(f"target {target} appears twice: {cells[target]} and {s.parent}")
            cells[target] = s.parent
    if not cells:
        raise LabError("no soak results (summary.json) found in " + ", ".join(map(str, dirs)))
    return cells


def load_records(cell_dir: Path) -> list[dict[str, Any]]:
    p = cell_dir / RECORDS
    if not p.is_file():
        return []
    out = []
    for line in p.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def up_smp_triage(summaries: Mapping[str, SoakSummary]) -> list[str]:
    """Lines like 'alpha: fails only on SMP (likely a race)'."""
    lines = []
    for arch in sorted({s.arch for s in summaries.values()}):
        cells = [s for s in summaries.values() if s.arch == arch]
        up = [s.verdict == Verdict.PASS for s in cells if s.smp == 1]
        smp = [s.verdict == Verdict.PASS for s in cells if s.smp > 1]
        if up and smp and all(up) and not any(smp):
            lines.append(f"{arch}: fails only on SMP: likely a race or missing locking")
        elif up and smp and all(smp) and not any(up):
            lines.append(f"{arch}: fails only on uniprocessor: look for code that relies on "
                         "another CPU making progress")
    return lines


def _p95(s: SoakSummary, latency: str) -> float | None:
    return getattr(s.stats.latency, latency).p95 if s.stats else None


def compare(current: Mapping[str, SoakSummary], previous: Mapping[str, SoakSummary],
            threshold_pct: float = REGRESSION_PCT) -> dict[str, list]:
    new, fixed, slower = [], [], []
    for t, s in current.items():
        p = previous.get(t)
        if not p:
            continue
        if p.verdict == Verdict.PASS and s.verdict != Verdict.PASS:
            new.append({"target": t, "was": str(p.verdict), "now": str(s.verdict)})
        elif p.verdict != Verdict.PASS and s.verdict == Verdict.PASS:
            fixed.append({"target": t, "was": str(p.verdict)})
        for k in ("load", "unload"):
            a, b = _p95(p, k), _p95(s, k)
            if a and b and b > a * (1 + threshold_pct / 100.0):
                slower.append({"target": t, "latency": k, "was_p95_ms": round(a, 2),
                               "now_p95_ms": round(b, 2), "pct": round((b / a - 1) * 100, 1)})
    return {"new_failures": new, "fixed": fixed, "latency_regressions": slower}


@dataclass(frozen=True)
class Merged:
    """Soak results merged across result directories (matrix runs, shards, soaks)."""
    lab_version: str
    verdict: Verdict                       # the most serious among the cells
    cells: Mapping[str, SoakSummary]       # by target, sorted
    counts: Mapping[str, int]              # cells per verdict
    kernels: tuple[str, ...]               # kernel releases the cells ran
    module_sha256: tuple[str, ...]
    triage: tuple[str, ...]
    comparison: Mapping[str, list] | None  # against --previous, if given

    def to_json(self) -> dict[str, Any]:
        """The merged summary.json (`lab report`, `lab matrix`)."""
        return {"lab_version": self.lab_version, "verdict": str(self.verdict),
                "cells": {t: s.to_json() for t, s in self.cells.items()},
                "counts": dict(self.counts), "kernels": list(self.kernels),
                "module_sha256": list(self.module_sha256), "triage": list(self.triage),
                "comparison": self.comparison}


def _summaries(dirs: list[Path]) -> dict[str, SoakSummary]:
    return {t: read_summary(d / SUMMARY) for t, d in sorted(find_cells(dirs).items())}


def merge(dirs: Iterable[Path], previous: Iterable[Path] = ()) -> Merged:
    summaries = _summaries(list(dirs))
    prev_list = list(previous)
    prev = _summaries(prev_list) if prev_list else {}
    verdicts = [str(s.verdict) for s in summaries.values()]
    return Merged(
        lab_version=__version__,
        verdict=worst(verdicts),
        cells=summaries,
        counts={v: verdicts.count(v) for v in sorted(set(verdicts))},
        kernels=tuple(sorted({s.guest.kernel_release if s.guest else "?"
                              for s in summaries.values()})),
        module_sha256=tuple(sorted({s.module.sha256 if s.module else "?"
                                    for s in summaries.values()})),
        triage=tuple(up_smp_triage(summaries)),
        comparison=compare(summaries, prev) if prev else None,
    )


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
    p = Percentiles.of(values)
    return (f'<svg class="plot" role="img" aria-label="{_e(label)}" width="{width}" height="{height}">'
            f'<text x="8" y="12" class="t">{_e(label)} (p50 {p.p50:.1f}, p95 {p.p95:.1f}, '
            f'max {p.max:.1f} ms)</text>{bars}'
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


def render_html(merged: Merged, cell_dirs: Mapping[str, Path]) -> str:
    cells = merged.cells
    arches = sorted({s.arch for s in cells.values()})
    kinds = ["UP", "SMP"]
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>lab hardware matrix</title>"
           f"<style>{CSS}</style></head><body>"]
    out.append(f"<h1>Hardware matrix: <span style='color:{COLOURS.get(merged.verdict, '#000')}'>"
               f"{_e(merged.verdict.upper())}</span></h1>")
    keys = sorted({f"{t}: {cpu_label(s)}{threading_label(s)}, kernel "
                   f"{s.guest.kernel_key if s.guest else '?'}, rootfs "
                   f"{s.guest.rootfs_key if s.guest else '?'}"
                   + (f", palcode {s.guest.palcode_key}" if s.guest and s.guest.palcode_key
                      else "")
                   for t, s in cells.items()})
    out.append(f"<div class='meta'>lab {_e(merged.lab_version)} · kernel "
               f"{_e(', '.join(merged.kernels))} · module sha256 "
               f"{_e(', '.join(m[:16] for m in merged.module_sha256))}<br>"
               f"targets (CPU model read back from each guest, image keys): "
               f"{_e('; '.join(keys))}</div>")
    # The grid: arch rows x UP/SMP columns, one coloured cell per target.
    out.append("<h2>Matrix</h2><table class='grid' id='grid'><tr><th>arch</th>" +
               "".join(f"<th>{k}</th>" for k in kinds) + "</tr>")
    for arch in arches:
        out.append(f"<tr><th>{_e(arch)}</th>")
        for kind in kinds:
            these = [s for s in cells.values() if s.arch == arch and
                     ((s.smp > 1) == (kind == "SMP"))]
            if not these:
                out.append("<td></td>")
                continue
            out.append("<td>" + "".join(
                f"<div class='v' data-target='{_e(s.target)}' data-verdict='{_e(s.verdict)}' "
                f"style='background:{COLOURS.get(s.verdict, '#000')};margin:2px;padding:4px'>"
                f"{_e(s.target)} ({s.smp} CPU)<br>{_e(s.verdict)} · "
                f"{s.cycles} cycles</div>" for s in these) + "</td>")
        out.append("</tr>")
    out.append("</table>")
    for line in merged.triage:
        out.append(f"<p class='triage'>{_e(line)}</p>")
    cmp_ = merged.comparison
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
    fmt = lambda p: "/".join(_num(x) for x in (p.p50, p.p95, p.max))  # noqa: E731
    for t, s in cells.items():
        stats = s.stats or CycleStats()
        lat, per = stats.latency, stats.period
        out.append(f"<tr><td>{_e(t)}</td><td>{_e(cpu_label(s))} ×{s.smp}</td>"
                   f"<td class='v' style='background:{COLOURS.get(s.verdict)}'>{_e(s.verdict)}</td>"
                   f"<td>{s.cycles}</td><td>{fmt(lat.load)}</td>"
                   f"<td>{fmt(lat.unload)}</td>"
                   f"<td>{_num(per.mean)} / {_num(per.jitter)}</td>"
                   f"<td>{s.cycles_per_second or '-'}</td></tr>")
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
                   + svg_period(periods, s.module.period_ms if s.module else None)
                   + "</div>")
        out.extend(f"<p class='meta'>{_e(line)}</p>" for line in soak_facts(s))
        if s.verdict != Verdict.PASS:
            out.append(f"<p><b>{_e(s.verdict)}</b>: {_e(s.reason)}</p>")
            if s.evidence:
                # Crashes carry the first kernel report (head first); hangs end with
                # the console after the task dumps.
                out.append("<pre>" + _e("\n".join(s.evidence[:120])) + "</pre>")
            for f in s.failures[:10]:
                out.append(f"<p>cycle {f.cycle}: <b>{_e(f.check)}</b>: {_e(f.message)}</p>")
                if f.evidence:
                    out.append("<pre>" + _e("\n".join(f.evidence)) + "</pre>")
        out.append("</div>")
    out.append("</body></html>")
    return "\n".join(out)


def cpu_label(s: SoakSummary) -> str:
    """The CPU model the guest reported (/proc/cpuinfo), and the -cpu asked for if it differs."""
    seen, asked = s.cpu_model, s.cpu
    if not seen:
        return f"{asked} (not read back)"
    return seen if seen.lower() == asked.lower() else f"{seen} (-cpu {asked})"


def threading_label(s: SoakSummary) -> str:
    """How the guest's vCPUs ran on the host, after a comma ("" in older summaries)."""
    how = s.threading
    return f", {THREADING_LABELS.get(how, how)}" if how else ""


def _mem(label: str, series: MemSeries | None, trend: str) -> str:
    s = series or MemSeries()
    per = "-" if s.kb_per_cycle is None else s.kb_per_cycle
    return f"{label} {s.first} → {s.last} kB ({per} kB/cycle {trend})"


def soak_facts(s: SoakSummary) -> list[str]:
    """One line each: the kernel threads the soak found, memory across the soak, kmemleak."""
    lines = []
    if s.stats:
        k = s.stats.kthreads
        per = ", ".join(f"{n} thread(s) in {c} cycle(s)" for n, c in sorted(k.per_cycle.items()))
        lines.append(f"kernel threads found: first cycle {', '.join(k.first_cycle) or 'none'}; "
                     f"{per or 'no cycles'}")
    m = s.memory
    if m and m.samples:
        lines.append(f"memory over {m.samples} cycles: "
                     f"{_mem('MemAvailable', m.mem_available, 'lost')}, "
                     f"{_mem('Slab', m.slab, 'grown')}")
    km = s.kmemleak
    if km and km.available and km.objects is not None:
        lines.append(f"kmemleak: {km.attributed} object(s) from this module, "
                     f"{km.objects} in all")
    elif km and not km.available:
        lines.append("kmemleak: not in this kernel (i386: --config-fragment debug)")
    return lines


def write_report(dirs: list[Path], out: Path, previous: list[Path] | None = None) -> Merged:
    """Write report.html (at ``out``) with summary.json and junit.xml beside it."""
    merged = merge(dirs, previous or [])
    cell_dirs = find_cells(dirs)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(merged, cell_dirs), encoding="utf-8")
    write_json(out.parent / SUMMARY, merged.to_json())
    write_junit(out.parent / JUNIT, merged.cells.values())
    return merged
