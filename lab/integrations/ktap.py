"""KTAP v1 (the kernel's test output format, as kunit and kselftest print it) for soaks.

One test per soak (target), with one subtest per cycle; a cycle's failed checks
are its diagnostic. `lab soak --ktap` streams the cycles as they finish;
`lab matrix --ktap` prints each cell's block when the cell ends (cells run
side by side, and KTAP subtests must not interleave).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

from ..results import SoakSummary
from ..verdict import Verdict

INDENT = "    "


class KtapSoak:
    """The KTAP lines of one soak, produced as its records arrive."""

    def __init__(self, number: int, target: str, cycles: int, emit: Callable[[str], None]):
        self.number, self.target, self.cycles, self.emit = number, target, cycles, emit
        self.done = 0
        self.started = False

    def start(self) -> None:
        if not self.started:
            self.started = True
            for line in ("KTAP version 1", f"# Subtest: soak.{self.target}", f"1..{self.cycles}"):
                self.emit(INDENT + line)

    def record(self, rec: Mapping[str, Any]) -> None:
        if rec.get("type") != "cycle":
            return
        self.start()
        n = rec["n"]
        failed = rec.get("failures") or []
        self.done = n
        status = "not ok" if failed else "ok"
        self.emit(f"{INDENT}{status} {n} cycle_{n}" + (f" # {', '.join(failed)}" if failed else ""))

    def finish(self, summary: SoakSummary) -> None:
        self.start()
        verdict = summary.verdict
        for n in range(self.done + 1, self.cycles + 1):
            self.emit(f"{INDENT}ok {n} cycle_{n} # SKIP not run: the soak ended ({verdict})")
        soak_wide = [f.check for f in summary.failures if f.cycle == 0 or
                     f.check in ("mem-growth", "kmemleak")]
        for check in sorted(set(soak_wide)):
            self.emit(f"{INDENT}# soak-wide check failed: {check}")
        reason = summary.reason or ", ".join(summary.checks_failed)
        reason = reason.splitlines()[0] if reason else ""
        passed = verdict == Verdict.PASS
        status = "ok" if passed else "not ok"
        self.emit(f"{status} {self.number} soak.{self.target}" +
                  ("" if passed else f" # {verdict}: {reason}".rstrip(": ")))


def header(count: int, emit: Callable[[str], None]) -> None:
    emit("KTAP version 1")
    emit(f"1..{count}")


def replay(number: int, target: str, cycles: int, records: Iterable[Mapping[str, Any]],
           summary: SoakSummary, emit: Callable[[str], None]) -> None:
    """A finished soak's whole KTAP block (for matrix cells)."""
    k = KtapSoak(number, target, cycles, emit)
    for rec in records:
        k.record(rec)
    k.finish(summary)
