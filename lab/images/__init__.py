"""Guest images: what each target boots (a kernel build and a root filesystem)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..cache import Store
from ..config import Lab, Target
from ..errors import LabError
from .kernel import KernelBuild
from .palcode import Palcode
from .rootfs import HOST_KEY_PUB, INITRAMFS, Rootfs
from .steps import Step


def kernel_step(lab: Lab, target: Target) -> KernelBuild:
    from .variant import VariantKernelBuild
    if target.config:
        return VariantKernelBuild(lab.profile_of(target), target.arch, target.config)
    return KernelBuild(lab.profile_of(target), target.arch)


def rootfs_step(lab: Lab, target: Target) -> Rootfs:
    build = lab.profile_of(target).arches[target.arch]
    return Rootfs(target.arch, build.toolchain, build.compiler_package)


def palcode_step(target: Target) -> Palcode | None:
    return Palcode() if target.palcode == "lab" else None


def target_steps(lab: Lab, target: Target) -> list[Step]:
    pal = palcode_step(target)
    return [kernel_step(lab, target), rootfs_step(lab, target), *([pal] if pal else [])]


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
    bios: Path | None = None      # firmware for -bios (the lab's Alpha PALcode)
    bios_key: str = ""


def images_for(lab: Lab, target: Target, store: Store) -> GuestImages:
    """The built images of ``target``; LabError if any is missing."""
    k, r, pal = kernel_step(lab, target), rootfs_step(lab, target), palcode_step(target)
    ka, ra = k.artifact(store), r.artifact(store)
    pa = pal.artifact(store) if pal else None
    for art in (ka, ra, *([pa] if pa else [])):
        if not art.exists():
            raise LabError(f"{art.kind} {art.name} for {target.name} is not built: "
                           f"run `lab images build {target.name}`")
    km = ka.manifest()
    return GuestImages(
        kernel=ka.path / km["image"], kernel_build=ka.path / "build",
        kernel_release=km["release"],
        initramfs=ra.path / INITRAMFS, host_key=(ra.path / HOST_KEY_PUB).read_text().strip(),
        kernel_key=ka.key, rootfs_key=ra.key,
        bios=pa.path / pa.manifest()["image"] if pa else None, bios_key=pa.key if pa else "")
