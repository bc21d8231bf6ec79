"""`lab matrix`: one soak per target ("cell"), several guests at once, each isolated.

Every cell has its own guest (named after the cell and this process), ports
and results directory; a crash or infra error in one cell does not stop the
others. ``--shard I/N`` takes a stable subset of the cells so a CI system's
own matrix can fan them out across machines; `lab report` merges the shards.
"""

from __future__ import annotations

import os
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

from . import hostload
from .build import ensure_images
from .config import Lab, Target
from .errors import LabError
from .interrupt import STOP, reason as stop_reason
from .module import build_module
from .results import SoakSummary, write_json, write_summary
from .results.files import MATRIX
from .soak.agent import build_agent
from .soak.run import run_soak
from .verdict import Verdict

GUEST_MEMORY_GIB = 1.0  # a guest's RAM plus QEMU's own, for the default job count


def parse_shard(text: str | None) -> tuple[int, int]:
    if not text:
        return 1, 1
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise LabError(f"--shard {text!r}: expected I/N, e.g. 1/3") from None
    if not 1 <= i <= n:
        raise LabError(f"--shard {text!r}: I must be between 1 and N")
    return i, n


def shard_cells(names: Sequence[str], shard: tuple[int, int]) -> list[str]:
    """A stable subset: cells sorted by name, every N-th starting at I."""
    i, n = shard
    return sorted(names)[i - 1::n]


def default_jobs() -> int:
    """Guests at once: one per core that other work leaves free, as memory allows."""
    try:
        mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem_gib = 2.0
    return max(1, min(hostload.free_core_slots(hostload.read_load()), int(mem_gib / GUEST_MEMORY_GIB)))


@dataclass
class Cell:
    target: Target
    out: Path
    verdict: Verdict | str = "pending"
    seconds: float = 0.0
    summary: SoakSummary | None = None


def run_matrix(lab: Lab, targets: Sequence[Target], base_opts, out: Path, jobs: int,
               shard: tuple[int, int] = (1, 1),
               on_cell: Callable[[Cell, str], None] = lambda c, event: None,
               progress_for: Callable[[Cell], Callable] = lambda c: (lambda rec, fails: None)
               ) -> list[Cell]:
    """Soak every cell of this shard; returns the cells with their verdicts."""

    names = shard_cells([t.name for t in targets], shard)
    cells = [Cell(lab.target(n), out / n) for n in names]
    # Builds first, one at a time: two cores are better spent on one compiler at a time.
    try:
        for c in cells:
            on_cell(c, "building")
            ensure_images(lab, c.target, lambda m: None)
            build_module(lab, c.target, base_opts.module_dir)
            build_agent(lab, c.target)
    except KeyboardInterrupt:
        STOP.set()

    def one(cell: Cell) -> Cell:
        t0 = time.monotonic()
        if STOP.is_set():
            _stand_in(cell, Verdict.INTERRUPTED, f"{stop_reason()} before the cell started")
            on_cell(cell, "done")
            return cell
        on_cell(cell, "running")
        opts = replace(base_opts, out=cell.out, name=f"matrix-{cell.target.name}-{os.getpid()}",
                       keep=False)
        try:
            res = run_soak(lab, cell.target, opts, progress=progress_for(cell))
            cell.verdict, cell.summary = res.verdict, res.summary
        except KeyboardInterrupt:  # stopped while booting; run_soak wrote the summary
            cell.verdict = Verdict.INTERRUPTED
        except Exception as e:  # one cell's trouble never stops the others
            _stand_in(cell, Verdict.INFRA,
                      str(e) if isinstance(e, LabError) else traceback.format_exc())
        cell.seconds = time.monotonic() - t0
        on_cell(cell, "done")
        return cell

    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    futures = [pool.submit(one, c) for c in cells]
    try:
        for f in futures:
            f.result()
    except KeyboardInterrupt:
        # Every running cell sees STOP, ends "interrupted" with its files written and its
        # guest shut down; cells not started yet write an "interrupted" summary.
        STOP.set()
    finally:
        pool.shutdown(wait=True)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / MATRIX, {
        "shard": f"{shard[0]}/{shard[1]}", "jobs": jobs,
        "cells": [{"target": c.target.name, "verdict": c.verdict, "seconds": round(c.seconds, 2),
                   "dir": c.target.name} for c in cells]})
    return cells


def _stand_in(cell: Cell, verdict: Verdict, reason: str) -> None:
    """A summary for a cell that has none of its own (never started, or the lab failed)."""
    cell.verdict = verdict
    cell.summary = SoakSummary.stand_in(cell.target, verdict, reason)
    cell.out.mkdir(parents=True, exist_ok=True)
    write_summary(cell.out, cell.summary)
