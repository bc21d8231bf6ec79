"""Build steps, their content keys, and the planner that decides what to build.

A step's key is a hash of its own inputs (cheap to compute: versions, file
contents, recipe source) and the keys of the steps it depends on. The planner
walks the dependency graph once, shares identical steps between targets, and
returns them in build order with "cached" or "build" status.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from ..cache import Artifact, Store, hash_inputs


@dataclass
class BuildContext:
    store: Store
    log_dir: Path
    jobs: int = 2
    status: Callable[[str], None] = lambda msg: None

    def log_for(self, step: "Step") -> Path:
        return self.log_dir / f"{step.kind}-{step.name}-{step.key}.log"


class Step:
    """One cached build product. Subclasses define kind, name, deps, inputs, build."""

    kind: str = "step"
    # Modules besides the step's own whose code shapes the artifact.
    helper_modules: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        raise NotImplementedError

    def deps(self) -> list["Step"]:
        return []

    def inputs(self) -> Mapping[str, Any]:
        raise NotImplementedError

    def build(self, ctx: BuildContext, out: Path, deps: Mapping[str, Artifact]) -> Mapping[str, Any]:
        """Build into ``out``; return extra manifest info."""
        raise NotImplementedError

    def recipe_digest(self) -> str:
        """Hash of the code that builds this step: editing a recipe rebuilds."""
        return "".join(_module_digest(m) for m in (type(self).__module__, *self.helper_modules))

    @functools.cached_property
    def key(self) -> str:
        return hash_inputs({
            "kind": self.kind,
            "inputs": self.inputs(),
            "recipe": self.recipe_digest(),
            "deps": {d.kind: d.key for d in self.deps()},
        })

    @property
    def ident(self) -> tuple[str, str, str]:
        return (self.kind, self.name, self.key)

    def artifact(self, store: Store) -> Artifact:
        return store.artifact(self.kind, self.name, self.key)

    def __repr__(self) -> str:
        return f"<{self.kind} {self.name} {self.key}>"


@functools.lru_cache(maxsize=None)
def _module_digest(module_name: str) -> str:
    import importlib
    import sys
    importlib.import_module(module_name)
    src = inspect.getsource(sys.modules[module_name])
    return hashlib.sha256(src.encode()).hexdigest()[:16]


@dataclass
class PlannedStep:
    step: Step
    cached: bool


@dataclass
class Plan:
    steps: list[PlannedStep] = field(default_factory=list)

    @property
    def to_build(self) -> list[Step]:
        return [p.step for p in self.steps if not p.cached]


def plan(roots: Iterable[Step], store: Store) -> Plan:
    """Dependency-ordered, de-duplicated steps for ``roots`` with their cache status."""
    order: list[Step] = []
    seen: set[tuple[str, str, str]] = set()

    def visit(step: Step) -> None:
        if step.ident in seen:
            return
        for d in step.deps():
            visit(d)
        seen.add(step.ident)
        order.append(step)

    for r in roots:
        visit(r)
    return Plan([PlannedStep(s, s.artifact(store).exists()) for s in order])


def execute(p: Plan, ctx: BuildContext,
            on_step: Callable[[Step, int, int], None] = lambda s, i, n: None) -> list[tuple[Step, float]]:
    """Build every step of the plan that is not cached. Returns (step, seconds) built."""
    built = []
    todo = p.to_build
    for i, step in enumerate(todo):
        on_step(step, i, len(todo))
        art = step.artifact(ctx.store)
        with ctx.store.lock(art):
            if art.exists():  # another lab process built it while we waited
                continue
            built.append(_build_one(step, art, ctx))
    return built


def _build_one(step: Step, art: Artifact, ctx: BuildContext) -> tuple[Step, float]:
    out = ctx.store.staging(art)
    deps = {d.kind: d.artifact(ctx.store) for d in step.deps()}
    t0 = time.monotonic()
    info = step.build(ctx, out, deps)
    seconds = time.monotonic() - t0
    ctx.store.publish(art, out, {"inputs": step.inputs(),
                                 "deps": {k: a.key for k, a in deps.items()}},
                      {**info, "build_seconds": round(seconds, 2)})
    return step, seconds
