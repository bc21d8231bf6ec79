"""Post-boot snapshots: a guest's whole state, saved once right after a cold boot
reached SSH, restored by later `lab up`s instead of booting again.

A snapshot is a cached artifact like an image (``<cache>/snapshot/<target>-<key>/``),
published atomically under the artifact's lock. Its key hashes the complete QEMU
command line with the per-guest parts blanked (port, run directory) - so the
kernel, root filesystem and firmware keys, CPU model, vCPUs, memory, devices and
kernel command line are all in it - and the QEMU binary's own digest, so a
snapshot is never loaded into another QEMU build or beside other images.

Every restore is made distinct from the snapshot and from every other restore by
``Guest.freshen`` (new randomness from the host, host wall clock); see
images/rootfs/src/lab-fresh.c.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..cache import Artifact, Store, file_digest, hash_inputs
from ..config import Target
from ..deadline import Deadline
from ..errors import GuestError
from ..images import GuestImages
from .qemu import qemu_command

KIND = "snapshot"
STATE = "state"
FORMAT = 1            # bump when what a snapshot holds, or how it is taken, changes
# Blanked per-guest parts of the command line.
RUN_PLACEHOLDER = Path("/lab-run")
PORT_PLACEHOLDER = 0

_identities: dict[tuple[str, int, int], dict[str, str]] = {}


def enabled() -> bool:
    """Snapshots are on unless LAB_SNAPSHOTS=0 (or off/no/false)."""
    return os.environ.get("LAB_SNAPSHOTS", "1").strip().lower() not in ("0", "off", "no", "false")


def qemu_identity(binary: str) -> dict[str, str]:
    """The QEMU build a snapshot belongs to: the file run, its digest, and what it
    says its version is (Debian's qemu-system-i386 is a shell wrapper around the
    real binary, so the file alone would not change with an upgrade)."""
    path = shutil.which(binary) or binary
    real = os.path.realpath(path)
    st = os.stat(real)
    sig = (real, st.st_size, st.st_mtime_ns)
    if sig not in _identities:
        version = subprocess.run([real, "--version"], capture_output=True, text=True,
                                 timeout=30).stdout.splitlines()[:1]
        _identities[sig] = {"path": real, "sha256": file_digest(Path(real)),
                            "version": version[0] if version else ""}
    return _identities[sig]


@dataclass(frozen=True)
class Snapshot:
    """Where one configuration's snapshot lives (whether or not it exists yet)."""

    artifact: Artifact
    inputs: Mapping[str, Any]

    @property
    def state(self) -> Path:
        return self.artifact.path / STATE

    def exists(self) -> bool:
        return self.artifact.exists() and self.state.is_file()


def snapshot_for(target: Target, images: GuestImages, accel: str, smp: int, memory: int,
                 extra_cmdline: str, store: Store) -> Snapshot:
    argv = qemu_command(target, images, RUN_PLACEHOLDER, PORT_PLACEHOLDER, accel, smp, memory,
                        extra_cmdline)
    inputs = {"format": FORMAT, "argv": argv, "qemu": qemu_identity(argv[0])}
    return Snapshot(store.artifact(KIND, target.name, hash_inputs(inputs)), inputs)


def why_not(target: Target, accel: str) -> str | None:
    """Why this target's guests cannot use snapshots, or None if they can."""
    if target.spec.snapshot_blocker:
        return target.spec.snapshot_blocker
    if accel != "tcg":
        return f"snapshots are taken under TCG only (this guest runs under {accel})"
    return None


def incoming_uri(state: Path) -> str:
    """QEMU's -incoming for a saved state (QEMU 7.2 reads files through exec:)."""
    return "exec:" + shlex.join(["cat", str(state)])


def save(guest, snap: Snapshot, store: Store, timeout: float) -> float:
    """Save the running guest's state as ``snap``: pause, migrate to a file, resume.
    Returns the seconds the guest was paused. Another process that saves the same
    snapshot first wins; this one then does nothing."""
    with store.lock(snap.artifact):
        if snap.exists():
            return 0.0
        staging = store.staging(snap.artifact)
        state = staging / STATE
        started = time.monotonic()
        guest.qmp("stop")
        try:
            guest.qmp("migrate", uri="exec:cat > " + shlex.quote(str(state)))
            _wait_migrated(guest, Deadline(timeout, "snapshot save"))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        finally:
            if guest.running():
                guest.qmp("cont")
        paused = time.monotonic() - started
        store.publish(snap.artifact, staging, snap.inputs,
                      {"target": guest.record.target, "cpu_model": guest.record.cpu_model,
                       "save_seconds": round(paused, 3),
                       "state_bytes": state.stat().st_size})
        return paused


def _wait_migrated(guest, deadline: Deadline) -> None:
    while True:
        if not guest.running():
            raise GuestError(f"QEMU exited while saving the snapshot (status {guest.exit_code()}); "
                             f"stderr: {guest.stderr().strip()[-400:] or '(empty)'}",
                             guest.console.tail())
        info = guest.qmp("query-migrate")
        status = info.get("status", "")
        if status == "completed":
            return
        if status in ("failed", "cancelled"):
            raise GuestError(f"saving the snapshot failed: {info.get('error-desc', status)}",
                             guest.console.tail())
        if deadline.expired():
            raise GuestError(f"saving the snapshot took over {deadline.seconds:g}s "
                             f"(migration status {status!r})", guest.console.tail())
        deadline.sleep(0.02)


def discard(snap: Snapshot, store: Store) -> None:
    """Remove a snapshot that did not restore, so the next `lab up` takes a new one."""
    with store.lock(snap.artifact):
        shutil.rmtree(snap.artifact.path, ignore_errors=True)
