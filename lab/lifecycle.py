"""`lab up` / `lab down`: the small state machine off -> launched -> ready (-> off)."""

from __future__ import annotations

from typing import Callable

from .accel import choose_accel
from .cache import Store
from .config import Lab, Target
from .deadline import Deadline
from .errors import LabError
from .guest import BootVerdict, Guest
from .images import images_for, target_steps
from .images.steps import plan
from .paths import cache_dir
from .ssh import Connection
from .state import GuestRecord, all_records, load


def ensure_images(lab: Lab, target: Target, status: Callable[[str], None]) -> None:
    from .build import build_targets
    store = Store(cache_dir())
    if plan(target_steps(lab, target), store).to_build:
        status(f"building images for {target.name}")
        build_targets(lab, [target], status=status)


def up(lab: Lab, target: Target, *, name: str | None = None, smp: int | None = None,
       memory: int | None = None, accel: str = "auto", timeout: float | None = None,
       extra_cmdline: str = "", status: Callable[[str], None] = lambda m: None,
       verbose: Callable[[str], None] = lambda m: None) -> tuple[Guest, Connection]:
    """Boot a guest of ``target`` and return it with an open SSH connection.

    Any failure, Ctrl-C included, tears the half-started guest down.
    """
    ensure_images(lab, target, status)
    images = images_for(lab, target, Store(cache_dir()))
    chosen = choose_accel(target, images.kernel, images.kernel_key, accel)
    if accel == "kvm" and chosen != "kvm":
        raise LabError(f"KVM was asked for, but a probe boot of {target.name} under KVM failed "
                       f"(see {cache_dir() / 'kvm-probe.json'})")
    attempts = 1 + target.boot_retries
    for attempt in range(1, attempts + 1):
        status(f"booting {name or target.name} ({chosen}, {smp or target.smp} CPU)"
               + (f", attempt {attempt} of {attempts}" if attempt > 1 else ""))
        guest = Guest.launch(target, images, name or target.name, chosen, smp, memory,
                             extra_cmdline, log=verbose)
        try:
            deadline = Deadline(timeout or target.timeouts.boot, f"boot of {target.name}")
            conn = guest.wait_ready(deadline, target.timeouts.silence,
                                    target.timeouts.ssh_after_ready)
        except BootVerdict as e:
            guest.shutdown(hard_only=True)
            if e.emulator_fault and attempt < attempts:
                verbose(f"boot attempt {attempt} lost to the emulator ({e.verdict}); booting again")
                continue
            raise
        except BaseException:
            guest.shutdown(hard_only=True)
            raise
        guest.record.boot_attempts = attempt
        guest.record.save()
        return guest, conn
    raise AssertionError("unreachable")


def find(name: str) -> GuestRecord:
    rec = load(name)
    if rec is None:
        running = ", ".join(r.name for r in all_records()) or "none"
        raise LabError(f"no guest named {name!r} is running (running: {running})")
    return rec


def down(name: str, soft_timeout: float = 20.0) -> str:
    rec = find(name)
    return Guest(rec).shutdown(soft_timeout)
