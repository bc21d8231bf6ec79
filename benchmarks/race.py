#!/usr/bin/env python3
"""Cycles to catch an SMP race: soak tests/faulty/race (four threads sharing a list
with no lock) again and again on each target, and print in which cycle each soak
caught it (median and worst), or how many soaks passed.

Each soak boots its own guest (a crash takes the guest with it). The threading is
each target's own (one TCG thread per vCPU unless the target file or
LAB_TCG_THREAD says otherwise); --threading sets it for the run.

    benchmarks/race.py [TARGET...] [--soaks N] [--cycles C] [--threading multi|single]
                       [--out DIR] [--json FILE]
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab import interrupt  # noqa: E402
from lab.config import load_lab  # noqa: E402
from lab.results import SoakSummary  # noqa: E402
from lab.soak.run import SoakOptions, run_soak  # noqa: E402

FIXTURE = Path(__file__).resolve().parent.parent / "tests/faulty/race"
SMP_AND_UP = ["i386-smp", "alpha-ds20", "alpha-es40", "i386-up", "alpha-pws500au"]


def caught_in(summary: SoakSummary) -> int | None:
    """The cycle in which the soak caught the race (None: it passed). A crash or
    hang ends the cycle under way, after the completed ones."""
    if summary.verdict == "pass":
        return None
    if summary.verdict == "fail" and summary.failures:
        return min((f.cycle for f in summary.failures if f.cycle), default=0) or None
    return summary.cycles + 1


def one_soak(lab, name: str, cycles: int, out: Path, n: int) -> dict:
    target = lab.target(name)
    t0 = time.monotonic()
    res = run_soak(lab, target, SoakOptions(out=out / f"{name}-{n}", cycles=cycles,
                                            module_dir=FIXTURE, accel="tcg",
                                            name=f"race-{name}"))
    s = res.summary
    return {"target": name, "soak": n, "verdict": str(s.verdict), "caught_in": caught_in(s),
            "cycles": s.cycles, "threading": s.threading, "reason": s.reason,
            "seconds": round(time.monotonic() - t0, 1)}


def line(name: str, runs: list[dict], cycles: int) -> str:
    caught = [r["caught_in"] for r in runs if r["caught_in"] is not None]
    infra = [r for r in runs if r["verdict"] in ("infra", "interrupted")]
    how = runs[0]["threading"] if runs else "?"
    text = f"{name:15} {how:7} soaks {len(runs):3}  caught {len(caught):3}"
    if caught:
        text += (f"  cycle median {statistics.median(caught):5.1f} worst {max(caught):4}"
                 f"  verdicts {sorted({r['verdict'] for r in runs if r['caught_in']})}")
    passed = sum(1 for r in runs if r["verdict"] == "pass")
    if passed:
        text += f"  passed {cycles} cycles: {passed}"
    if infra:
        text += f"  infra/interrupted: {len(infra)}"
    return text


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("targets", nargs="*", default=SMP_AND_UP)
    p.add_argument("--soaks", type=int, default=10)
    p.add_argument("--cycles", type=int, default=300)
    p.add_argument("--threading", choices=("multi", "single"))
    p.add_argument("--out", type=Path)
    p.add_argument("--json", type=Path, help="write every soak's outcome here")
    args = p.parse_args()
    if args.threading:
        os.environ["LAB_TCG_THREAD"] = args.threading
    lab = load_lab()
    out = args.out or Path(tempfile.mkdtemp(prefix="lab-race-"))
    interrupt.install()
    runs: dict[str, list[dict]] = {name: [] for name in args.targets}
    try:
        for n in range(1, args.soaks + 1):
            for name in args.targets:
                r = one_soak(lab, name, args.cycles, out, n)
                runs[name].append(r)
                print(f"[{time.strftime('%H:%M:%S')}] {name} soak {n}: {r['verdict']}"
                      f" caught in cycle {r['caught_in']} ({r['seconds']} s)", file=sys.stderr)
    finally:
        if args.json:
            args.json.write_text(json.dumps(runs, indent=2))
    print(f"{args.cycles}-cycle soaks of tests/faulty/race, results in {out}")
    for name, rs in runs.items():
        print(line(name, rs, args.cycles))
    return 0


if __name__ == "__main__":
    sys.exit(main())
