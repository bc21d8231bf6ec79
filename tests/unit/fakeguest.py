"""What unit tests of guests share: the fake QEMU (tests/fakes) and images to hand it."""

import time
from pathlib import Path

from lab.config import load_lab
from lab.guest.qemu import BootVerdict, Guest
from lab.images import GuestImages

FAKES = Path(__file__).resolve().parent.parent / "fakes"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFg5Tj+zjpv4FCKL7YEmTvKH6x5g6aVJND+pxbdVNEzC"


def images(tmp_path: Path, kernel_key: str = "k", rootfs_key: str = "r") -> GuestImages:
    return GuestImages(kernel=tmp_path / f"vmlinux-{kernel_key}", kernel_build=tmp_path,
                       kernel_release="6.1.0", initramfs=tmp_path / f"initramfs-{rootfs_key}.cpio.gz",
                       host_key=HOST_KEY, kernel_key=kernel_key, rootfs_key=rootfs_key)


class FakeConnection:
    """Stands in for lab.ssh.Connection where the fake guest has no SSH server."""

    closed = False

    def connect(self) -> "FakeConnection":
        return self

    def close(self) -> None:
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def wait_for_ready_mark(guest, deadline) -> None:
    """Until the fake guest's console shows the ready mark (it has no SSH server behind
    it); a BootVerdict if QEMU exits first or the deadline passes."""
    while not deadline.expired():
        guest.console.poll()
        if "sshd ready" in guest.console.user_text():
            return
        code = guest.exit_code()
        if code is not None:
            raise BootVerdict("qemu-exit", "exited", guest.console.tail(), exit_code=code)
        time.sleep(0.02)
    raise BootVerdict("timeout", "no ready mark")


def up_on_fake_qemu(monkeypatch, tmp_path):
    """For a fixture to yield from: lifecycle.up() of a target on the fake QEMU, whose
    connection is a FakeConnection once the console shows the ready mark; every guest
    it started is stopped at the end."""
    import lab.guest.lifecycle as lc
    monkeypatch.setattr(lc, "images_for", lambda lab, target, store: images(tmp_path))
    monkeypatch.setattr(lc, "choose_accel", lambda *a: "tcg")
    monkeypatch.setattr(lc, "SETTLE_BEFORE_SAVE", 0.0)
    monkeypatch.setattr(Guest, "connection", lambda self, **kw: FakeConnection())
    monkeypatch.setattr(Guest, "wait_ready", lambda self, deadline, silence, after=40.0:
                        wait_for_ready_mark(self, deadline) or self.connection().connect())
    lab = load_lab()
    started = []

    def bring_up(target="i386-up", **kw):
        guest, conn = lc.up(lab, lab.target(target), **kw)
        started.append(guest)
        return guest
    yield bring_up
    for g in started:
        g.shutdown(hard_only=True)
