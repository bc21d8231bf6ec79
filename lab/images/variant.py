"""Kernel variants from the command line: `--config CONFIG_X=y` lines and
`--config-fragment FILE|NAME` files, merged after the profile's fragments.

A named fragment is `images/kernel/fragments/NAME.config` plus, where it exists,
`NAME.ARCH.config` for what only that arch supports. Command-line lines become
a small fragment file in the cache, named by its content, so the kernel's cache
key follows what was asked for, not where it was written.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from ..config import KernelProfile, Lab, Target
from ..errors import LabError
from ..paths import cache_dir, project_root
from .kernel import KernelBuild

FRAGMENTS = Path("images/kernel/fragments")
_LINE = re.compile(r'^CONFIG_[A-Za-z0-9_]+=(y|m|n|-?\d+|0x[0-9a-fA-F]+|"[^"\n]*")$')


def named_fragments() -> list[str]:
    """The fragments shipped with lab, by name."""
    return sorted({p.name.split(".")[0] for p in (project_root() / FRAGMENTS).glob("*.config")})


def fragment_files(spec: str, arch: str) -> list[str]:
    """A fragment named on the command line: an existing file, or a shipped name."""
    path = Path(spec).expanduser()
    if path.is_file():
        return [str(path.resolve())]
    root = project_root()
    shipped = [FRAGMENTS / f"{spec}.config", FRAGMENTS / f"{spec}.{arch}.config"]
    found = [str(p) for p in shipped if (root / p).is_file()]
    if "/" in spec or not found:
        raise LabError(f"--config-fragment {spec}: no such file, and not a shipped fragment; "
                       f"shipped: {', '.join(named_fragments()) or '(none)'}")
    return found


def lines_fragment(lines: Sequence[str]) -> str:
    """`--config` lines as a fragment file in the cache (named by its content)."""
    bad = [x for x in lines if not _LINE.match(x.strip())]
    if bad:
        raise LabError(f"--config {bad[0]!r}: expected CONFIG_NAME=VALUE with VALUE y, m, n, "
                       'a number or a "string"')
    text = "".join(_kconfig_line(x.strip()) + "\n" for x in lines)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = cache_dir() / "config-fragments" / f"{digest}.config"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return str(path)


def _kconfig_line(line: str) -> str:
    """CONFIG_X=n as Kconfig writes it, so merge_config.sh and the check agree."""
    name, value = line.split("=", 1)
    return f"# {name} is not set" if value == "n" else line


def variant(lab: Lab, target: Target, kernel: str | None = None,
            config: Sequence[str] = (), fragments: Sequence[str] = ()) -> Target:
    """``target`` with another kernel profile and extra config, checked up front."""
    target = lab.with_kernel(target, kernel)
    extra = [f for spec in fragments for f in fragment_files(spec, target.arch)]
    if config:
        extra.append(lines_fragment(config))
    return replace(target, config=target.config + tuple(extra)) if extra else target


def variant_label(paths: Sequence[str]) -> str:
    """A short, readable name for a set of extra fragments ("debug", "cmdline")."""
    labels = []
    for p in paths:
        name = Path(p).name.split(".")[0]
        label = "cmdline" if Path(p).parent.name == "config-fragments" else name
        if label not in labels:
            labels.append(label)
    return "+".join(labels)


class VariantKernelBuild(KernelBuild):
    """A profile's kernel with more fragments merged after the profile's own: the
    same recipe, its own name and cache key (the key follows each fragment's path
    and content), its effective .config kept in the artifact like any kernel's."""

    helper_modules = ("lab.images.kernel",)

    def __init__(self, profile: KernelProfile, arch: str, extra: tuple[str, ...]):
        super().__init__(profile, arch)
        self.extra = extra
        self.spec = replace(self.spec, fragments=(*self.spec.fragments, *extra))

    @property
    def name(self) -> str:
        return f"{self.profile.name}-{self.arch}+{variant_label(self.extra)}"

    def fragments(self) -> list[str]:
        root = project_root()
        return [str(root / f) for f in self.spec.fragments]
