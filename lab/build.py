"""`lab images build`: plan the steps of the requested targets and run the missing ones;
``ensure_images``: the same for one target about to boot, which hands back its images."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from .cache import Store
from .config import Lab, Target
from .images import GuestImages, images_for, target_steps
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
    return os.cpu_count() or 1


def build_targets(lab: Lab, targets: Sequence[Target], *, jobs: int | None = None,
                  status: Callable[[str], None] = lambda m: None,
                  on_step: Callable[[Step, int, int], None] = lambda s, i, n: None) -> BuildReport:
    t0 = time.monotonic()
    store = Store(cache_dir())
    p = plan([s for t in targets for s in target_steps(lab, t)], store)
    built = _execute(p, store, jobs, status, on_step)
    return BuildReport(p, built, time.monotonic() - t0)


def ensure_images(lab: Lab, target: Target,
                  status: Callable[[str], None] = lambda m: None) -> GuestImages:
    """The images ``target`` boots, built first if any is missing: planned once here,
    then handed to the guest layer (lab.guest.lifecycle.up(images=...)), which does
    not build."""
    store = Store(cache_dir())
    p = plan(target_steps(lab, target), store)
    if p.to_build:
        status(f"building images for {target.name}")
        _execute(p, store, None, status, lambda s, i, n: None)
    return images_for(lab, target, store)


def _execute(p: Plan, store: Store, jobs: int | None, status: Callable[[str], None],
             on_step: Callable[[Step, int, int], None]) -> list[tuple[Step, float]]:
    ctx = BuildContext(store=store, log_dir=cache_dir() / "logs", jobs=jobs or default_jobs(),
                       status=status)
    return execute(p, ctx, on_step)
