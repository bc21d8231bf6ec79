"""`lab up` / `lab down`: the small state machine off -> launched -> ready (-> off)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterator

from . import snapshot
from .accel import choose_accel
from ..cache import Store
from ..config import Lab, Target
from ..deadline import Deadline
from ..errors import GuestError, LabError
from .qemu import BootVerdict, Guest
from ..images import GuestImages, images_for
from ..paths import cache_dir
from ..ssh import Connection
from .state import GuestRecord, all_records, load

# Seconds between closing lab's first SSH session and saving the snapshot.
SETTLE_BEFORE_SAVE = 0.3


def up(lab: Lab, target: Target, *, images: GuestImages | None = None, name: str | None = None,
       smp: int | None = None, memory: int | None = None, accel: str = "auto",
       timeout: float | None = None, extra_cmdline: str = "", cold: bool = False,
       status: Callable[[str], None] = lambda m: None,
       verbose: Callable[[str], None] = lambda m: None) -> tuple[Guest, Connection]:
    """Bring up a guest of ``target`` and return it with an open SSH connection.

    ``images``: the target's built images (lab.build.ensure_images builds what is
    missing and returns them); without them they must be built already. The guest is
    restored from the target's post-boot snapshot when there is one (unless ``cold``,
    LAB_SNAPSHOTS=0, or the target cannot be snapshotted), else booted; a cold boot
    saves the snapshot for next time. Any failure, Ctrl-C included, tears the
    half-started guest down.
    """
    store = Store(cache_dir())
    images = images or images_for(lab, target, store)
    chosen = choose_accel(target, images.kernel, images.kernel_key, accel)
    if accel == "kvm" and chosen != "kvm":
        raise LabError(f"KVM was asked for, but a probe boot of {target.name} under KVM failed "
                       f"(see {cache_dir() / 'kvm-probe.json'})")
    boot = _Boot(target, images, name or target.name, chosen, smp or target.smp,
                 memory or target.memory, extra_cmdline, timeout or target.timeouts.boot,
                 status, verbose)
    snap, note = None, "--cold" if cold else None
    if note is None and not snapshot.enabled():
        note = "LAB_SNAPSHOTS=0"
    if note is None:
        note = snapshot.why_not(target, chosen)
    if note is None:
        snap = snapshot.snapshot_for(target, images, chosen, boot.smp, boot.memory,
                                     extra_cmdline, store)
        if snap.exists():
            restored, note = boot.restore(snap, store)
            if restored is not None:
                return restored
    guest, conn = boot.cold()
    with guest.torn_down_on_failure():
        if snap is not None and not snap.exists():
            conn, not_saved = boot.save_snapshot(guest, conn, snap, store)
            note = not_saved or note
        guest.record.snapshot_note = note or ""
        guest.record.save()
    return guest, conn


class _Boot:
    """One `lab up`: the guest's settings, and the ways to bring it up."""

    def __init__(self, target: Target, images: GuestImages, name: str, accel: str, smp: int,
                 memory: int, extra_cmdline: str, timeout: float, status, verbose):
        self.target, self.images, self.name, self.accel = target, images, name, accel
        self.smp, self.memory, self.extra_cmdline, self.timeout = smp, memory, extra_cmdline, timeout
        self.status, self.verbose = status, verbose

    @contextmanager
    def started(self, incoming: str | None = None) -> Iterator[Guest]:
        """A launched QEMU, for the steps that make it ready: any failure among them
        (BootVerdict, another error, Ctrl-C) stops it and removes its run directory
        (Guest.torn_down_on_failure), then goes on up."""
        guest = Guest.launch(self.target, self.images, self.name, self.accel, self.smp,
                             self.memory, self.extra_cmdline, log=self.verbose,
                             incoming=incoming)
        with guest.torn_down_on_failure():
            yield guest

    def cold(self) -> tuple[Guest, Connection]:
        """Boot the kernel; a boot the emulator lost is booted again, boot_retries times."""
        attempts = 1 + self.target.boot_retries
        for attempt in range(1, attempts + 1):
            self.status(f"booting {self.name} ({self.target.accel_arg(self.accel, self.smp)}, "
                        f"{self.smp} CPU)"
                        + (f", attempt {attempt} of {attempts}" if attempt > 1 else ""))
            # From before QEMU starts: the boot timeout runs from QEMU start to SSH.
            deadline = Deadline(self.timeout, f"boot of {self.target.name}")
            try:
                with self.started() as guest:
                    conn = guest.wait_ready(deadline, self.target.timeouts.silence,
                                            self.target.timeouts.ssh_after_ready)
                    guest.record.boot_attempts = attempt
                    guest.record.ready_seconds = round(deadline.elapsed(), 3)
                    guest.record.save()
                    return guest, conn
            except BootVerdict as e:
                if e.emulator_fault and attempt < attempts:
                    self.verbose(f"boot attempt {attempt} lost to the emulator ({e.outcome}); "
                                 "booting again")
                    continue
                raise
        raise AssertionError("unreachable")

    def restore(self, snap: snapshot.Snapshot, store: Store) -> tuple[tuple[Guest, Connection] | None, str | None]:
        """The guest restored from ``snap``; (None, why) if it did not restore, after
        discarding the snapshot."""
        self.status(f"restoring {self.name} from its snapshot ({self.accel}, {self.smp} CPU)")
        deadline = Deadline(self.timeout, f"restore of {self.target.name}")
        try:
            with self.started(incoming=snapshot.incoming_uri(snap.state)) as guest:
                conn = guest.wait_restored(deadline, self.target.timeouts.ssh_after_ready)
                guest.record.ready_seconds = round(deadline.elapsed(), 3)
                guest.record.cpu_model = snap.artifact.manifest().get("cpu_model", "")
                guest.record.save()
                return (guest, conn), None
        except BootVerdict as e:
            snapshot.discard(snap, store)
            note = f"the snapshot did not restore ({e}); it was discarded and the guest booted cold"
            self.status(note)
            return None, note

    def save_snapshot(self, guest: Guest, conn: Connection, snap: snapshot.Snapshot,
                      store: Store) -> tuple[Connection, str | None]:
        """Save ``snap`` from the freshly booted guest, then give it back to the user
        refreshed and connected. A snapshot that cannot be saved only costs a note,
        unless the guest died of it. The caller tears the guest down on any error."""
        self.status(f"saving a snapshot of {self.name} for the next `lab up`")
        conn.close()
        note = None
        try:
            # No SSH session inside the snapshot: let the server's child for ours end.
            time.sleep(SETTLE_BEFORE_SAVE)
            paused = snapshot.save(guest, snap, store, self.timeout)
            self.verbose(f"snapshot saved in {paused:.2f}s: {snap.artifact.path}")
            # The running guest and every restore start from the same state: this
            # one gets fresh randomness too.
            guest.freshen(Deadline(self.timeout, "refresh after the snapshot"))
        except (GuestError, LabError, OSError) as e:    # OSError: a full or read-only cache
            if not guest.running():
                raise
            note = f"no snapshot saved: {e}"
            self.status(note)
        return guest.connection().connect(), note


def find(name: str) -> GuestRecord:
    rec = load(name)
    if rec is None:
        running = ", ".join(r.name for r in all_records()) or "none"
        raise LabError(f"no guest named {name!r} is running (running: {running})")
    return rec


def down(name: str, soft_timeout: float = 20.0) -> str:
    rec = find(name)
    return Guest(rec).shutdown(soft_timeout)
