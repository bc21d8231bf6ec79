"""Judging soak records: per-cycle checks, a blocked unload, the memory trend and
kmemleak's report. What a failure is and the statistics over records live with
the results (lab.results.failure, lab.results.stats), which this judge writes.

Pure functions over the agent's JSON records, so they are tested without a guest.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from ..guest.console import classify
from ..results.failure import CHECKS, Failure
from ..results.stats import percentiles, thread_census, wake_periods
from .thresholds import Thresholds

__all__ = ["CHECKS", "Failure", "check_cycle", "check_blocked", "memory_trend", "parse_kmemleak",
           "judge_kmemleak", "percentiles", "thread_census", "wake_periods"]


def _names(threads: Sequence[Mapping[str, Any]]) -> str:
    return ", ".join(f"{t['comm']} (pid {t['pid']})" for t in threads)


def _unload_refused(rec: Mapping[str, Any]) -> bool:
    """delete_module() refused because something holds a reference to the module."""
    return rec.get("refcnt", 0) > 0 and "delete_module" in rec.get("err", "")


@dataclass(frozen=True)
class CycleContext:
    """What one cycle record is judged against."""

    t: Thresholds
    expected_threads: int = 0        # named in lab.yaml; 0: none named
    period_ms: float | None = None   # the module's wake-up period, from lab.yaml


def kernel_trouble(rec: Mapping[str, Any]) -> tuple[str, ...]:
    """The cycle's kernel log lines that report trouble, by the one list of patterns
    the boot and the console watch use too (lab.guest.console.TROUBLE), over every
    line of warning level or worse that the agent sent."""
    return tuple(line for line in rec.get("klog", ()) if classify(line))


def _init_failed(rec: Mapping[str, Any]) -> bool:
    return rec.get("err", "").startswith("init_module")


def _leftover_names(rec: Mapping[str, Any]) -> list[str]:
    """What a cycle left behind, thread by thread and registration by registration."""
    threads = [f"thread {x['comm']} (pid {x['pid']}) running" for x in rec.get("threads", ())
               if x.get("left")]
    more = rec.get("registered_more", 0)
    return threads + list(rec.get("registered", ())) + ([f"{more} more"] if more else [])


def _syscalls(n: int, rec: Mapping[str, Any], c: CycleContext) -> Iterable[Failure]:
    left = _leftover_names(rec) if _init_failed(rec) else []
    if _unload_refused(rec):
        yield Failure(n, "refcount", f"module refcount {rec['refcnt']} after the hold: "
                      f"something still holds the module ({rec['err']})")
    elif left:
        # init returned an error, so no exit will ever clean up what it had started
        yield Failure(n, "syscall", f"{rec['err']}, and the failed load left "
                      f"{', '.join(left)}", tuple(rec.get("klog", ())))
    elif rec.get("err"):
        yield Failure(n, "syscall", rec["err"], tuple(rec.get("klog", ())))


def _threads(n: int, rec: Mapping[str, Any], c: CycleContext) -> Iterable[Failure]:
    threads = rec.get("threads", [])
    if c.expected_threads and rec.get("named", c.expected_threads) < c.expected_threads:
        yield Failure(n, "threads-missing", f"{rec.get('named')} of {c.expected_threads} "
                      "threads named in lab.yaml appeared")
    idle = [x for x in threads if not x.get("ran")]
    if idle and not _init_failed(rec):     # a failed load is never held
        yield Failure(n, "threads-not-run", f"{len(idle)} thread(s) never ran within "
                      f"{c.t.hold_limit_ms:g} ms, so their stop path was not exercised: "
                      f"{_names(idle)}")
    left = [x for x in threads if x.get("left")]
    if left or rec.get("named_after", 0) > 0:
        what = _names(left) if left else f"{rec['named_after']} named in lab.yaml"
        yield Failure(n, "threads-left", f"{len(left) or rec['named_after']} thread(s) "
                      f"of the module still exist after unload: {what}", kernel_trouble(rec))


def _leftovers(n: int, rec: Mapping[str, Any], c: CycleContext) -> Iterable[Failure]:
    if rec.get("module_listed") and not _unload_refused(rec):
        yield Failure(n, "module-listed", "the module is still listed after unload")
    regs = list(rec.get("registered", ()))
    if regs:
        more = rec.get("registered_more", 0)
        after = "the failed load" if _init_failed(rec) else "unload"
        yield Failure(n, "registrations", f"{len(regs) + more} registration(s) of the load "
                      f"still there after {after}: {', '.join(regs[:4])}"
                      + (" ..." if len(regs) + more > 4 else ""), tuple(regs))
    if rec.get("zombies", 0) > 0:
        yield Failure(n, "zombies", f"{rec['zombies']} zombie process(es) new since the "
                      "soak began and unreaped for 2 s")


def _kernel_log(n: int, rec: Mapping[str, Any], c: CycleContext) -> Iterable[Failure]:
    if c.expected_threads and "starts" in rec and rec["starts"] != c.expected_threads:
        yield Failure(n, "start-messages", f"{rec['starts']} start messages, expected "
                      f"{c.expected_threads}")
    trouble = kernel_trouble(rec)
    if trouble:
        yield Failure(n, "kernel-log", f"{len(trouble)} kernel log line(s) of trouble", trouble)


def _timing(n: int, rec: Mapping[str, Any], c: CycleContext) -> Iterable[Failure]:
    for key, limit, check in (("load_us", c.t.max_load_ms, "timing-load"),
                              ("threads_us", c.t.max_threads_ms, "timing-threads"),
                              ("unload_us", c.t.max_unload_ms, "timing-unload")):
        ms = rec.get(key, 0) / 1000.0
        if ms > limit:
            yield Failure(n, check, f"{key[:-3]} took {ms:.1f} ms, limit {limit:g} ms")


def _wake_ups(n: int, rec: Mapping[str, Any], c: CycleContext) -> Iterable[Failure]:
    if not c.period_ms or not rec.get("wake_ts"):
        return
    periods = [p for ps in wake_periods(rec["wake_ts"]).values() for p in ps]
    if not periods:
        return
    mean = statistics.fmean(periods)
    if abs(mean - c.period_ms) > c.period_ms * c.t.period_tolerance_pct / 100.0:
        yield Failure(n, "period", f"mean wake-up period {mean:.1f} ms, module "
                      f"period {c.period_ms:g} ms ±{c.t.period_tolerance_pct:g}%")
    if len(periods) > 1 and statistics.pstdev(periods) > c.t.max_jitter_ms:
        yield Failure(n, "jitter", f"wake-up period jitter "
                      f"{statistics.pstdev(periods):.1f} ms > {c.t.max_jitter_ms:g} ms")


# The per-cycle checks, in the order their failures are listed.
CYCLE_CHECKS = (_syscalls, _threads, _leftovers, _kernel_log, _timing, _wake_ups)


def check_cycle(rec: Mapping[str, Any], t: Thresholds, expected_threads: int = 0,
                period_ms: float | None = None) -> list[Failure]:
    """Everything wrong with one cycle record: the one judge of a cycle.

    ``expected_threads`` comes from a lab.yaml that names the module's threads;
    without one the discovered threads are judged on their own.
    """
    n = int(rec.get("n", 0))
    context = CycleContext(t, expected_threads, period_ms)
    return [f for check in CYCLE_CHECKS for f in check(n, rec, context)]


# A module parameter the kernel did not take: "NAME: unknown parameter 'X' ignored"
# (kernel/params.c), printed at every load while init_module succeeds.
IGNORED_PARAM = re.compile(r"^(\S+): unknown parameter '(.*)' ignored")


def ignored_params(rec: Mapping[str, Any], module: str) -> list[str]:
    """The parameters of this load that the kernel ignored."""
    return [m.group(2) for line in rec.get("klog", ())
            if (m := IGNORED_PARAM.match(line)) and m.group(1) == module]


def check_blocked(rec: Mapping[str, Any]) -> Failure:
    """An unload still inside delete_module() past its limit: the agent's interim report."""
    n = int(rec.get("n", 0))
    ms = rec.get("after_us", 0) / 1000.0
    evidence = [f"/proc/modules: {rec.get('module') or '(not listed)'}"]
    if rec.get("wchan"):
        evidence.append(f"waiting in: {rec['wchan']}")
    evidence.append(f"kernel stack of the unloading task ({rec.get('stack_from', '?')}):")
    evidence += rec.get("stack", [])
    return Failure(n, "timing-unload", f"unload still blocked in delete_module() after "
                   f"{ms:.0f} ms (limit {rec.get('limit_ms', '?')} ms)", tuple(evidence))


# ---- soak-wide checks ------------------------------------------------------------------

# Slab caches on a 4-CPU Alpha guest grow for about 50 cycles before they level off
# (measured with the shipped module: 6416 kB at cycle 1, 6752 kB from cycle 49 on);
# a 20-cycle soak of a module that leaks nothing showed 22 KiB/cycle in its second
# half. So the trend is judged from 60 cycles on.
MIN_TREND_CYCLES = 60


def _slope(points: list[tuple[int, float]]) -> float:
    """Theil-Sen slope: the median of the slopes between every pair of points
    (at most 300 points, evenly picked), so a few outliers do not move it."""
    if len(points) > 300:
        step = len(points) / 300
        points = [points[int(i * step)] for i in range(300)]
    slopes = [(y2 - y1) / (x2 - x1) for i, (x1, y1) in enumerate(points)
              for x2, y2 in points[i + 1:] if x2 != x1]
    return statistics.median(slopes) if slopes else 0.0


def memory_trend(records: Iterable[Mapping[str, Any]], t: Thresholds
                 ) -> tuple[dict[str, Any], Failure | None]:
    """Memory lost across the soak, judged as a trend, not per cycle.

    MemAvailable and Slab are sampled after each unload. The first half of the
    soak is warm-up (slab caches and the workqueue pools grow to their working
    set, then stay). Over the second half, a leak is a robust slope (Theil-Sen)
    above ``leak_kb_per_cycle`` together with a loss, median of its last
    quarter against its first, above a floor: ``leak_min_kb`` for Slab, and
    for MemAvailable also ``mem_noise_kb``, because free pages parked in the
    per-CPU lists swing it by megabytes (measured on alpha-es40: 1.7 MB up and
    down over 25 cycles of a module that leaks nothing).
    """
    cycles = [r for r in records if r.get("type") == "cycle"]
    avail = [(r["n"], float(r["mem_avail_kb"])) for r in cycles if r.get("mem_avail_kb", -1) >= 0]
    slab = [(r["n"], float(r["slab_kb"])) for r in cycles if r.get("slab_kb", -1) >= 0]
    info: dict[str, Any] = {"samples": len(avail)}
    if avail:
        info.update(mem_available_kb={"first": avail[0][1], "last": avail[-1][1]})
    if slab:
        info.update(slab_kb={"first": slab[0][1], "last": slab[-1][1]})
    if len(avail) < MIN_TREND_CYCLES:
        if avail:
            info["note"] = f"too few cycles to judge a trend ({MIN_TREND_CYCLES} or more are needed)"
        return info, None
    worst = None
    for label, points, sign, floor in (
            ("MemAvailable", avail, -1, max(t.leak_min_kb, t.mem_noise_kb)),
            ("Slab", slab, 1, t.leak_min_kb)):
        half = points[len(points) // 2:]
        if len(half) < 8:
            continue
        per_cycle = sign * _slope(half)
        q = len(half) // 4
        lost = sign * (statistics.median(v for _, v in half[-q:]) -
                       statistics.median(v for _, v in half[:q]))
        info[f"{label}_kb_per_cycle"] = round(per_cycle, 2)
        info[f"{label}_kb_lost_second_half"] = round(lost)
        if per_cycle > t.leak_kb_per_cycle and lost > floor:
            msg = (f"{label} {'fell' if sign < 0 else 'grew'} by {per_cycle:.1f} KiB per cycle "
                   f"over cycles {half[0][0]}-{half[-1][0]} ({lost:.0f} KiB in all); limits "
                   f"{t.leak_kb_per_cycle:g} KiB/cycle and {floor:g} KiB")
            worst = worst or Failure(points[-1][0], "mem-growth", msg,
                                     (f"{label}: {points[0][1]:.0f} kB after cycle {points[0][0]}, "
                                      f"{half[0][1]:.0f} kB after cycle {half[0][0]}, "
                                      f"{points[-1][1]:.0f} kB after cycle {points[-1][0]}",))
    return info, worst


LEAK_HEAD = re.compile(r"^unreferenced object (0x[0-9a-f]+) \(size (\d+)\):")
LEAK_COMM = re.compile(r'^\s*comm "(.*)", pid (\d+), jiffies \d+(?: \(age ([0-9.]+)s\))?')


def parse_kmemleak(text: str) -> list[dict[str, Any]]:
    """The objects of /sys/kernel/debug/kmemleak: address, size, allocating task, backtrace."""
    leaks: list[dict[str, Any]] = []
    section = None
    for line in text.splitlines():
        if m := LEAK_HEAD.match(line):
            leaks.append({"object": m.group(1), "size": int(m.group(2)), "comm": "", "pid": 0,
                          "backtrace": []})
            section = None
        elif leaks and (m := LEAK_COMM.match(line)):
            leaks[-1].update(comm=m.group(1), pid=int(m.group(2)))
        elif leaks and line.strip().startswith("backtrace"):
            section = "bt"
        elif leaks and line.strip().startswith("hex dump"):
            section = "hex"
        elif leaks and section == "bt" and line.strip():
            leaks[-1]["backtrace"].append(line.strip())
    return leaks


def judge_kmemleak(leaks: list[dict[str, Any]], soak_tasks: set[str], module: str
                   ) -> tuple[dict[str, Any], Failure | None]:
    """Leaks allocated by the soak's own load/unload calls or by the module's threads
    (or whose backtrace names the module) fail the soak; others are listed, not judged."""
    def ours(leak: Mapping[str, Any]) -> bool:
        return leak["comm"] in soak_tasks or any(f"[{module}]" in f for f in leak["backtrace"])
    mine = [x for x in leaks if ours(x)]
    info = {"objects": len(leaks), "attributed": len(mine),
            "bytes_attributed": sum(x["size"] for x in mine)}
    if not mine:
        return info, None
    ev: list[str] = []
    for x in mine[:3]:
        ev.append(f"unreferenced object {x['object']} (size {x['size']}), allocated by "
                  f"{x['comm']} (pid {x['pid']})")
        ev += [f"    {f}" for f in x["backtrace"][:8]]
    return info, Failure(0, "kmemleak", f"kmemleak: {len(mine)} unreferenced object(s), "
                         f"{info['bytes_attributed']} bytes, allocated by the module's load/"
                         "unload or its threads", tuple(ev))
