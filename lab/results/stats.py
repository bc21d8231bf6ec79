"""Statistics over the agent's cycle records: wake-up periods, the kernel threads
found, percentiles. Pure functions, shared by the judge and the summary."""

from __future__ import annotations

import math
import statistics
from typing import Any, Iterable, Mapping


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


def thread_census(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The first cycle's threads in full, then how many cycles saw how many."""
    cycles = [r for r in records if r.get("type") == "cycle" and "threads" in r]
    counts: dict[str, int] = {}
    for r in cycles:
        k = str(len(r["threads"]))
        counts[k] = counts.get(k, 0) + 1
    first = cycles[0]["threads"] if cycles else []
    return {"first_cycle": sorted(x["comm"] for x in first), "per_cycle": counts,
            "pool_workers_max": max((r.get("pool_workers", 0) for r in cycles), default=0)}


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    s = sorted(values)

    def pct(p: float) -> float:
        k = max(0, min(len(s) - 1, math.ceil(p / 100.0 * len(s)) - 1))
        return s[k]
    return {"p50": pct(50), "p95": pct(95), "p99": pct(99), "max": s[-1],
            "mean": statistics.fmean(s)}
