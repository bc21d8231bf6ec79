"""`lab images build`: plan the steps of the requested targets and run the missing ones."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

from .cache import Store
from .config import Lab, Target
from .images import target_steps
from .images.steps import BuildContext, Plan, Step, execute, plan
from .paths import cache_dir


@dataclass
class BuildReport:
    plan: Plan
    built: list[tuple[Step, float]]
    seconds: float

    def as_json(self) -> dict:
        times = {s.ident: t for s, t in self.built}
        return {
            "seconds": round(self.seconds, 3),
            "steps": [{"kind": p.step.kind, "name": p.step.name, "key": p.step.key,
                       "status": "built" if p.step.ident in times else "cached",
                       "seconds": round(times.get(p.step.ident, 0.0), 2)} for p in self.plan.steps],
        }


def default_jobs() -> int:
    import os
    return os.cpu_count() or 1


def build_targets(lab: Lab, targets: Sequence[Target], *, jobs: int | None = None,
                  status: Callable[[str], None] = lambda m: None,
                  on_step: Callable[[Step, int, int], None] = lambda s, i, n: None) -> BuildReport:
    t0 = time.monotonic()
    store = Store(cache_dir())
    roots = [s for t in targets for s in target_steps(lab, t)]
    p = plan(roots, store)
    ctx = BuildContext(store=store, log_dir=cache_dir() / "logs", jobs=jobs or default_jobs(),
                       status=status)
    built = execute(p, ctx, on_step)
    return BuildReport(p, built, time.monotonic() - t0)
