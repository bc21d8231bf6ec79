"""The Alpha PALcode (firmware) for QEMU's clipper machine, built from Debian's qemu source.

QEMU's own palcode-clipper is built for EV67: it finds the asserted interrupt
with `cttz`, an EV67-only instruction, so a guest on `-cpu ev6`, `pca56` or
`ev56` dies at its first device interrupt. This step builds the same PALcode
from the source of the installed QEMU (Debian's qemu package, roms/qemu-palcode)
with our patches (images/patches/qemu-palcode/), the way Debian builds it, and
targets that need it boot it with `-bios`.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tarfile
import urllib.request
from pathlib import Path
from typing import Any, Mapping

from ..cache import Artifact, file_digest
from ..errors import LabError
from ..runner import require, run
from .steps import BuildContext, Step
from .toolchain import (apt_get_source, apply_patches, debian_package_version, patch_digests,
                        source_patches, tool_version)

PATCHES = "images/patches/qemu-palcode"
IMAGE = "palcode-clipper"
QEMU_PACKAGE = "qemu-system-misc"   # the binary package that ships qemu-system-alpha
TOOLCHAIN = "alpha-linux-gnu-"
FETCH_TIMEOUT = 120.0   # seconds without data before a source download is given up


@functools.lru_cache(maxsize=None)
def qemu_source_version() -> str:
    """The source version QEMU was built from (binary rebuilds add "+bN" to the binary's)."""
    debian_package_version(QEMU_PACKAGE)  # installed, or a LabError naming the package
    p = subprocess.run(["dpkg-query", "-W", "-f=${source:Version}", QEMU_PACKAGE],
                       stdout=subprocess.PIPE, text=True, check=True)
    return p.stdout.strip()


def fetch_orig_tarball(spec: str, into: Path, log: Path) -> Path:
    """Download the upstream tarball of source package ``spec`` ("name=version") into ``into``.

    Only the tarball is fetched, checked against the SHA256 of apt's source index:
    `apt-get source` wants the .dsc and Debian diff as well, and mirrors do not
    always carry those for backports (deb.debian.org answers 404 for qemu's
    bookworm-backports .dsc), while the tarball is all this step reads.
    """
    for line in apt_get_source(spec, "--print-uris").splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0].startswith("'") and ".orig.tar." in parts[1]:
            url, name, size, digest = parts[0].strip("'"), parts[1], int(parts[2]), parts[3]
            break
    else:
        raise LabError(f"apt-get source --print-uris {spec}: no upstream tarball listed")
    algo, _, want = digest.partition(":")
    if algo.lower() != "sha256":
        raise LabError(f"apt-get source --print-uris {spec}: {name} has a {algo} sum, not SHA256")
    dest = into / name
    with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT) as r, open(dest, "wb") as f:
        shutil.copyfileobj(r, f, 1 << 20)
    got_size, got = dest.stat().st_size, file_digest(dest)
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"\nfetched {url} ({got_size} bytes, sha256 {got})\n")
    if got_size != size or got != want:
        raise LabError(f"{url}: got {got_size} bytes with sha256 {got}, "
                       f"apt's source index says {size} bytes, sha256 {want}")
    return dest


class Palcode(Step):
    kind = "palcode"

    @property
    def name(self) -> str:
        return "clipper"

    def inputs(self) -> Mapping[str, Any]:
        return {"qemu": qemu_source_version(),
                "patches": patch_digests(PATCHES),
                "compiler": tool_version(TOOLCHAIN + "gcc", "gcc-alpha-linux-gnu")}

    def build(self, ctx: BuildContext, out: Path, deps: Mapping[str, Artifact]) -> Mapping[str, Any]:
        require("apt-get", "apt")
        log = ctx.log_for(self)
        version = qemu_source_version()
        dl = out / "dl"
        dl.mkdir()
        ctx.status(f"fetching qemu {version} source")
        orig = fetch_orig_tarball(f"qemu={version}", dl, log)
        src = out / "src"
        ctx.status("unpacking roms/qemu-palcode")
        with tarfile.open(orig) as tf:
            members = [m for m in tf.getmembers() if "/roms/qemu-palcode/" in m.name + "/"]
            if not members:
                raise LabError(f"{orig.name} has no roms/qemu-palcode")
            tf.extractall(src, members=members, filter="fully_trusted")
        tree = next(src.iterdir())          # qemu-10.0.2/
        apply_patches(source_patches(PATCHES), tree, log)
        pal = tree / "roms" / "qemu-palcode"
        ctx.status("building palcode-clipper")
        make = ["make", "-C", str(pal), f"CROSS={TOOLCHAIN}"]
        try:
            run(make + ["-k"], log=log, what="palcode build")
        except LabError:
            # As Debian's rules do: gcc 12 crashes on console.c at -O2 (Debian #1019011);
            # the retry rebuilds what is missing at -O1.
            run(make + ["OPT=-O1"], log=log, what="palcode build (-O1 retry)")
        run([TOOLCHAIN + "strip", "-o", str(out / IMAGE), str(pal / IMAGE)], log=log,
            what="strip palcode")
        self._check_instructions(pal / IMAGE, log)
        shutil.rmtree(dl)
        shutil.rmtree(src)
        return {"image": IMAGE, "qemu_source": version}

    @staticmethod
    def _check_instructions(elf: Path, log: Path) -> None:
        """The PALcode must run on every CPU model our targets use: no EV67 (CIX) or
        EV6 (FIX) instruction may be left (BWX is fine: EV56 and later have it)."""
        dis = run([TOOLCHAIN + "objdump", "-d", str(elf)], what="palcode disassembly")
        bad = [line.strip() for line in dis.splitlines()
               if any(f"\t{op}" in line for op in ("cttz", "ctlz", "ctpop", "itoft", "itofs",
                                                  "ftoit", "ftois", "sqrt"))]
        if bad:
            raise LabError(f"palcode still has EV6/EV67-only instructions (log: {log}):\n  "
                           + "\n  ".join(bad[:10]))
