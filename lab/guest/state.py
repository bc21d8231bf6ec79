"""Records of running guests, one JSON file per guest in the per-user run directory."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..paths import run_dir


@dataclass
class GuestRecord:
    name: str                 # unique guest name (defaults to the target name)
    target: str
    arch: str
    smp: int
    memory: int
    pid: int
    ssh_port: int
    accel: str
    dir: str                  # this guest's run directory
    host_key: str
    kernel_key: str
    rootfs_key: str
    kernel_release: str
    started: float = field(default_factory=time.time)
    boot_attempts: int = 1
    command: list[str] = field(default_factory=list)
    cpu_model: str = ""       # as the guest's /proc/cpuinfo says (read back at boot)
    bios_key: str = ""        # the lab's PALcode build, if the target boots it
    from_snapshot: bool = False   # restored from a post-boot snapshot, not booted
    ready_seconds: float = 0.0    # QEMU start to SSH connected
    snapshot_note: str = ""       # why this guest did not come from a snapshot, if it did not
    # How its vCPUs run on the host (Target.threading): "multi", "single", "up" or "kvm".
    # It decides which bugs can show: a race needs two vCPUs running at one instant.
    threading: str = ""

    @property
    def path(self) -> Path:
        return Path(self.dir)

    @property
    def qmp_socket(self) -> Path:
        return self.path / "qmp.sock"

    @property
    def console_log(self) -> Path:
        return self.path / "console.log"

    @property
    def console_socket(self) -> Path:
        return self.path / "console.sock"

    @property
    def known_hosts(self) -> Path:
        return self.path / "known_hosts"

    def save(self) -> None:
        tmp = self.path / "record.json.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=2))
        os.replace(tmp, self.path / "record.json")

    def alive(self) -> bool:
        return pid_is_qemu(self.pid)


def pid_is_qemu(pid: int) -> bool:
    """True if ``pid`` is a live QEMU process (a reused pid does not count)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            head = b" ".join(f.read().split(b"\0")[:2])  # interpreter + script, or the binary
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return b"qemu-system" in head and state != b"Z"


def guest_dir(name: str) -> Path:
    return run_dir() / name


def load(name: str) -> GuestRecord | None:
    p = guest_dir(name) / "record.json"
    try:
        return GuestRecord(**json.loads(p.read_text()))
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, TypeError):
        return None


def all_records() -> list[GuestRecord]:
    root = run_dir()
    if not root.is_dir():
        return []
    out = []
    for d in sorted(root.iterdir()):
        if not d.is_dir():  # name locks (.NAME.lock) live beside the guests' directories
            continue
        rec = load(d.name)
        if rec:
            out.append(rec)
    return out


def remove(name: str) -> None:
    shutil.rmtree(guest_dir(name), ignore_errors=True)
