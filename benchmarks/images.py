#!/usr/bin/env python3
"""Image build times per artifact: cold (from scratch) and warm (everything cached).

    benchmarks/images.py           cold times as recorded when each artifact was built,
                                   then a measured warm run of `lab images build --all`
    benchmarks/images.py --cold    rebuild everything into an empty temporary cache first
                                   (about a quarter of an hour on two cores)
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.build import build_targets  # noqa: E402
from lab.cache import Store  # noqa: E402
from lab.config import load_lab  # noqa: E402
from lab.paths import cache_dir  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cold", action="store_true")
    args = ap.parse_args()
    lab = load_lab()
    targets = list(lab.targets.values())
    if args.cold:
        os.environ["LAB_CACHE"] = tempfile.mkdtemp(prefix="lab-cold-")
        # the client key lives in LAB_DATA and is shared, so rootfs keys match
        t0 = time.monotonic()
        cold = build_targets(lab, targets)
        print(f"cold build of all targets: {time.monotonic() - t0:.1f} s")
    else:
        cold = build_targets(lab, targets)
    store = Store(cache_dir())
    print(f"{'artifact':36} {'cold (s)':>9}")
    for p in cold.plan.steps:
        m = p.step.artifact(store).manifest()
        secs = m.get("build_seconds")
        print(f"{p.step.kind + ' ' + p.step.name:36} {secs if secs is not None else '?':>9}")
    t0 = time.monotonic()
    warm = build_targets(lab, targets)
    print(f"warm build of all targets: {time.monotonic() - t0:.3f} s, "
          f"{len(warm.built)} artifacts built")


if __name__ == "__main__":
    main()
