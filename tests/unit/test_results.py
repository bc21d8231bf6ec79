"""The typed soak summary: its summary.json both ways, older files, broken files, and
the recorded agent streams under tests/data/soak made into summaries and rendered."""

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lab.errors import LabError
from lab.integrations.kcidb import export
from lab.integrations.ktap import replay
from lab.report import soak_facts, write_report
from lab.results import (SCHEMA_VERSION, GuestInfo, Kmemleak, MemoryTrend, ModuleInfo, SoakSetup,
                         SoakSummary, read_summary, write_summary)
from lab.results.files import RECORDS, SUMMARY
from lab.soak.checks import check_cycle, memory_trend
from lab.soak.thresholds import Thresholds
from lab.verdict import Verdict

DATA = Path(__file__).resolve().parent.parent / "data" / "soak"
T = Thresholds(max_load_ms=100, max_threads_ms=200, max_unload_ms=100, leak_kb_per_cycle=4,
               leak_min_kb=128, mem_noise_kb=4096)
CLEAN = {"type": "cycle", "load_us": 5000, "threads_us": 6000, "unload_us": 4000,
         "threads": [{"comm": "pollster/0", "pid": 101, "ran": 1, "left": 0}], "refcnt": 0,
         "module_listed": 0, "zombies": 0, "procs": 40, "trouble": [], "mem_avail_kb": 400000,
         "slab_kb": 9000}


def records(n=3, **changes):
    return [{"type": "baseline", "procs": 38}] + [
        {**CLEAN, "n": i, **(changes if i == n else {})} for i in range(1, n + 1)]


def full(recs, verdict=Verdict.FAIL, **kw):
    """A summary as run_soak makes one, every part there."""
    failures = [f for r in recs if r["type"] == "cycle" for f in check_cycle(r, T)]
    info, _ = memory_trend(recs, T)
    facts = dict(target="i386-up", arch="i386", smp=1, cpu="pentium3", threading="up",
                 reason="", setup=SoakSetup("linux-6.1", "linux-6.1-i386", (), 3, "",
                                            "0.1.0", 1.0, "x1", "2026-01-01T00:00:00+00:00",
                                            {"max_load_ms": 100.0}),
                 module=ModuleInfo("m", "ab" * 32, 0, None),
                 guest=GuestInfo("6.1.192", "k1", "r1", "qemu", "", "Pentium III", 1, True),
                 kmemleak=Kmemleak(False), memory=MemoryTrend.from_json(info),
                 seconds=1.5, cycles_per_second=12.0)
    facts.update(kw)
    return SoakSummary.from_records(recs, failures, verdict, **facts)


def test_summary_counts_from_records():
    s = full(records(zombies=1, procs=41))
    assert s.verdict == Verdict.FAIL and s.cycles == 3 and s.stats.failed_cycles == 1
    assert s.checks_failed == {"zombies": 1}
    assert s.stats.processes.to_json() == {"baseline": 38, "first": 40, "last": 41, "max": 41}
    assert s.stats.latency.load.max == 5.0
    assert s.stats.kthreads.per_cycle == {"1": 3}


def test_json_round_trip_keeps_every_key_and_value():
    s = full(records(zombies=1))
    d = s.to_json()
    assert d["schema"] == SCHEMA_VERSION
    assert SoakSummary.from_json(d) == s
    assert SoakSummary.from_json(json.loads(json.dumps(d))) == s
    # the keys summary.json has had (README, users' scripts), nulls included
    assert set(d) == {
        "schema", "target", "arch", "smp", "cpu", "threading", "verdict", "reason", "cycles",
        "failures", "evidence", "kernel_profile", "kernel", "kernel_fragments",
        "requested_cycles", "params", "lab_version", "timeout_factor", "timeout_policy",
        "started", "thresholds", "module", "module_sha256", "expected_threads",
        "module_period_ms", "kernel_release", "kernel_key", "rootfs_key", "palcode",
        "palcode_key", "cpu_model", "boot_attempts", "guest_booted_by_soak", "from_snapshot",
        "ready_seconds", "failed_cycles", "latency_ms", "period_ms", "processes", "zombies_max",
        "kthreads", "checks_failed", "kmemleak", "memory", "seconds", "cycles_per_second"}
    assert d["module_period_ms"] is None and d["failures"][0]["check"] == "zombies"
    assert set(d["latency_ms"]) == {"load", "threads", "unload"}
    assert set(d["period_ms"]) == {"p50", "p95", "p99", "max", "mean", "jitter", "samples"}


def test_memory_trend_keys_read_back_as_the_trend_wrote_them():
    recs = [{**CLEAN, "n": i, "slab_kb": 9000 + 64 * i} for i in range(1, 81)]
    info, failure = memory_trend(recs, T)
    assert failure is not None
    m = MemoryTrend.from_json(info)
    assert m.to_json() == info
    assert m.slab.kb_per_cycle == info["Slab_kb_per_cycle"] == 64.0
    assert "Slab 9064.0 → 14120.0 kB (64.0 kB/cycle grown)" in soak_facts(
        SoakSummary("t", "i386", Verdict.FAIL, memory=m))[0]


def test_parts_a_soak_never_reached_write_no_keys():
    target = type("T", (), {"name": "alpha-es40", "arch": "alpha", "smp": 4, "cpu": "ev67",
                            "threading": lambda self, accel: "single"})()
    d = SoakSummary.stand_in(target, Verdict.INTERRUPTED, "stopped").to_json()
    assert d == {"schema": SCHEMA_VERSION, "target": "alpha-es40", "arch": "alpha", "smp": 4,
                 "cpu": "ev67", "threading": "single", "verdict": "interrupted",
                 "reason": "stopped", "cycles": 0, "failures": [], "evidence": []}


def test_a_summary_without_schema_from_an_older_lab_reads(tmp_path):
    old = full(records()).to_json()
    del old["schema"], old["threading"]  # before both were written
    (tmp_path / SUMMARY).write_text(json.dumps(old))
    s = read_summary(tmp_path / SUMMARY)
    assert s.target == "i386-up" and s.threading is None and s.guest.kernel_key == "k1"
    assert s.to_json() == {**old, "schema": SCHEMA_VERSION}


def test_write_then_read(tmp_path):
    s = full(records())
    assert read_summary(write_summary(tmp_path, s)) == s


@pytest.mark.parametrize("text, found", [
    ('{"target": "i386-up", "verd', "not JSON"),
    ("", "not JSON"),
    ("[1, 2]", "a JSON list, not a soak summary object"),
    ('{"cells": {}}', "no 'target' key"),
    ('{"target": "x", "verdict": "maybe"}', "'verdict' is 'maybe'"),
    ('{"target": "x", "verdict": "pass", "cycles": "many"}', "a value of the wrong kind"),
    ('{"target": "x", "verdict": "pass", "failures": [{"cycle": 1}]}', "without the 'check'"),
    ('{"schema": 99, "target": "x", "verdict": "pass"}', "schema 99 is newer"),
])
def test_a_summary_that_cannot_be_read_is_a_one_line_error_naming_the_file(tmp_path, text, found):
    p = tmp_path / SUMMARY
    p.write_text(text)
    with pytest.raises(LabError) as e:
        read_summary(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}: ") and found in msg and "\n" not in msg, msg


def test_a_missing_summary_names_the_file(tmp_path):
    with pytest.raises(LabError, match=f"^{tmp_path / SUMMARY}: cannot read it"):
        read_summary(tmp_path / SUMMARY)


def test_crash_and_hang_are_failures_of_their_own_for_junit_and_kcidb():
    s = SoakSummary("t", "i386", Verdict.HANG, reason="no record in 60s", cycles=4,
                    evidence=("sysrq: Show Blocked State",))
    by = s.failures_by_check()
    assert list(by) == ["hang"] and by["hang"][0].cycle == 4
    assert by["hang"][0].evidence == ("sysrq: Show Blocked State",)


@pytest.mark.parametrize("case, verdict", [("pass-thread-mod", Verdict.PASS),
                                           ("thread-left", Verdict.FAIL),
                                           ("ignore-stop", Verdict.HANG)])
def test_recorded_streams_make_summaries_that_render(tmp_path, case, verdict):
    lines = (DATA / case / "agent.jsonl").read_text().splitlines()
    recs = [json.loads(x) for x in lines if x.strip()]
    out = tmp_path / "res" / "i386-up"
    out.mkdir(parents=True)
    (out / RECORDS).write_text("\n".join(json.dumps(r) for r in recs))
    s = full(recs, verdict, reason="" if verdict == Verdict.PASS else "recorded")
    assert read_summary(write_summary(out, s)) == s
    merged = write_report([tmp_path / "res"], tmp_path / "report" / "report.html")
    page = (tmp_path / "report" / "report.html").read_text()
    assert f'data-verdict="{verdict}"' in page.replace("'", '"') and page.count("<svg") == 3
    assert merged.cells["i386-up"] == s
    junit = ET.parse(tmp_path / "report" / "junit.xml").getroot()
    failed = {tc.get("name") for tc in junit.iter("testcase") if tc.find("failure") is not None}
    assert failed == set(s.failures_by_check())
    assert export([tmp_path / "res"])["tests"][0]["status"] == (
        "PASS" if verdict == Verdict.PASS else "FAIL")
    lines_out = []
    replay(1, "i386-up", s.cycles, recs, s, lines_out.append)
    assert lines_out[-1].startswith("ok 1" if verdict == Verdict.PASS else "not ok 1")
