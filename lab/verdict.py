"""The one vocabulary of outcomes: soak checks, summaries, reports, JUnit and the CLI
all speak it, and it decides every command's exit status."""

from __future__ import annotations

from enum import StrEnum
from typing import Iterable


class Verdict(StrEnum):
    PASS = "pass"                # every cycle passed every check
    FAIL = "fail"                # a check failed (which, at which cycle, with evidence)
    CRASH = "crash"              # the kernel oopsed, panicked or ran out of memory
    HANG = "hang"                # a cycle did not finish before its deadline
    INFRA = "infra"              # the lab could not run the soak (boot, SSH, QEMU)
    INTERRUPTED = "interrupted"  # stopped by a signal (Ctrl-C, SIGTERM, SIGHUP)

    @property
    def exit_code(self) -> int:
        """0 pass, 1 the module failed, 2 the lab could not run (or was stopped)."""
        if self is Verdict.PASS:
            return 0
        return 1 if self.module_failed else 2

    @property
    def module_failed(self) -> bool:
        return self in (Verdict.FAIL, Verdict.CRASH, Verdict.HANG)

    @property
    def colour(self) -> str:
        return COLOURS[self]


COLOURS = {Verdict.PASS: "#2e9d4f", Verdict.FAIL: "#d1495b", Verdict.CRASH: "#8e1b2c",
           Verdict.HANG: "#e07a1f", Verdict.INFRA: "#8d8d8d", Verdict.INTERRUPTED: "#5b6f8a"}

# When results are merged, the headline is the most serious verdict among them.
SEVERITY = (Verdict.INFRA, Verdict.INTERRUPTED, Verdict.CRASH, Verdict.HANG, Verdict.FAIL,
            Verdict.PASS)


def worst(verdicts: Iterable[str]) -> Verdict:
    present = {Verdict(v) for v in verdicts}
    return next((v for v in SEVERITY if v in present), Verdict.PASS)
