"""What a soak keeps when something goes wrong: the guest's console from the soak's
start, and for a hang the kernel's task dumps and the CPU registers, taken
before the guest is killed."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ..guest.qemu import Guest
from ..results.files import HANG_CONSOLE, REGISTERS  # the names only (a leaf of constants)

# Where a task sleeps while its output waits for a reader: the agent's stdout is
# a pipe to the SSH server, which stops reading when the guest's network stalls.
OUTPUT_WAITS = ("pipe_write", "pipe_wait", "wait_woken", "sk_stream_wait_memory")
# Where it sleeps waiting for the host's answers to its records (its stdin, the same
# SSH session): the host answers every record at once, so a wait here means the
# answers, or the records they answer, stopped on the way.
INPUT_WAITS = ("pipe_read",)


@dataclass
class AgentProbe:
    """What a new SSH session saw of the soak agent after its records stopped."""

    answered: bool                   # the guest accepted a new SSH session
    state: str = ""                  # the agent's state letter; "" if it had ended
    wchan: str = ""                  # where it sleeps in the kernel
    lines: list[str] = field(default_factory=list)

    @property
    def output_stalled(self) -> str:
        """Why the records stopped on the way to the host, if that is what happened:
        the agent is gone, or it waits to write, while the guest answers."""
        if not self.answered:
            return ""
        if not self.state or self.state == "Z":
            return "the soak agent had ended, but its SSH session never said so"
        if self.state == "S" and self.wchan in OUTPUT_WAITS:
            return f"the soak agent waits to write its records ({self.wchan}): " \
                   "the host stopped receiving them"
        if self.state == "S" and self.wchan in INPUT_WAITS:
            return f"the soak agent waits for the host's answers to its records " \
                   f"({self.wchan}): the host answered each, so its session stalled"
        return ""


def probe_agent(guest: Guest, pid: int | None, timeout: float = 10.0) -> AgentProbe:
    """Ask over a new SSH session where the agent is: a stalled stream and a hung
    module look the same from the host's side of the old one."""
    script = (f"p=/proc/{pid or 0}; test -r $p/stat || {{ echo gone; exit 0; }}; "
              "s=$(cat $p/stat); w=$(cat $p/wchan); echo \"$s\"; echo \"$w\"; "
              "cat $p/stack 2>/dev/null; for t in $p/task/*; do "
              "echo \"thread $(cat $t/stat) wchan $(cat $t/wchan)\"; done; cat /proc/loadavg")
    try:
        with guest.connection(command_timeout=timeout, connect_timeout=timeout).connect() as c:
            out = c.run(["sh", "-c", script], timeout=timeout, check=False).stdout
    except Exception as e:  # the guest's network or SSH server is what we are asking about
        return AgentProbe(False, lines=[f"a new SSH session to the guest failed: {e}"])
    lines = out.splitlines()
    if not lines or lines[0] == "gone" or pid is None:
        return AgentProbe(True, lines=["a new SSH session found no soak agent running"])
    stat = lines[0]
    state = stat[stat.rfind(")") + 2:][:1] if ")" in stat else "?"
    wchan = lines[1].strip() if len(lines) > 1 else ""
    return AgentProbe(True, state, wchan,
                      [f"a new SSH session found the soak agent (pid {pid}) in state {state}, "
                       f"waiting in {wchan or '-'}", *(f"  {x}" for x in lines[2:])])


def save_console(guest: Guest, start: int, dest: Path) -> bool:
    """Copy the guest's console log from byte ``start`` to ``dest`` (empty if unreadable)."""
    try:
        with open(guest.record.console_log, "rb") as f:
            f.seek(start)
            dest.write_bytes(f.read())
        return True
    except OSError:
        dest.write_bytes(b"")
        return False


@dataclass
class HangEvidence:
    notes: list[str]
    probe: AgentProbe | None = None


def capture_hang_evidence(guest: Guest, out: Path, agent_pid: int | None) -> HangEvidence:
    """Where the agent is (a new SSH session), task dumps through sysrq and CPU
    registers through QMP, before the guest is killed.

    sysrq goes through the emulated keyboard (QMP sendkey), which works even when
    a spinning thread starves user space; SSH is only the fallback.
    """
    probe = probe_agent(guest, agent_pid)
    notes = list(probe.lines)
    before = guest.console.offset
    sent = False
    for key in ("alt-sysrq-w", "alt-sysrq-t", "alt-sysrq-l"):
        try:
            guest.hmp(f"sendkey {key}", timeout=5)
            sent = True
        except Exception as e:
            notes.append(f"QMP sendkey {key} failed: {e}")
            break
        time.sleep(1.0)
    if sent:
        notes.append("sysrq w, t and l sent through the keyboard (QMP sendkey)")
    else:
        try:
            with guest.connection(command_timeout=10).connect() as c:
                c.run("echo w > /proc/sysrq-trigger; echo t > /proc/sysrq-trigger", timeout=10,
                      check=False)
            notes.append("sysrq w and t requested over SSH")
        except Exception as e:
            notes.append(f"sysrq over SSH failed too: {e}")
    time.sleep(2.0)
    try:
        (out / REGISTERS).write_text(guest.hmp("info registers -a", timeout=10))
        notes.append(f"CPU registers saved to {REGISTERS}")
    except Exception as e:
        notes.append(f"QMP register dump failed: {e}")
    notes.append(guest.nic_state())
    if save_console(guest, before, out / HANG_CONSOLE):
        notes.append(f"console output after the hang saved to {HANG_CONSOLE}")
    return HangEvidence(notes, probe)
