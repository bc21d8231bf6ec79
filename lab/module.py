"""Building an out-of-tree module against a target's kernel, and checking the result.

Any directory with a Kbuild or Makefile works. The result is cached by the
content of the directory and the kernel build's key; before it goes anywhere,
each .ko is checked: ELF machine of the target's arch, vermagic of the
target's kernel.
"""

from __future__ import annotations

import re
import shutil
import struct
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

import yaml

from .build import ensure_images
from .cache import Artifact, Store, file_digest
from .config import ARCHES, Lab, Target
from .errors import ConfigError, LabError
from .images import kernel_step
from .images.kernel import KernelBuild, parse_config
from .images.steps import BuildContext, Step, execute, plan
from .paths import cache_dir, project_root
from .runner import run

EM = {3: "Intel 80386", 0x9026: "Alpha", 62: "Advanced Micro Devices X86-64"}
# Build products, dotfiles and Python caches (a module's tests may live beside it).
IGNORED = re.compile(r"(\.o|\.ko|\.mod|\.mod\.c|\.cmd|\.symvers|\.order|\.d|\.pyc)$|^\.|^__pycache__$")


class ModuleCheckError(LabError):
    pass


def elf_machine(path: Path) -> str:
    head = path.read_bytes()[:20]
    if head[:4] != b"\x7fELF":
        raise ModuleCheckError(f"{path.name} is not an ELF file")
    endian = "<" if head[5] == 1 else ">"
    (machine,) = struct.unpack(endian + "H", head[18:20])
    return EM.get(machine, f"EM {machine:#x}")


def modinfo(path: Path) -> dict[str, str]:
    """Key/value strings of the .modinfo section (found by its 'vermagic=' neighbourhood)."""
    data = path.read_bytes()
    out: dict[str, str] = {}
    for m in re.finditer(rb"(vermagic|name|license|description|depends)=([^\0]*)\0", data):
        out.setdefault(m.group(1).decode(), m.group(2).decode(errors="replace"))
    return out


def expected_vermagic(release: str, config: Mapping[str, str]) -> str:
    """The start of the vermagic a module must carry for this kernel (as linux/vermagic.h
    builds it; the arch-specific tail, such as "686", is not compared)."""
    parts = [release]
    if config.get("CONFIG_SMP") == "y":
        parts.append("SMP")
    if config.get("CONFIG_PREEMPT_RT") == "y":
        parts.append("preempt_rt")
    elif config.get("CONFIG_PREEMPT_BUILD") == "y" or config.get("CONFIG_PREEMPT") == "y":
        parts.append("preempt")
    if config.get("CONFIG_MODULE_UNLOAD") == "y":
        parts.append("mod_unload")
    if config.get("CONFIG_MODVERSIONS") == "y":
        parts.append("modversions")
    return " ".join(parts)


def check_module(ko: Path, arch: str, release: str, config: Mapping[str, str]) -> dict[str, str]:
    """Raise ModuleCheckError naming both values if arch or vermagic do not match."""
    want_machine = ARCHES[arch].elf_machine
    have_machine = elf_machine(ko)
    if have_machine != want_machine:
        raise ModuleCheckError(f"{ko.name}: ELF machine is {have_machine!r}, target arch {arch} "
                               f"needs {want_machine!r}")
    info = modinfo(ko)
    have = info.get("vermagic", "")
    want = expected_vermagic(release, config)
    if not have or not (have == want or have.startswith(want + " ")):
        raise ModuleCheckError(f"{ko.name}: vermagic is {have!r}, the target's kernel needs "
                               f"{want!r}")
    return {"machine": have_machine, "vermagic": have}


@dataclass(frozen=True)
class ModuleSpec:
    """What a module directory's lab.yaml says the soak should expect."""

    module: str
    thread_name: str = ""
    threads_param: str = ""
    default_threads: int = 0
    period_param: str = ""
    default_period_ms: int = 0
    start_message: str = ""
    wake_message: str = ""


def load_spec(module_dir: Path) -> ModuleSpec:
    """The directory's lab.yaml; without one, only the module name is known (from the build)."""
    p = module_dir / "lab.yaml"
    if not p.is_file():
        return ModuleSpec(module="")
    data = yaml.safe_load(p.read_text()) or {}
    known = set(ModuleSpec.__dataclass_fields__)
    unknown = set(data) - known
    if unknown:
        raise ConfigError(str(p), sorted(unknown)[0], f"unknown key; valid keys: {', '.join(sorted(known))}")
    return ModuleSpec(**data)


def default_module_dir() -> Path:
    return project_root() / "module"


def source_digest(module_dir: Path) -> dict[str, str]:
    files = {}
    for p in sorted(module_dir.rglob("*")):
        rel = p.relative_to(module_dir)
        if p.is_file() and not any(IGNORED.search(part) for part in rel.parts):
            files[str(rel)] = file_digest(p)
    if not files:
        raise LabError(f"{module_dir}: no module sources found")
    if not ({"Kbuild", "Makefile"} & set(files)):
        raise LabError(f"{module_dir}: needs a Kbuild or Makefile")
    return files


class ModuleBuild(Step):
    kind = "module"

    def __init__(self, kernel: KernelBuild, module_dir: Path, extra_cflags: str = ""):
        self.kernel = kernel
        self.module_dir = module_dir.resolve()
        self.extra_cflags = extra_cflags

    @property
    def name(self) -> str:
        return f"{self.module_dir.name}-{self.kernel.name}"

    def deps(self) -> list[Step]:
        return [self.kernel]

    def inputs(self) -> Mapping[str, Any]:
        return {"sources": source_digest(self.module_dir), "cflags": self.extra_cflags}

    def build(self, ctx: BuildContext, out: Path, deps: Mapping[str, Artifact]) -> Mapping[str, Any]:
        kart = deps["kernel"]
        build = kart.path / "build"
        src = out / "src"
        shutil.copytree(self.module_dir, src, ignore=shutil.ignore_patterns(
            "*.o", "*.ko", "*.mod", "*.mod.c", ".*.cmd", "Module.symvers", "modules.order",
            "__pycache__", "*.pyc", ".pytest_cache"))
        ctx.status(f"building module {self.name}")
        argv = ["make", "-C", str(build), f"M={src}", *self.kernel.cross_make_vars(ctx.jobs),
                "modules"]
        if self.extra_cflags:
            argv.append(f"ccflags-y={self.extra_cflags}")
        run(argv, log=ctx.log_for(self), what=f"module build {self.name}")
        kos = sorted(src.rglob("*.ko"))
        if not kos:
            raise LabError(f"module build {self.name} produced no .ko (log: {ctx.log_for(self)})")
        release = kart.manifest()["release"]
        config = parse_config((build / ".config").read_text())
        checks = {}
        for ko in kos:
            checks[ko.name] = check_module(ko, self.kernel.arch, release, config)
            shutil.copy2(ko, out / ko.name)
        return {"modules": [k.name for k in kos], "checks": checks, "release": release}


@dataclass(frozen=True)
class BuiltModule:
    path: Path            # the .ko
    sha256: str
    key: str
    spec: ModuleSpec
    release: str


def build_module(lab: Lab, target: Target, module_dir: Path | None = None,
                 status=lambda m: None, extra_cflags: str = "") -> tuple[BuiltModule, bool]:
    """Build (or take from cache) the module for ``target``. Returns (module, was_built)."""
    module_dir = (module_dir or default_module_dir()).resolve()
    if not module_dir.is_dir():
        raise LabError(f"module directory {module_dir} does not exist")
    spec = load_spec(module_dir)
    ensure_images(lab, target, status)
    store = Store(cache_dir())
    step = ModuleBuild(kernel_step(lab, target), module_dir, extra_cflags)
    p = plan([step], store)
    built = execute(p, BuildContext(store, cache_dir() / "logs", status=status))
    art = step.artifact(store)
    man = art.manifest()
    names = man["modules"]
    if spec.module and f"{spec.module}.ko" not in names:
        raise LabError(f"{module_dir / 'lab.yaml'} names module {spec.module!r}, but the build "
                       f"made {', '.join(names)}")
    pick = f"{spec.module}.ko" if spec.module else names[0]
    ko = art.path / pick
    # The name the kernel knows the module by: kbuild turns "-" into "_"
    # (kobject-example.ko loads as kobject_example); .modinfo says it.
    spec = spec if spec.module else replace(
        spec, module=modinfo(ko).get("name") or pick[:-3].replace("-", "_"))
    return BuiltModule(ko, file_digest(ko), art.key, spec, man["release"]), bool(built)
