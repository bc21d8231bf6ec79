"""What a failed check is, and every check there is: the vocabulary the soak's judge
(lab.soak.checks) writes and every reader of results (JUnit, KCIDB, the report) reads."""

from __future__ import annotations

from dataclasses import asdict, dataclass


# Every check the soak can fail, in the order a reader meets them (JUnit test cases).
CHECKS = ("boot", "syscall", "threads-missing", "threads-not-run", "threads-left", "refcount",
          "module-listed", "registrations", "zombies", "start-messages", "kernel-log", "timing-load",
          "timing-threads", "timing-unload", "period", "jitter", "mem-growth", "kmemleak",
          "crash", "hang")


@dataclass(frozen=True)
class Failure:
    cycle: int
    check: str
    message: str
    evidence: tuple[str, ...] = ()

    def as_json(self) -> dict:
        return {**asdict(self), "evidence": list(self.evidence)}
