#!/usr/bin/env python3
"""Matrix wall time against the sum of its cells' times.

Runs the uniprocessor cells (i386-up, alpha-pws500au) with --jobs 1 and with
--jobs 2 and prints the speed-up; then the SMP cells with --jobs 2, reported
as they are (SMP guests already use several host threads under TCG).

    benchmarks/matrix.py [--cycles N]
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.config import load_lab  # noqa: E402
from lab.matrix import run_matrix  # noqa: E402
from lab.soak.run import SoakOptions  # noqa: E402


def timed(lab, names, jobs, cycles):
    out = Path(tempfile.mkdtemp(prefix=f"lab-bench-matrix-j{jobs}-"))
    t0 = time.monotonic()
    cells = run_matrix(lab, [lab.target(n) for n in names], SoakOptions(cycles=cycles, accel="tcg"),
                       out, jobs)
    wall = time.monotonic() - t0
    return wall, sum(c.seconds for c in cells), {c.target.name: c.verdict for c in cells}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=100)
    args = ap.parse_args()
    os.environ.setdefault("LAB_RUN", tempfile.mkdtemp(prefix="lab-bench-run-"))
    lab = load_lab()
    up = ["i386-up", "alpha-pws500au"]
    smp = ["i386-smp", "alpha-ds20", "alpha-es40"]
    w1, s1, v1 = timed(lab, up, 1, args.cycles)
    w2, s2, v2 = timed(lab, up, 2, args.cycles)
    print(f"UP cells {up}, {args.cycles} cycles each: one after the other {w1:.1f}s "
          f"(cells {s1:.1f}s), 2 jobs {w2:.1f}s (cells {s2:.1f}s): speed-up {w1 / w2:.2f}x  {v2}")
    w3, s3, v3 = timed(lab, smp, 2, args.cycles)
    print(f"SMP cells {smp}, 2 jobs: wall {w3:.1f}s, sum of cells {s3:.1f}s, "
          f"ratio {s3 / w3:.2f}  {v3}")


if __name__ == "__main__":
    main()
