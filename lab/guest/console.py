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
    # Alpha's kernel-mode traps (arch/alpha/kernel/traps.c) kill the task as an oops
    # does, in words of their own: "comm(pid): unhandled unaligned exception" (a list
    # poison such as 0x122 dereferenced), "comm(pid): Arithmetic fault 0",
    # "comm(pid): Instruction fault 0" (die_if_kernel, which prints only for the kernel).
    ("oops", re.compile(r"\bOops\b|Unable to handle kernel|general protection fault|"
                        r"BUG: unable to handle|BUG: kernel NULL pointer|kernel BUG at|"
                        r"\(\d+\): (unhandled unaligned exception|"
                        r"(Arithmetic|Instruction) fault -?\d+)")),
    ("bug", re.compile(r"\bBUG: ")),
    ("oom", re.compile(r"invoked oom-killer|Out of memory: Kill")),
    ("warning", re.compile(r"\bWARNING: ")),
    ("unhandled", re.compile(r"\bunhandled\b", re.I)),
]
FATAL = {"panic", "oops", "bug", "oom"}   # the kernel crashed (or ran out of memory): a crash
STUCK = {"soft-lockup", "rcu-stall", "hung-task"}  # the kernel says it is stuck: a hang verdict

READY_MARK = "lab-guest: sshd ready"
# rcS could not ping the user-mode network's gateway: the guest's NIC passes no
# packets, SSH will never answer.
NO_NETWORK_MARK = re.compile(r"lab-guest: no network: (.+?)\s*$", re.M)
# The guest shutting down on request (`lab down`, poweroff in the guest), not crashing.
SHUTDOWN = re.compile(r"The system is going down|reboot: (Power down|Restarting|System halted)")
CPU_MARK = re.compile(r"lab-guest: cpu (.+?)\s*$", re.M)
# A kernel message on the console: printk writes it whole, but may write it into
# the middle of a line user space is printing.
KERNEL_MESSAGE = re.compile(r"\[\s*\d+\.\d+\] [^\n]*(\n|$)")
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

    def user_text(self, n: int = 40) -> str:
        """The last ``n`` lines as user space wrote them, kernel messages cut out:
        "lab-guest: sshd [    8.40] rcS (75) used greatest stack depth ...\nready"
        is the ready mark, split by a message the kernel printed meanwhile."""
        return KERNEL_MESSAGE.sub("", "\n".join(self.lines[-n:]))


def findings(lines: list[str]) -> list[Finding]:
    out = []
    for line in lines:
        kind = classify(line)
        if kind:
            out.append(Finding(kind, line))
    return out


# Where a kernel's report of one oops ends: x86 closes it with an end-trace
# marker; Alpha prints no marker, its report ends with the "Code:" line after
# the "Trace:" block.
END_TRACE = re.compile(r"---\[ end trace|Kernel panic - not syncing")
TRACE_START = re.compile(r"\b(Call )?Trace:")
CODE_LINE = re.compile(r"\bCode:")
# Alpha's unaligned-access report prints its code before its trace and ends the
# trace with an empty message.
BLANK_KERNEL_LINE = re.compile(r"\[\s*\d+\.\d+\]\s*$")


def first_report(lines: list[str], max_lines: int = 80) -> list[str]:
    """The kernel's first oops/BUG/panic report, from its first line through its call
    trace, then one line saying how many console lines follow (they are often pages
    of repeated registers after an Alpha oops, or the fallout of the first report)."""
    start = next((i for i, line in enumerate(lines) if classify(line) in FATAL), None)
    if start is None:
        return []
    end, seen_trace, seen_code = None, False, False
    for i in range(start, min(len(lines), start + max_lines)):
        line = lines[i]
        if i > start and END_TRACE.search(line):
            end = i
            break
        if TRACE_START.search(line):
            seen_trace = True
        elif seen_trace and (CODE_LINE.search(line)
                             or seen_code and BLANK_KERNEL_LINE.match(line)):
            end = i
            break
        elif CODE_LINE.search(line):
            seen_code = True
    end = end if end is not None else min(len(lines), start + max_lines) - 1
    report = [line.rstrip() for line in lines[start:end + 1]]
    rest = len(lines) - end - 1
    if rest > 0:
        report.append(f"[... {rest} more console line(s) after the first report: see console.log]")
    return report
