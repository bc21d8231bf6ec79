"""Judging soak records: per-cycle checks, wake-up periods, and the summary.

Pure functions over the agent's JSON records, so they are tested without a guest.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping

from .thresholds import Thresholds

PASS, FAIL, CRASH, HANG, INFRA = "pass", "fail", "crash", "hang", "infra"
VERDICT_EXIT = {PASS: 0, FAIL: 1, CRASH: 1, HANG: 1, INFRA: 2}


@dataclass(frozen=True)
class Failure:
    cycle: int
    check: str
    message: str
    evidence: tuple[str, ...] = ()

    def as_json(self) -> dict:
        return {**asdict(self), "evidence": list(self.evidence)}


def wake_periods(wake_ts: Iterable[Iterable[int]]) -> dict[int, list[float]]:
    """Per thread id, the intervals (ms) between its consecutive wake-up lines."""
    by_id: dict[int, list[int]] = {}
    for tid, ts in wake_ts:
        by_id.setdefault(int(tid), []).append(int(ts))
    out = {}
    for tid, stamps in by_id.items():
        stamps.sort()
        out[tid] = [(b - a) / 1000.0 for a, b in zip(stamps, stamps[1:])]
    return out


def check_cycle(rec: Mapping[str, Any], t: Thresholds, expected_threads: int,
                period_ms: float | None) -> list[Failure]:
    """Everything wrong with one cycle record."""
    n = int(rec.get("n", 0))
    out: list[Failure] = []
    trouble = tuple(rec.get("trouble", ()))
    if rec.get("err"):
        out.append(Failure(n, "syscall", rec["err"], trouble))
    if expected_threads and rec.get("threads_seen", expected_threads) < expected_threads:
        out.append(Failure(n, "threads-missing", f"{rec.get('threads_seen')} of "
                           f"{expected_threads} threads appeared"))
    if rec.get("threads_after", 0) > 0:
        out.append(Failure(n, "threads-left", f"{rec['threads_after']} thread(s) of the module "
                           "still exist after unload", trouble))
    if rec.get("module_listed"):
        out.append(Failure(n, "module-listed", "the module is still listed after unload"))
    if rec.get("zombies", 0) > 0:
        out.append(Failure(n, "zombies", f"{rec['zombies']} new zombie process(es) against the "
                           "pre-soak baseline"))
    if expected_threads and "starts" in rec and rec["starts"] != expected_threads:
        out.append(Failure(n, "start-messages", f"{rec['starts']} start messages, expected "
                           f"{expected_threads}"))
    if trouble:
        out.append(Failure(n, "kernel-log", f"{len(trouble)} kernel log line(s) of trouble",
                           trouble))
    for key, limit, check in (("load_us", t.max_load_ms, "timing-load"),
                              ("threads_us", t.max_threads_ms, "timing-threads"),
                              ("unload_us", t.max_unload_ms, "timing-unload")):
        ms = rec.get(key, 0) / 1000.0
        if ms > limit:
            out.append(Failure(n, check, f"{key[:-3]} took {ms:.1f} ms, limit {limit:g} ms"))
    if period_ms and rec.get("wake_ts"):
        periods = [p for ps in wake_periods(rec["wake_ts"]).values() for p in ps]
        if periods:
            mean = statistics.fmean(periods)
            if abs(mean - period_ms) > period_ms * t.period_tolerance_pct / 100.0:
                out.append(Failure(n, "period", f"mean wake-up period {mean:.1f} ms, module "
                                   f"period {period_ms:g} ms ±{t.period_tolerance_pct:g}%"))
            if len(periods) > 1 and statistics.pstdev(periods) > t.max_jitter_ms:
                out.append(Failure(n, "jitter", f"wake-up period jitter "
                                   f"{statistics.pstdev(periods):.1f} ms > {t.max_jitter_ms:g} ms"))
    return out


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    s = sorted(values)

    def pct(p: float) -> float:
        k = max(0, min(len(s) - 1, math.ceil(p / 100.0 * len(s)) - 1))
        return s[k]
    return {"p50": pct(50), "p95": pct(95), "p99": pct(99), "max": s[-1],
            "mean": statistics.fmean(s)}


def summarize(records: list[Mapping[str, Any]], failures: list[Failure], verdict: str,
              t: Thresholds, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    cycles = [r for r in records if r.get("type") == "cycle"]
    baseline = next((r for r in records if r.get("type") == "baseline"), {})
    periods = [p for r in cycles if r.get("wake_ts")
               for ps in wake_periods(r["wake_ts"]).values() for p in ps]
    procs = [r["procs"] for r in cycles if "procs" in r]
    checks: dict[str, int] = {}
    for f in failures:
        checks[f.check] = checks.get(f.check, 0) + 1
    return {
        "verdict": verdict,
        "cycles": len(cycles),
        "failed_cycles": len({f.cycle for f in failures if f.cycle}),
        "latency_ms": {k: percentiles([r[f"{k}_us"] / 1000.0 for r in cycles if f"{k}_us" in r])
                       for k in ("load", "threads", "unload")},
        "period_ms": {**percentiles(periods),
                      "jitter": statistics.pstdev(periods) if len(periods) > 1 else None,
                      "samples": len(periods)},
        "processes": {"baseline": baseline.get("procs"), "first": procs[0] if procs else None,
                      "last": procs[-1] if procs else None, "max": max(procs) if procs else None},
        "zombies_max": max((r.get("zombies", 0) for r in cycles), default=0),
        "checks_failed": checks,
        "failures": [f.as_json() for f in failures[:50]],
        "thresholds": asdict(t),
        **(extra or {}),
    }
