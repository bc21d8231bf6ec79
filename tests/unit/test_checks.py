"""Judging soak records: every check must catch its own defect and pass a clean cycle."""

import pytest

from lab.checks import FAIL, check_cycle, percentiles, summarize, wake_periods
from lab.thresholds import Thresholds

T = Thresholds(max_load_ms=100, max_threads_ms=200, max_unload_ms=100, period_tolerance_pct=10,
               max_jitter_ms=50)
CLEAN = {"type": "cycle", "n": 7, "load_us": 5000, "threads_us": 6000, "unload_us": 4000,
         "threads_seen": 5, "threads_after": 0, "module_listed": 0, "zombies": 0, "procs": 40,
         "starts": 5, "wakes": 0, "trouble": [], "ok": True}


def checks(**changes):
    return [f.check for f in check_cycle({**CLEAN, **changes}, T, 5, 1000.0)]


def test_clean_cycle_passes():
    assert checks() == []


@pytest.mark.parametrize("changes, check", [
    ({"threads_after": 1}, "threads-left"),
    ({"module_listed": 1}, "module-listed"),
    ({"zombies": 2}, "zombies"),
    ({"starts": 4}, "start-messages"),
    ({"threads_seen": 3}, "threads-missing"),
    ({"trouble": ["WARNING: CPU: 1 PID: 7 at kernel/kthread.c:659"]}, "kernel-log"),
    ({"load_us": 150000}, "timing-load"),
    ({"threads_us": 250000}, "timing-threads"),
    ({"unload_us": 100001}, "timing-unload"),
    ({"err": "delete_module: Resource temporarily unavailable"}, "syscall"),
])
def test_each_defect_is_caught(changes, check):
    assert check in checks(**changes)


def test_zombies_below_baseline_are_fine():
    assert checks(zombies=-1) == []


def test_wake_periods_per_thread():
    ts = [[0, 1_000_000], [1, 1_010_000], [0, 2_000_000], [1, 2_030_000], [0, 3_000_000]]
    assert wake_periods(ts) == {0: [1000.0, 1000.0], 1: [1020.0]}


def test_period_and_jitter_checks():
    good = [[0, 0], [0, 1_000_000], [0, 2_005_000], [1, 0], [1, 995_000]]
    assert checks(wake_ts=good) == []
    slow = [[0, 0], [0, 1_300_000], [0, 2_600_000]]
    assert "period" in checks(wake_ts=slow)
    jittery = [[0, 0], [0, 800_000], [0, 2_000_000], [0, 2_800_000], [0, 4_000_000]]
    assert "jitter" in checks(wake_ts=jittery)


def test_percentiles():
    p = percentiles([float(x) for x in range(1, 101)])
    assert (p["p50"], p["p95"], p["p99"], p["max"]) == (50.0, 95.0, 99.0, 100.0)
    assert percentiles([])["p50"] is None


def test_summary_counts():
    recs = [{"type": "baseline", "procs": 38, "zombies": 0},
            {**CLEAN, "n": 1}, {**CLEAN, "n": 2, "zombies": 1, "procs": 41}]
    fails = [f for r in recs[1:] for f in check_cycle(r, T, 5, None)]
    s = summarize(recs, fails, FAIL, T)
    assert s["cycles"] == 2 and s["failed_cycles"] == 1
    assert s["checks_failed"] == {"zombies": 1}
    assert s["processes"] == {"baseline": 38, "first": 40, "last": 41, "max": 41}
    assert s["latency_ms"]["load"]["max"] == 5.0
    assert s["thresholds"]["max_load_ms"] == 100
