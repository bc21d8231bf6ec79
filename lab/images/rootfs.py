"""Root filesystem recipes: busybox + dropbear from Debian source, packed as initramfs.

Binaries are dynamically linked (static glibc crashes on Alpha), so the image
carries the loader and the libraries they need, taken from the cross sysroot.
Each image gets its own SSH host key, made at build time by running the guest's
own dropbearkey under qemu-user; the public half is kept beside the image so the
client can pin it.
"""

from __future__ import annotations

import functools
import shutil
import stat
import types
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..cache import Artifact, file_digest
from ..config import ARCHES
from ..errors import LabError
from ..keys import ensure_client_key
from ..paths import project_root
from ..runner import require, run
from . import cpio
from .steps import BuildContext, Step
from .toolchain import (apply_patches, apt_get_source, patch_digests, source_patches, sysroot,
                        tool_version)

RECIPE_DIR = "images/rootfs"
INITRAMFS = "initramfs.cpio.gz"
HOST_KEY_PUB = "host_key.pub"
DROPBEAR_PATCHES = "images/patches/dropbear"
# -O2 as Debian builds them, not upstream's -Os, for dropbear and the libsodium
# it links: every SSH connection's key exchange and host-key signature run there.
DROPBEAR_CFLAGS = "-O2"


def recipe() -> Mapping[str, Any]:
    """rootfs.yaml, parsed once per version of the file: every step key and image
    lookup reads it (16 times for one `lab up`, 10 ms of YAML parsing)."""
    path = project_root() / RECIPE_DIR / "rootfs.yaml"
    st = path.stat()
    return _parsed_recipe(str(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=4)
def _parsed_recipe(path: str, mtime_ns: int, size: int) -> Mapping[str, Any]:
    with open(path, encoding="utf-8") as f:
        return types.MappingProxyType(yaml.safe_load(f))


def guest_tool_sources() -> list[Path]:
    return sorted((project_root() / RECIPE_DIR / "src").glob("*.c"))


class DebianSource(Step):
    """``apt-get source PACKAGE=VERSION``, unpacked with Debian's patches applied."""

    kind = "deb-source"

    def __init__(self, package: str, version: str):
        self.package, self.version = package, version

    @property
    def name(self) -> str:
        return self.package

    def inputs(self) -> Mapping[str, Any]:
        return {"package": self.package, "version": self.version}

    def build(self, ctx: BuildContext, out: Path, deps: Mapping[str, Artifact]) -> Mapping[str, Any]:
        require("apt-get", "apt")
        require("dpkg-source", "dpkg-dev")
        ctx.status(f"fetching source {self.package} {self.version}")
        dl = out / "dl"
        dl.mkdir()
        apt_get_source(f"{self.package}={self.version}", cwd=dl, log=ctx.log_for(self))
        trees = [p for p in dl.iterdir() if p.is_dir()]
        if len(trees) != 1:
            raise LabError(f"apt-get source {self.package}: expected one source tree, got {trees}")
        trees[0].rename(out / "src")
        shutil.rmtree(dl)
        return {}


class _CrossStep(Step):
    """A step built once per guest arch with that arch's cross compiler."""

    def __init__(self, arch: str, toolchain: str, compiler_package: str):
        self.arch, self.toolchain, self.compiler_package = arch, toolchain, compiler_package

    @property
    def name(self) -> str:
        return self.arch

    def cross_inputs(self) -> dict[str, Any]:
        return {"arch": self.arch, "toolchain": self.toolchain,
                "compiler": tool_version(self.toolchain + "gcc", self.compiler_package)}

    def configure(self, build: Path, log: Path, *options: str,
                  env: Mapping[str, str] | None = None) -> None:
        """An autoconf ``./configure`` for this arch, built with ``DROPBEAR_CFLAGS``."""
        run(["./configure", f"--host={self.toolchain.rstrip('-')}", *options], cwd=build, log=log,
            what=f"{self.kind} configure",
            env={"CC": self.toolchain + "gcc", "CFLAGS": DROPBEAR_CFLAGS, **(env or {})})


class Busybox(_CrossStep):
    kind = "busybox"

    def deps(self) -> list[Step]:
        return [DebianSource("busybox", recipe()["sources"]["busybox"])]

    def inputs(self) -> Mapping[str, Any]:
        return {**self.cross_inputs(),
                "config": file_digest(project_root() / RECIPE_DIR / "busybox.config")}

    def build(self, ctx: BuildContext, out: Path, deps: Mapping[str, Artifact]) -> Mapping[str, Any]:
        log = ctx.log_for(self)
        src = deps["deb-source"].path / "src"
        build = out / "build"
        build.mkdir()
        make = ["make", "-C", str(src), f"O={build}", f"CROSS_COMPILE={self.toolchain}",
                f"ARCH={ARCHES[self.arch].kernel_arch}"]
        ctx.status(f"configuring busybox for {self.arch}")
        run([*make, "defconfig"], log=log, what="busybox defconfig")
        _apply_fragment(build / ".config", project_root() / RECIPE_DIR / "busybox.config")
        ctx.status(f"compiling busybox for {self.arch}")
        run([*make, f"-j{ctx.jobs}", "busybox"], log=log, what="busybox build")
        run([*make, f"CONFIG_PREFIX={out / 'root'}", "install"], log=log, what="busybox install")
        shutil.rmtree(build)
        return {}


class Libsodium(_CrossStep):
    """A static libsodium for dropbear's X25519 and Ed25519 (its own TweetNaCl
    code was most of an SSH connection's time under emulation)."""

    kind = "libsodium"

    def deps(self) -> list[Step]:
        return [DebianSource("libsodium", recipe()["sources"]["libsodium"])]

    def inputs(self) -> Mapping[str, Any]:
        return {**self.cross_inputs(), "cflags": DROPBEAR_CFLAGS}

    def build(self, ctx: BuildContext, out: Path, deps: Mapping[str, Artifact]) -> Mapping[str, Any]:
        log = ctx.log_for(self)
        build = out / "build"
        shutil.copytree(deps["deb-source"].path / "src", build, symlinks=True)
        ctx.status(f"configuring libsodium for {self.arch}")
        # Debian's source is upstream's git tree: no configure script yet.
        require("autoreconf", "autoconf")
        require("libtoolize", "libtool")
        run(["autoreconf", "-fi"], cwd=build, log=log, what="libsodium autoreconf")
        # --enable-minimal: the primitives dropbear asks for, not the whole API.
        self.configure(build, log, f"--prefix={out}", "--disable-shared", "--enable-static",
                       "--enable-minimal", "--disable-dependency-tracking")
        ctx.status(f"compiling libsodium for {self.arch}")
        run(["make", f"-j{ctx.jobs}", "install"], cwd=build, log=log, what="libsodium build")
        shutil.rmtree(build)
        return {}


class Dropbear(_CrossStep):
    kind = "dropbear"

    def deps(self) -> list[Step]:
        return [DebianSource("dropbear", recipe()["sources"]["dropbear"]),
                Libsodium(self.arch, self.toolchain, self.compiler_package)]

    def inputs(self) -> Mapping[str, Any]:
        return {**self.cross_inputs(), "programs": recipe()["dropbear_programs"],
                "localoptions": file_digest(project_root() / RECIPE_DIR / "dropbear-localoptions.h"),
                "patches": patch_digests(DROPBEAR_PATCHES),
                "cflags": DROPBEAR_CFLAGS}

    def build(self, ctx: BuildContext, out: Path, deps: Mapping[str, Artifact]) -> Mapping[str, Any]:
        log = ctx.log_for(self)
        build = out / "build"
        shutil.copytree(deps["deb-source"].path / "src", build, symlinks=True)
        shutil.copy(project_root() / RECIPE_DIR / "dropbear-localoptions.h", build / "localoptions.h")
        apply_patches(source_patches(DROPBEAR_PATCHES), build, log)
        sodium = deps["libsodium"].path
        ctx.status(f"configuring dropbear for {self.arch}")
        self.configure(build, log, "--disable-zlib", "--disable-lastlog", "--disable-utmp",
                       "--disable-utmpx", "--disable-wtmp", "--disable-wtmpx",
                       "--disable-pututline", "--disable-pututxline", "--disable-harden",
                       env={"CPPFLAGS": f"-I{sodium / 'include'}",
                            "LDFLAGS": f"-L{sodium / 'lib'}", "LIBS": "-lsodium"})
        programs = recipe()["dropbear_programs"]
        ctx.status(f"compiling dropbear for {self.arch}")
        run(["make", f"-j{ctx.jobs}", "PROGRAMS=" + " ".join(programs)], cwd=build, log=log,
            what="dropbear build")
        (out / "bin").mkdir()
        for prog in programs:
            shutil.copy2(build / prog, out / "bin" / prog)
        shutil.rmtree(build)
        return {}


def _apply_fragment(config: Path, fragment: Path) -> None:
    """Set each symbol of a Kconfig fragment in ``config`` (busybox has no merge_config.sh)."""
    from .kernel import parse_config
    want = parse_config(fragment.read_text())
    lines = []
    for line in config.read_text().splitlines():
        sym = next((s for s in want if line.startswith(s + "=") or line == f"# {s} is not set"), None)
        lines.append(line if sym is None else _config_line(sym, want.pop(sym)))
    lines += [_config_line(s, v) for s, v in want.items()]
    config.write_text("\n".join(lines) + "\n")


def _config_line(sym: str, value: str) -> str:
    return f"# {sym} is not set" if value == "n" else f"{sym}={value}"


def needed_libraries(binaries: list[Path], root: str, toolchain: str) -> list[Path]:
    """The loader and shared libraries ``binaries`` need, resolved in the sysroot, transitively."""
    readelf = require(toolchain + "readelf", "binutils-" + toolchain.rstrip("-"))
    libdir = Path(root) / "lib"
    found: dict[str, Path] = {}
    queue = list(binaries)
    while queue:
        elf = queue.pop()
        text = run([readelf, "-d", "-l", "-W", str(elf)], what="readelf")
        names = []
        for line in text.splitlines():
            if "(NEEDED)" in line and "[" in line:
                names.append(line.rsplit("[", 1)[1].rstrip("]"))
            elif "Requesting program interpreter:" in line:
                names.append(Path(line.split(":", 1)[1].strip().rstrip("]")).name)
        for n in names:
            if n not in found:
                p = libdir / n
                if not p.exists():
                    raise LabError(f"{elf.name} needs {n}, which is not in {libdir}")
                found[n] = p
                queue.append(p.resolve())
    return sorted(found.values())


class Rootfs(_CrossStep):
    """busybox + dropbear + libraries + our overlay + keys, as a gzipped cpio."""

    kind = "rootfs"
    helper_modules = ("lab.images.cpio",)

    def deps(self) -> list[Step]:
        args = (self.arch, self.toolchain, self.compiler_package)
        return [Busybox(*args), Dropbear(*args)]

    def inputs(self) -> Mapping[str, Any]:
        overlay = project_root() / RECIPE_DIR / "overlay"
        files = {str(p.relative_to(overlay)): file_digest(p) + oct(p.stat().st_mode)
                 for p in sorted(overlay.rglob("*")) if p.is_file()}
        tools = {p.name: file_digest(p) for p in guest_tool_sources()}
        return {**self.cross_inputs(), "overlay": files, "tools": tools,
                "client_key": ensure_client_key()[1]}

    def build(self, ctx: BuildContext, out: Path, deps: Mapping[str, Artifact]) -> Mapping[str, Any]:
        ctx.status(f"assembling root filesystem for {self.arch}")
        root = out / "root"
        shutil.copytree(deps["busybox"].path / "root", root, symlinks=True)
        for d in ("proc", "sys", "dev", "tmp", "run", "etc/dropbear", "root/.ssh", "lib",
                  "var/log", "var/run", "usr/bin", "usr/sbin"):
            (root / d).mkdir(parents=True, exist_ok=True)
        shutil.copytree(project_root() / RECIPE_DIR / "overlay", root, dirs_exist_ok=True)
        (root / "root/.keep").unlink(missing_ok=True)
        bins = deps["dropbear"].path / "bin"
        for prog in recipe()["dropbear_programs"]:
            dest = root / ("usr/sbin" if prog == "dropbear" else "usr/bin") / prog
            shutil.copy2(bins / prog, dest)
        tools = self._compile_tools(ctx, root / "usr/sbin")
        elves = [root / "bin/busybox", *(bins / p for p in recipe()["dropbear_programs"]), *tools]
        sroot = sysroot(self.toolchain)
        for lib in needed_libraries(elves, sroot, self.toolchain):
            shutil.copy2(lib.resolve(), root / "lib" / lib.name)
        pub = self._make_host_key(ctx, root, sroot)
        (out / HOST_KEY_PUB).write_text(pub + "\n")
        auth = root / "root/.ssh/authorized_keys"
        auth.write_text(ensure_client_key()[1] + "\n")
        auth.chmod(0o600)
        (root / "root/.ssh").chmod(0o700)
        (root / "root").chmod(0o700)
        # rcS reads the SSH server's log through the FIFO until the host's first login.
        entries = [cpio.Entry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1)),
                   cpio.Entry("dev/null", stat.S_IFCHR | 0o666, rdev=(1, 3)),
                   cpio.Entry("var/run/dropbear-log", stat.S_IFIFO | 0o600)]
        cpio.write_gz(sorted(cpio.entries_from_tree(root) + entries, key=lambda e: e.name),
                      out / INITRAMFS)
        shutil.rmtree(root)
        return {"initramfs": INITRAMFS, "host_key_pub": HOST_KEY_PUB}

    def _compile_tools(self, ctx: BuildContext, dest: Path) -> list[Path]:
        """lab's own small guest programs (images/rootfs/src/*.c), one binary each."""
        out = []
        for src in guest_tool_sources():
            binary = dest / src.stem
            # Dynamic, like busybox: static glibc binaries crash on Alpha.
            run([self.toolchain + "gcc", "-O2", "-Wall", "-o", str(binary), str(src)],
                log=ctx.log_for(self), what=f"{src.name} build")
            out.append(binary)
        return out

    def _make_host_key(self, ctx: BuildContext, root: Path, sroot: str) -> str:
        spec = ARCHES[self.arch]
        qemu = require(spec.user_qemu, "qemu-user")
        key = root / "etc/dropbear/host_key"
        keygen = [qemu, "-L", sroot, str(root / "usr/bin/dropbearkey")]
        log = ctx.log_for(self)
        run([*keygen, "-t", "ed25519", "-f", str(key)], log=log, what="dropbearkey (host key)")
        text = run([*keygen, "-y", "-f", str(key)], log=log, what="dropbearkey -y")
        for line in text.splitlines():
            if line.startswith("ssh-ed25519 "):
                return " ".join(line.split()[:2])
        raise LabError(f"dropbearkey -y printed no ssh-ed25519 line:\n{text}")
