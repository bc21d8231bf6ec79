#!/usr/bin/env python3
"""Soak throughput: (a) bare agent, (b) `lab soak`, (c) naive one-SSH-command-per-step.

(a) the in-guest agent only loads and unloads, no checks;
(b) the full soak: thread discovery, the hold until the module's threads ran
    (plus --hold-ms, the default unless HOLD_MS is set), the unload watchdog,
    every check, host-side judging and records;
(c) naive: one SSH exec (paramiko, like fabric's run()) per insmod, per rmmod
    and per check (threads, module list, zombies, kernel log).
Rates are cycles per second of host wall time while cycles run.

    benchmarks/soak.py [TARGET...] [--cycles N] [--naive-cycles N]
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.soak.agent import REMOTE_PATH, build_agent  # noqa: E402
from lab.config import load_lab  # noqa: E402
from lab.deploy import module_remote_path, put_file  # noqa: E402
from lab.guest.lifecycle import up  # noqa: E402
from lab.module import build_module  # noqa: E402
from lab.soak.run import SoakOptions, run_soak  # noqa: E402


def stream_rate(conn, argv) -> float:
    ch = conn.open_channel(argv)
    f = ch.makefile("r")
    t_first = None
    n = 0
    for line in f:
        rec = json.loads(line)
        if rec["type"] == "baseline":
            t_first = time.monotonic()
        elif rec["type"] == "cycle":
            n += 1
        elif rec["type"] == "end":
            break
    return n / (time.monotonic() - t_first)


def naive_rate(conn, remote, cycles: int) -> float:
    t0 = time.monotonic()
    for _ in range(cycles):
        conn.run(["insmod", remote])
        conn.run("grep -l '^example thread$' /proc/[0-9]*/comm 2>/dev/null | wc -l")
        conn.run(["rmmod", "thread_mod"])
        conn.run("grep -l '^example thread$' /proc/[0-9]*/comm 2>/dev/null | wc -l")
        conn.run("! grep -q '^thread_mod ' /proc/modules")
        conn.run("grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l")
        conn.run("dmesg -c >/dev/null")
    return cycles / (time.monotonic() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("targets", nargs="*", default=["alpha-es40", "i386-smp"])
    ap.add_argument("--cycles", type=int, default=200)
    ap.add_argument("--naive-cycles", type=int, default=20)
    args = ap.parse_args()
    os.environ.setdefault("LAB_RUN", tempfile.mkdtemp(prefix="lab-bench-run-"))
    lab = load_lab()
    rows = []
    for name in args.targets:
        target = lab.target(name)
        mod, _ = build_module(lab, target)
        agent = build_agent(lab, target)
        guest, conn = up(lab, target, accel="tcg")
        try:
            remote = module_remote_path("thread_mod", mod.path)
            put_file(conn, mod.path, remote)
            put_file(conn, agent, REMOTE_PATH, mode=0o755)
            bare = stream_rate(conn, [REMOTE_PATH, "-m", remote, "-n", "thread_mod",
                                      "-c", str(args.cycles), "-b"])
            out = Path(tempfile.mkdtemp(prefix="lab-bench-soak-"))
            hold = os.environ.get("HOLD_MS")
            res = run_soak(lab, target, SoakOptions(cycles=args.cycles, out=out, keep=True,
                                                    overrides={"hold_ms": float(hold) if hold else None}))
            recs = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
            waits = sorted((r["threads_us"] - r["load_us"]) / 1000 for r in recs if r["type"] == "cycle")
            if waits:
                print(f"{name}: load returned -> every thread ran: p50 {waits[len(waits) // 2]:.1f} ms, "
                      f"p99 {waits[int(len(waits) * 0.99)]:.1f} ms, max {waits[-1]:.1f} ms "
                      f"(hold_ms {res.summary.setup.thresholds['hold_ms']:g})", flush=True)
            base = next(r for r in recs if r["type"] == "baseline")["host_time"]
            end = next(r for r in recs if r["type"] == "end")["host_time"]
            full = res.summary.cycles / (end - base)
            naive = naive_rate(conn, remote, args.naive_cycles)
        finally:
            conn.close()
            guest.shutdown(hard_only=True)
        rows.append((name, bare, full, naive, res.verdict))
        print(f"{name}: bare {bare:.2f}/s, lab soak {full:.2f}/s ({res.verdict}), "
              f"naive {naive:.2f}/s", flush=True)
    print()
    print(f"{'target':14} {'bare/s':>8} {'soak/s':>8} {'naive/s':>8} {'bare/soak':>10} {'soak/naive':>11}")
    for name, bare, full, naive, _ in rows:
        print(f"{name:14} {bare:8.2f} {full:8.2f} {naive:8.2f} {bare / full:10.2f} {full / naive:11.1f}")


if __name__ == "__main__":
    main()
