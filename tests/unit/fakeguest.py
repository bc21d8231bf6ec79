"""What unit tests of guests share: the fake QEMU (tests/fakes) and images to hand it."""

from pathlib import Path

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
