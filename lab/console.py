"""Reading a guest's serial console log and recognising what the kernel says.

The same patterns serve ``lab up`` (a boot that panics ends the wait at once)
and the soak (an oops during a cycle is a crash verdict).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# Each pattern names a kind of kernel trouble; the first match on a line wins.
TROUBLE = [
    ("panic", re.compile(r"Kernel panic - not syncing")),
    ("soft-lockup", re.compile(r"soft lockup - CPU#|hard LOCKUP", re.I)),
    ("rcu-stall", re.compile(r"rcu.*(self-detected stall|detected stalls?)|RCU Stall", re.I)),
    ("hung-task", re.compile(r"blocked for more than \d+ seconds")),
    ("oops", re.compile(r"\bOops\b|Unable to handle kernel|general protection fault|"
                        r"BUG: unable to handle|BUG: kernel NULL pointer|kernel BUG at")),
    ("bug", re.compile(r"\bBUG: ")),
    ("warning", re.compile(r"\bWARNING: ")),
    ("unhandled", re.compile(r"\bunhandled\b", re.I)),
]
FATAL = {"panic", "oops", "bug"}          # the kernel crashed: a crash verdict
STUCK = {"soft-lockup", "rcu-stall", "hung-task"}  # the kernel says it is stuck: a hang verdict

READY_MARK = "lab-guest: sshd ready"
KVM_FATAL = re.compile(r"KVM internal error|emulation failure")


def classify(line: str) -> str | None:
    for kind, pat in TROUBLE:
        if pat.search(line):
            return kind
    return None


@dataclass
class Finding:
    kind: str
    line: str


class ConsoleLog:
    """Incremental reader of a console log file that QEMU appends to."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self.partial = ""
        self.lines: list[str] = []

    def poll(self) -> list[str]:
        """Complete lines added since the last poll."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        text = self.partial + data.decode("utf-8", errors="replace").replace("\r", "")
        *complete, self.partial = text.split("\n")
        self.lines.extend(complete)
        return complete

    def tail(self, n: int = 25) -> str:
        return "\n".join((self.lines + ([self.partial] if self.partial else []))[-n:])


def findings(lines: list[str]) -> list[Finding]:
    out = []
    for line in lines:
        kind = classify(line)
        if kind:
            out.append(Finding(kind, line))
    return out
