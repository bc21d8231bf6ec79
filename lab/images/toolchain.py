"""Host tools and versions the image recipes depend on."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

from ..cache import file_digest
from ..errors import LabError
from ..paths import project_root
from ..runner import require, run


def apt_get_source(spec: str, *options: str, cwd: Path | None = None,
                   log: Path | None = None) -> str:
    """`apt-get source -q OPTIONS PACKAGE=VERSION`; a failure names the likely cause."""
    try:
        return run(["apt-get", "source", "-q", *options, spec], cwd=cwd, log=log,
                   what=f"apt-get source {spec}")
    except LabError as e:
        raise LabError(f"{e}\n(needs a deb-src entry in /etc/apt/sources.list.d: "
                       "scripts/setup-host.sh adds one)") from None


@functools.lru_cache(maxsize=None)
def tool_version(tool: str, package: str) -> str:
    """First line of ``tool --version``; part of every cache key that tool builds."""
    path = require(tool, package)
    p = subprocess.run([path, "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, check=False)
    return p.stdout.splitlines()[0] if p.stdout else "unknown"


@functools.lru_cache(maxsize=None)
def debian_package_version(package: str) -> str:
    """Installed version of a Debian package, or LabError naming it."""
    p = subprocess.run(["dpkg-query", "-W", "-f=${Status} ${Version}", package],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=False)
    fields = p.stdout.split()
    if p.returncode != 0 or "installed" not in fields:
        raise LabError(f"package {package} is not installed: `apt-get install {package}`")
    return fields[-1]


def source_patches(directory: str) -> list[Path]:
    """The ``*.patch`` files of a project directory, in the order they apply."""
    return sorted((project_root() / directory).glob("*.patch"))


def patch_digests(directory: str) -> dict[str, str]:
    """Each patch's content digest, by name: part of the key of the step that applies them."""
    return {p.name: file_digest(p) for p in source_patches(directory)}


def apply_patches(patches: list[Path], tree: Path, log: Path) -> None:
    require("patch", "patch")
    for p in patches:
        run(["patch", "-p1", "-i", str(p)], cwd=tree, log=log, what=f"patch {p.name}")


def sysroot(toolchain: str) -> str:
    """The Debian cross sysroot of a CROSS_COMPILE prefix (alpha-linux-gnu- -> /usr/alpha-linux-gnu)."""
    return "/usr/" + toolchain.rstrip("-")
