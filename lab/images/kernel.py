"""Kernel recipes: unpack and patch the profile's source, configure, build.

The source tree is one artifact per profile (shared by every arch); each arch
builds out of tree (O=) into its own artifact, which keeps .config,
Module.symvers and the bootable image: external modules build against it.
"""

from __future__ import annotations

import os
import re
import tarfile
from pathlib import Path
from typing import Any, Mapping

from ..cache import Artifact, file_digest
from ..config import KernelProfile
from ..errors import LabError
from ..paths import project_root
from ..runner import require, run
from .steps import BuildContext, Step
from .toolchain import debian_package_version, tool_version

MAKE_PACKAGES = {"make": "make", "bison": "bison", "flex": "flex", "bc": "bc", "patch": "patch"}


def _file_inputs(paths: tuple[str, ...]) -> dict[str, str]:
    root = project_root()
    out = {}
    for rel in paths:
        p = root / rel
        if not p.is_file():
            raise LabError(f"{rel}: file named by the kernel profile does not exist")
        out[rel] = file_digest(p)
    return out


class KernelSource(Step):
    """The profile's kernel source, unpacked and patched."""

    kind = "kernel-source"

    def __init__(self, profile: KernelProfile):
        self.profile = profile

    @property
    def name(self) -> str:
        return self.profile.name

    def _tarball(self) -> Path:
        src = self.profile.source
        if src.kind == "debian-package":
            debian_package_version(src.package)
            tars = sorted(Path("/usr/src").glob(f"{src.package}.tar.*"))
            if not tars:
                raise LabError(f"{src.package} is installed but /usr/src/{src.package}.tar.* is missing")
            return tars[0]
        return Path(src.path)

    def inputs(self) -> Mapping[str, Any]:
        src = self.profile.source
        if src.kind == "debian-package":
            origin = {"package": src.package, "version": debian_package_version(src.package)}
        elif src.kind == "tarball":
            st = Path(src.path).stat()
            origin = {"tarball": src.path, "size": st.st_size, "mtime": int(st.st_mtime)}
        else:
            raise LabError(f"{self.profile.path}: source.kind 'tree' (bring-your-own tree) "
                           "is not supported by this lab version yet")
        return {"origin": origin, "patches": _file_inputs(self.profile.patches)}

    def build(self, ctx: BuildContext, out: Path, deps: Mapping[str, Artifact]) -> Mapping[str, Any]:
        log = ctx.log_for(self)
        tarball = self._tarball()
        ctx.status(f"unpacking {tarball.name}")
        with tarfile.open(tarball) as tf:
            tf.extractall(out, filter="fully_trusted")
        tops = [p for p in out.iterdir() if p.is_dir()]
        if len(tops) != 1:
            raise LabError(f"{tarball}: expected one top-level directory, found {len(tops)}")
        tops[0].rename(out / "src")
        require("patch", "patch")
        for rel in self.profile.patches:
            ctx.status(f"applying {Path(rel).name}")
            run(["patch", "-p1", "--forward", "-i", str(project_root() / rel)],
                cwd=out / "src", log=log, what=f"patch {rel}")
        return {"tarball": str(tarball)}


class KernelBuild(Step):
    """One profile built for one arch: config from defconfig + fragments, then make."""

    kind = "kernel"

    def __init__(self, profile: KernelProfile, arch: str):
        self.profile = profile
        self.arch = arch
        self.spec = profile.arches[arch]
        self.source = KernelSource(profile)

    @property
    def name(self) -> str:
        return f"{self.profile.name}-{self.arch}"

    def deps(self) -> list[Step]:
        return [self.source]

    def inputs(self) -> Mapping[str, Any]:
        cc = self.spec.toolchain + "gcc"
        return {
            "arch": self.arch,
            "defconfig": self.spec.defconfig,
            "fragments": _file_inputs(self.spec.fragments),
            "make_targets": list(self.spec.make_targets),
            "compiler": tool_version(cc, self.spec.compiler_package),
        }

    def cross_make_vars(self, jobs: int = 1) -> list[str]:
        """make arguments that select this arch and its cross toolchain."""
        return [f"ARCH={self.arch_kernel()}", f"CROSS_COMPILE={self.spec.toolchain}", f"-j{jobs}"]

    def make_argv(self, src: Path, out: Path, *targets: str, jobs: int = 1) -> list[str]:
        return ["make", "-C", str(src), f"O={out}", *self.cross_make_vars(jobs), *targets]

    def build(self, ctx: BuildContext, out: Path, deps: Mapping[str, Artifact]) -> Mapping[str, Any]:
        for tool, pkg in MAKE_PACKAGES.items():
            require(tool, pkg)
        log = ctx.log_for(self)
        src = deps["kernel-source"].path / "src"
        build = out / "build"
        build.mkdir()
        ctx.status(f"configuring {self.name}")
        run(self.make_argv(src, build, self.spec.defconfig), log=log, what="make defconfig")
        fragments = [str(project_root() / f) for f in self.spec.fragments]
        run([str(src / "scripts/kconfig/merge_config.sh"), "-m", "-O", str(build),
             str(build / ".config"), *fragments], cwd=build, log=log,
            env={"ARCH": self.arch_kernel(), "CROSS_COMPILE": self.spec.toolchain},
            what="merge_config.sh")
        run(self.make_argv(src, build, "olddefconfig"), log=log, what="make olddefconfig")
        run(self.make_argv(src, build, "mod2noconfig"), log=log, what="make mod2noconfig")
        check_config(build / ".config", fragments)
        ctx.status(f"compiling {self.name} (log: {log})")
        run(self.make_argv(src, build, *self.spec.make_targets, jobs=ctx.jobs), log=log,
            what=f"kernel build {self.name}")
        image = build / self.spec.image
        if not image.is_file():
            raise LabError(f"kernel build {self.name} finished but {image} is missing (log: {log})")
        release = (build / "include/config/kernel.release").read_text().strip()
        return {"image": str(Path("build") / self.spec.image), "release": release,
                "source_key": deps["kernel-source"].key}

    def arch_kernel(self) -> str:
        from ..config import ARCHES
        return ARCHES[self.arch].kernel_arch


_LINE = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$|^# (CONFIG_[A-Za-z0-9_]+) is not set$")


def parse_config(text: str) -> dict[str, str]:
    """Kconfig lines to {symbol: value}; 'is not set' becomes 'n'."""
    out = {}
    for line in text.splitlines():
        m = _LINE.match(line.strip())
        if m:
            if m.group(1):
                out[m.group(1)] = m.group(2)
            else:
                out[m.group(3)] = "n"
    return out


def check_config(config: Path, fragments: list[str]) -> None:
    """Every value the fragments ask for must be in the final .config, or the build stops.
    As in merge_config.sh, a later fragment's value for a symbol replaces an earlier one's."""
    final = parse_config(config.read_text())
    asked: dict[str, tuple[str, str]] = {}
    for frag in fragments:
        for sym, want in parse_config(Path(frag).read_text()).items():
            asked[sym] = (want, os.path.basename(frag))
    wrong = []
    for sym, (want, frag_name) in asked.items():
        have = final.get(sym, "n")
        if have != want:
            wrong.append(f"{sym}={want} (got {have}) from {frag_name}")
    if wrong:
        raise LabError("kernel config does not honour the fragments:\n  " + "\n  ".join(wrong))
