"""Guest images: what each target boots (a kernel build and a root filesystem)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..cache import Store
from ..config import Lab, Target
from ..errors import LabError
from .kernel import KernelBuild
from .rootfs import HOST_KEY_PUB, INITRAMFS, Rootfs
from .steps import Step


def kernel_step(lab: Lab, target: Target) -> KernelBuild:
    return KernelBuild(lab.profile_of(target), target.arch)


def rootfs_step(lab: Lab, target: Target) -> Rootfs:
    build = lab.profile_of(target).arches[target.arch]
    if lab.profile_of(target).rootfs_format != "initramfs":
        raise LabError(f"{target.path}: kernel profile {target.kernel!r} wants an initrd image; "
                       "this lab version builds initramfs only")
    return Rootfs(target.arch, build.toolchain, build.compiler_package)


def target_steps(lab: Lab, target: Target) -> list[Step]:
    return [kernel_step(lab, target), rootfs_step(lab, target)]


@dataclass(frozen=True)
class GuestImages:
    """Paths of a target's built images, and their keys (recorded with each guest)."""

    kernel: Path
    kernel_build: Path       # O= build tree: external modules build against it
    kernel_release: str
    initramfs: Path
    host_key: str            # "ssh-ed25519 AAAA..."
    kernel_key: str
    rootfs_key: str


def images_for(lab: Lab, target: Target, store: Store) -> GuestImages:
    """The built images of ``target``; LabError if any is missing."""
    k, r = kernel_step(lab, target), rootfs_step(lab, target)
    ka, ra = k.artifact(store), r.artifact(store)
    for art in (ka, ra):
        if not art.exists():
            raise LabError(f"{art.kind} {art.name} for {target.name} is not built: "
                           f"run `lab images build {target.name}`")
    km = ka.manifest()
    return GuestImages(
        kernel=ka.path / km["image"], kernel_build=ka.path / "build",
        kernel_release=km["release"],
        initramfs=ra.path / INITRAMFS, host_key=(ra.path / HOST_KEY_PUB).read_text().strip(),
        kernel_key=ka.key, rootfs_key=ra.key)
