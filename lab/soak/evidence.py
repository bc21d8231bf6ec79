"""What a soak keeps when something goes wrong: the guest's console from the soak's
start, and for a hang the kernel's task dumps and the CPU registers, taken
before the guest is killed."""

from __future__ import annotations

import time
from pathlib import Path

from ..guest import Guest


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


def capture_hang_evidence(guest: Guest, out: Path) -> list[str]:
    """Task dumps through sysrq and CPU registers through QMP, before the guest is killed.

    sysrq goes through the emulated keyboard (QMP sendkey), which works even when
    a spinning thread starves user space; SSH is only the fallback.
    """
    notes = []
    before = guest.console.offset
    sent = False
    for key in ("alt-sysrq-w", "alt-sysrq-t", "alt-sysrq-l"):
        try:
            guest.qmp("human-monitor-command", timeout=5, **{"command-line": f"sendkey {key}"})
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
        regs = guest.qmp("human-monitor-command", timeout=10, **{"command-line": "info registers -a"})
        (out / "registers.txt").write_text(str(regs))
        notes.append("CPU registers saved to registers.txt")
    except Exception as e:
        notes.append(f"QMP register dump failed: {e}")
    if save_console(guest, before, out / "hang-console.txt"):
        notes.append("console output after the hang saved to hang-console.txt")
    return notes
