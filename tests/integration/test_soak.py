"""Real soaks: the shipped module passes; each faulty module gets its verdict."""

import json
import threading
from pathlib import Path

import pytest

from lab.soak import SoakOptions, run_soak

FAULTY = Path(__file__).resolve().parent.parent / "faulty"


def soak(lab, name, out, **kw):
    opts = SoakOptions(out=out, accel="tcg", **kw)
    return run_soak(lab, lab.target(name), opts)


@pytest.mark.parametrize("name", ["i386-smp", "alpha-es40"])
def test_shipped_module_passes(lab, built, tmp_path, name):
    res = soak(lab, name, tmp_path, cycles=25, dwell_every=12, dwell_s=3.5)
    s = res.summary
    assert res.verdict == "pass", (s["reason"], s["failures"][:3])
    assert res.exit_code == 0
    assert s["cycles"] == 25 and s["failed_cycles"] == 0
    records = [json.loads(x) for x in (tmp_path / "records.jsonl").read_text().splitlines()]
    cycles = [r for r in records if r["type"] == "cycle"]
    assert [r["n"] for r in cycles] == list(range(1, 26))
    assert all(r["starts"] == 5 and r["threads_after"] == 0 and r["zombies"] <= 0 for r in cycles)
    # two dwell cycles of 3.5 s: 5 threads x 2-3 periods each
    assert s["period_ms"]["samples"] >= 10
    assert abs(s["period_ms"]["mean"] - 1000) < 100
    assert s["latency_ms"]["load"]["p50"] > 0
    for f in ("summary.json", "console.log", "junit.xml"):
        assert (tmp_path / f).is_file()
    assert json.loads((tmp_path / "summary.json").read_text())["verdict"] == "pass"


@pytest.mark.parametrize("name, deadline", [("i386-up", 15), ("alpha-ds20", None)])
def test_thread_ignoring_stop_is_a_hang(lab, built, tmp_path, name, deadline):
    # i386-up: the cycle deadline expires first; alpha-ds20 with the default
    # deadline: the kernel speaks first (RCU stall or soft lockup). Both are hangs.
    res = soak(lab, name, tmp_path, cycles=5, module_dir=FAULTY / "ignore-stop",
               overrides={"cycle_deadline_s": deadline})
    assert res.verdict == "hang" and res.exit_code == 1
    reason = res.summary["reason"]
    assert "gave no record" in reason or reason.startswith("kernel reports"), reason
    assert any("sysrq" in e for e in res.summary["evidence"])
    assert (tmp_path / "registers.txt").is_file()
    dump = (tmp_path / "hang-console.txt").read_text()
    assert "sysrq: Show" in dump
    # the dump names the spinning threads
    assert "deaf_thread" in dump or "faulty thread" in dump


def test_oops_in_init_is_a_crash(lab, built, tmp_path):
    res = soak(lab, "i386-up", tmp_path, cycles=5, module_dir=FAULTY / "oops-init")
    assert res.verdict == "crash" and res.exit_code == 1
    assert "oops" in res.summary["reason"]
    assert any("faulty_init" in line or "NULL pointer" in line for line in res.summary["evidence"])


def test_slow_load_fails_on_timing(lab, built, tmp_path):
    res = soak(lab, "i386-up", tmp_path, cycles=3, module_dir=FAULTY / "slow-load",
               overrides={"max_load_ms": 1000})
    assert res.verdict == "fail"
    assert res.summary["checks_failed"].get("timing-load") == 3
    assert set(res.summary["checks_failed"]) == {"timing-load"}


def test_thread_left_running_fails_or_crashes(lab, built, tmp_path):
    res = soak(lab, "i386-up", tmp_path, cycles=5, module_dir=FAULTY / "thread-left")
    assert res.verdict in ("fail", "crash")
    if res.verdict == "fail":
        assert "threads-left" in res.summary["checks_failed"]
    assert res.summary["failures"] or res.summary["reason"]


def test_zombie_made_during_the_soak_fails(lab, built, tmp_path):
    done = threading.Event()

    def make_zombie(rec, guest):
        # After the baseline, a user-space process leaves an unreaped child.
        if rec.get("type") == "cycle" and rec["n"] == 2 and not done.is_set():
            done.set()
            with guest.connection().connect() as c:
                c.run("(sleep 0.1 & exec sleep 600) >/dev/null 2>&1 &", timeout=20)
                c.run("sleep 0.5")

    opts = SoakOptions(out=tmp_path, accel="tcg", cycles=300)
    from lab.soak import run_soak as run
    res = run(lab, lab.target("i386-up"), opts, on_record=make_zombie)
    assert done.is_set()
    assert res.verdict == "fail"
    assert "zombies" in res.summary["checks_failed"]
    first = next(f for f in res.summary["failures"] if f["check"] == "zombies")
    assert first["cycle"] >= 2
