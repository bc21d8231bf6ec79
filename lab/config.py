"""Target and kernel-profile configuration: frozen dataclasses, validated on load.

Every error names the file, the key and the valid choices, in one line.
"""

from __future__ import annotations

from dataclasses import dataclass, replace, field
from pathlib import Path
from typing import Any, Mapping

import os

import yaml

from .errors import ConfigError, LabError
from . import hostload   # as a module: tests give it another host's load
from .paths import project_root


@dataclass(frozen=True)
class ArchSpec:
    """What lab knows about one guest architecture (facts, not choices)."""

    name: str
    qemu: str               # qemu-system binary
    qemu_package: str       # Debian package that ships it
    machines: tuple[str, ...]
    cpus: tuple[str, ...]
    max_smp: int
    kernel_arch: str        # ARCH= for the kernel build
    elf_machine: str        # as readelf -h prints it
    user_qemu: str          # qemu-user binary to run guest programs on the host
    host_kvm_arch: str | None  # host `uname -m` on which KVM could run this guest
    snapshot_blocker: str | None = None  # why its guests cannot be snapshotted, if they cannot


ARCHES: dict[str, ArchSpec] = {
    "i386": ArchSpec(
        name="i386", qemu="qemu-system-i386", qemu_package="qemu-system-x86",
        machines=("pc", "q35", "isapc"),
        cpus=("486", "pentium", "pentium2", "pentium3", "coreduo", "n270", "athlon",
              "qemu32", "kvm32"),
        max_smp=8, kernel_arch="i386", elf_machine="Intel 80386",
        user_qemu="qemu-i386", host_kvm_arch="x86_64"),
    "alpha": ArchSpec(
        name="alpha", qemu="qemu-system-alpha", qemu_package="qemu-system-misc",
        machines=("clipper",),
        cpus=("ev4", "ev5", "ev56", "pca56", "ev6", "ev67", "ev68"),
        max_smp=4, kernel_arch="alpha", elf_machine="Alpha",
        user_qemu="qemu-alpha", host_kvm_arch=None,
        # Measured with Debian's 7.2: `migrate` divides by zero in RAM saving (8 KiB
        # target pages over 4 KiB host pages: 0 target pages per host page; 10.0
        # saves). In 7.2 and 10.0 alike the Typhoon chipset and the CPU alarm timer
        # have no saved state (hw/alpha/typhoon.c has no VMState), so a saved state
        # restores to a guest whose interrupt masks and PCI windows are back at reset.
        snapshot_blocker="qemu-system-alpha cannot snapshot Alpha guests: the Typhoon "
                         "chipset model (clipper) saves no state, so a restored guest "
                         "has lost its interrupt and PCI setup"),
}

# The target a command runs on when none is named: the machine the lab was made for.
DEFAULT_TARGET = "alpha-es40"

# How TCG runs an SMP guest's vCPUs: "multi", one host thread per vCPU (the default on
# every target: two threads of a module really run at the same instant, so races
# show), or "single", one host thread taking the vCPUs in turn (-accel
# tcg,thread=single; QEMU switches when a vCPU idles or every TCG_ROUND_ROBIN_MS).
# A target file may say `tcg_thread: single`; LAB_TCG_THREAD=multi|single overrides
# every target. The README's "SMP Alpha in parallel" gives the history (SMP Alpha ran
# single-threaded while QEMU 7.2 misrouted MMIO accesses, and while 10.0 froze one
# guest clock with idle vCPUs spinning) and the stress figures behind the default.
TCG_THREADINGS = ("multi", "single")
# Target.threading's values, as the summary, `lab up` and the report say them.
THREADING_LABELS = {"multi": "one TCG thread per vCPU", "single": "one TCG thread for all vCPUs",
                    "up": "one vCPU", "kvm": "KVM"}


@dataclass(frozen=True)
class Timeouts:
    """Seconds. Every wait in lab has one of these, none is implicit."""

    boot: float = 120.0        # QEMU start to SSH answering
    silence: float = 60.0      # no console output and no SSH: a silent hang
    # One command over SSH: `lab ssh NAME -- CMD`, and every command of lab's own that
    # names no timeout of its own (a build or a test run in the guest may take minutes).
    ssh_command: float = 300.0
    shutdown: float = 20.0     # soft shutdown before the hard one
    # The guest said "sshd ready" but SSH never answers: give this boot up (and boot
    # again once). A guest whose NIC passes no packet says so itself within about
    # 10 s (rcS pings the gateway, verdict no-network); this is the limit for the
    # rest. Seen only on alpha-es40 under QEMU 7.2's multi-threaded TCG (1 to 5
    # boots of 100 on a saturated host; ArchSpec.one_tcg_thread).
    ssh_after_ready: float = 40.0


@dataclass(frozen=True)
class Target:
    name: str
    arch: str
    machine: str
    cpu: str
    smp: int
    memory: int                 # MiB
    kernel: str                 # kernel profile name
    description: str = ""
    notes: str = ""
    kernel_cmdline: str = ""    # extra kernel command line
    qemu_args: tuple[str, ...] = ()
    timeouts: Timeouts = field(default_factory=Timeouts)
    # Boots retried after QEMU exits silently (status 0, no kernel message) before
    # user space: an emulator fault seen on clipper in about 1 boot in 40.
    boot_retries: int = 1
    # TCG_THREADINGS: the threading this target's SMP guests run with under TCG, after
    # LAB_TCG_THREAD (resolved when the target is loaded).
    tcg_thread: str = "multi"
    # Alpha firmware: "qemu" (QEMU's own palcode-clipper, EV67 only) or "lab"
    # (built here from Debian's qemu source, runs on EV56, PCA56, EV6 and EV67).
    palcode: str = "qemu"
    # Kernel config fragments merged after the profile's (--config, --config-fragment):
    # a variant kernel with its own cache key. Paths, project-relative or absolute.
    config: tuple[str, ...] = ()
    # What `timeouts` were multiplied by when the target was loaded, and why
    # (timeout_policy): the soak scales its own deadlines by the same factor.
    timeout_factor: float = 1.0
    timeout_policy: str = ""
    path: str = ""

    @property
    def spec(self) -> ArchSpec:
        return ARCHES[self.arch]

    def accel_arg(self, accel: str, smp: int | None = None) -> str:
        """QEMU's -accel value for a guest of this target with ``smp`` vCPUs on
        ``accel`` (tcg or kvm)."""
        if accel != "tcg":
            return accel
        return "tcg,thread=single" if self.threading(accel, smp) == "single" else "tcg"

    def threading(self, accel: str, smp: int | None = None) -> str:
        """How the guest's vCPUs run on the host: "kvm", "multi" (one TCG thread per
        vCPU), "single" (one TCG thread for all), or "up" (one vCPU)."""
        smp = smp or self.smp
        if accel != "tcg":
            return accel
        return self.tcg_thread if smp > 1 else "up"

    def host_threads(self, smp: int | None = None) -> int:
        """Host threads a TCG guest keeps busy: one per vCPU, or one in all."""
        smp = smp or self.smp
        return 1 if self.threading("tcg", smp) == "single" else smp


@dataclass(frozen=True)
class ArchBuild:
    """How a kernel profile builds for one architecture."""

    defconfig: str              # make target that makes the base config
    fragments: tuple[str, ...]  # config fragments merged with merge_config.sh
    toolchain: str              # CROSS_COMPILE prefix
    compiler_package: str       # Debian package of the cross compiler
    make_targets: tuple[str, ...]
    image: str                  # path of the bootable image in the build tree


@dataclass(frozen=True)
class KernelSource:
    kind: str                   # debian-package | tarball | tree
    package: str = ""           # for debian-package
    path: str = ""              # tarball or tree


@dataclass(frozen=True)
class KernelProfile:
    name: str
    version: str
    source: KernelSource
    patches: tuple[str, ...]
    arches: Mapping[str, ArchBuild]
    path: str = ""


SOURCE_KINDS = ("debian-package", "tarball", "tree")
# Keys a 2.4-shaped profile would need, which this lab does not build: every guest
# boots an initramfs (cpio, rdinit) and loads a Kbuild .ko with init_module().
UNBUILT_PROFILE_KEYS = {
    "rootfs_format": "every kernel boots an initramfs; 2.4's initrd image is not built",
    "module_format": "modules are Kbuild .ko files; 2.4's modutils .o is not built",
}


class _Reader:
    """Typed access to one YAML mapping, raising ConfigError with file and key."""

    def __init__(self, path: str, data: Any, prefix: str = ""):
        self.path, self.prefix = path, prefix
        if not isinstance(data, dict):
            raise ConfigError(path, prefix or "(top level)",
                              f"expected a mapping, got {type(data).__name__}")
        self.data = data

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def only(self, allowed: tuple[str, ...]) -> None:
        for k in self.data:
            if k not in allowed:
                raise ConfigError(self.path, self.key(str(k)),
                                  f"unknown key; valid keys: {', '.join(allowed)}")

    def get(self, name: str, typ: type | tuple[type, ...], default: Any = ...,) -> Any:
        if name not in self.data:
            if default is ...:
                raise ConfigError(self.path, self.key(name), "missing required key")
            return default
        value = self.data[name]
        types = typ if isinstance(typ, tuple) else (typ,)
        # bool is an int in Python; a YAML "yes" must not pass as a number.
        if isinstance(value, bool) and bool not in types:
            ok = False
        else:
            ok = isinstance(value, types)
        if not ok:
            want = " or ".join(t.__name__ for t in types)
            raise ConfigError(self.path, self.key(name),
                              f"expected {want}, got {type(value).__name__} {value!r}")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: Any = ...) -> str:
        value = self.get(name, str, default)
        if value not in choices:
            raise ConfigError(self.path, self.key(name),
                              f"{value!r} is not valid; choose one of: {', '.join(choices)}")
        return value

    def strings(self, name: str) -> tuple[str, ...]:
        value = self.get(name, list, [])
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise ConfigError(self.path, f"{self.key(name)}[{i}]",
                                  f"expected str, got {type(item).__name__} {item!r}")
        return tuple(value)

    def sub(self, name: str, default: Any = ...) -> "_Reader | None":
        value = self.get(name, dict, default)
        return None if value is None else _Reader(self.path, value, self.key(name))


def _load_yaml(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise ConfigError(str(path), "(syntax)", str(e).replace("\n", " ")) from None
    except OSError as e:
        raise ConfigError(str(path), "(file)", e.strerror or str(e)) from None


def _positive(r: _Reader, name: str, value: float, maximum: float | None = None) -> None:
    if value <= 0 or (maximum is not None and value > maximum):
        limit = f"1..{maximum:g}" if maximum is not None else "a positive number"
        raise ConfigError(r.path, r.key(name), f"{value!r} is out of range; valid: {limit}")


def timeout_factor(threads: int = 1) -> float:
    """What every timeout (boot, silence, SSH, shutdown, the soak's cycle deadline and
    hold limit) of a guest that keeps ``threads`` host threads busy (its vCPUs, see
    ArchSpec.host_threads) is multiplied by. Check thresholds (load and unload times)
    are not: they judge the module."""
    return timeout_policy(threads)[0]


def timeout_policy(threads: int = 1) -> tuple[float, str]:
    """The factor and where it came from. LAB_TIMEOUT_FACTOR (`lab --timeout-factor F`)
    sets it; unset or "auto", it follows the host's load (lab.hostload)."""
    raw = os.environ.get("LAB_TIMEOUT_FACTOR", "auto")
    factor = parse_timeout_factor(raw)
    if factor is None:
        load = hostload.read_load()
        factor = hostload.auto_factor(threads, load)
        return factor, (f"auto: load {load.runnable:.2f} on {load.cores} cores, "
                        f"{threads} vCPU thread(s): x{factor:g}")
    return factor, f"LAB_TIMEOUT_FACTOR={raw}"


def parse_timeout_factor(raw: str, name: str = "LAB_TIMEOUT_FACTOR") -> float | None:
    """The timeout factor ``raw`` sets (None: "auto", follow the host's load). LabError
    naming ``name`` (the variable, or `lab --timeout-factor`) unless it is a number
    above 0 and at most 100: a factor of 0 or less would leave no time for anything."""
    if raw == "auto":
        return None
    try:
        factor = float(raw)
    except ValueError:
        raise LabError(f"{name}={raw!r}: not a number or auto") from None
    if not 0 < factor <= 100:
        raise LabError(f"{name}={raw}: must be above 0 and at most 100")
    return factor


def load_target(path: Path) -> Target:
    r = _Reader(str(path), _load_yaml(path))
    r.only(("name", "arch", "machine", "cpu", "smp", "memory", "kernel", "description",
            "notes", "kernel_cmdline", "qemu_args", "timeouts", "boot_retries", "palcode",
            "tcg_thread"))
    arch = r.choice("arch", tuple(ARCHES))
    spec = ARCHES[arch]
    name = r.get("name", str, path.stem)
    if name != path.stem:
        raise ConfigError(str(path), "name", f"{name!r} must match the file name {path.stem!r}")
    smp = r.get("smp", int, 1)
    _positive(r, "smp", smp, spec.max_smp)
    memory = r.get("memory", int, 512)
    _positive(r, "memory", memory, 3072 if arch == "i386" else 2048)
    boot_retries = r.get("boot_retries", int, 1)
    if not 0 <= boot_retries <= 5:
        raise ConfigError(str(path), "boot_retries", f"{boot_retries!r} is out of range; valid: 0..5")
    tcg_thread = _tcg_thread(r)
    factor, policy = timeout_policy(1 if tcg_thread == "single" else smp)
    t = r.sub("timeouts", {})
    assert t is not None
    t.only(tuple(Timeouts.__dataclass_fields__))
    tvals = {}
    for k in Timeouts.__dataclass_fields__:
        if k in t.data:
            tvals[k] = float(t.get(k, (int, float)))
            _positive(t, k, tvals[k])
    return Target(
        name=name, arch=arch,
        machine=r.choice("machine", spec.machines),
        cpu=r.choice("cpu", spec.cpus),
        smp=smp, memory=memory,
        kernel=r.get("kernel", str),
        description=r.get("description", str, ""),
        notes=r.get("notes", str, ""),
        kernel_cmdline=r.get("kernel_cmdline", str, ""),
        qemu_args=r.strings("qemu_args"),
        timeouts=_scaled(Timeouts(**tvals), factor),
        timeout_factor=factor,
        timeout_policy=policy,
        boot_retries=boot_retries,
        palcode=_palcode(r, arch),
        tcg_thread=tcg_thread,
        path=str(path),
    )


PALCODES = ("qemu", "lab")


def _scaled(t: Timeouts, factor: float) -> Timeouts:
    return Timeouts(**{k: getattr(t, k) * factor for k in Timeouts.__dataclass_fields__})


def _tcg_thread(r: "_Reader") -> str:
    """The target's TCG threading: its file's `tcg_thread`, unless LAB_TCG_THREAD says."""
    value = r.choice("tcg_thread", TCG_THREADINGS, "multi")
    choice = os.environ.get("LAB_TCG_THREAD", "auto")
    if choice not in ("auto", *TCG_THREADINGS):
        raise LabError(f"LAB_TCG_THREAD={choice!r}: valid are auto, {', '.join(TCG_THREADINGS)}")
    return value if choice == "auto" else choice


def _palcode(r: "_Reader", arch: str) -> str:
    value = r.choice("palcode", PALCODES, "qemu")
    if value != "qemu" and arch != "alpha":
        raise ConfigError(r.path, "palcode", "only Alpha targets boot PALcode")
    return value


def load_profile(path: Path) -> KernelProfile:
    r = _Reader(str(path), _load_yaml(path))
    for key, why in UNBUILT_PROFILE_KEYS.items():
        if key in r.data:
            raise ConfigError(str(path), key, f"not a profile key: {why} (module/README.md: what cannot be tested here)")
    r.only(("name", "version", "source", "patches", "arches"))
    name = r.get("name", str, path.stem)
    if name != path.stem:
        raise ConfigError(str(path), "name", f"{name!r} must match the file name {path.stem!r}")
    s = r.sub("source")
    assert s is not None
    s.only(("kind", "package", "path"))
    kind = s.choice("kind", SOURCE_KINDS)
    source = KernelSource(kind=kind, package=s.get("package", str, ""), path=s.get("path", str, ""))
    if kind == "debian-package" and not source.package:
        raise ConfigError(str(path), "source.package", "required when kind is debian-package")
    if kind in ("tarball", "tree") and not source.path:
        raise ConfigError(str(path), "source.path", f"required when kind is {kind}")
    a = r.sub("arches")
    assert a is not None
    arches = {}
    for arch_name in a.data:
        if arch_name not in ARCHES:
            raise ConfigError(str(path), a.key(str(arch_name)),
                              f"unknown arch; valid: {', '.join(ARCHES)}")
        b = a.sub(arch_name)
        assert b is not None
        b.only(("defconfig", "fragments", "toolchain", "compiler_package", "make_targets", "image"))
        arches[arch_name] = ArchBuild(
            defconfig=b.get("defconfig", str, "defconfig"),
            fragments=b.strings("fragments"),
            toolchain=b.get("toolchain", str),
            compiler_package=b.get("compiler_package", str),
            make_targets=b.strings("make_targets") or ("all",),
            image=b.get("image", str),
        )
    if not arches:
        raise ConfigError(str(path), "arches", f"at least one arch is needed; valid: {', '.join(ARCHES)}")
    return KernelProfile(
        name=name, version=r.get("version", str), source=source,
        patches=r.strings("patches"), arches=arches,
        path=str(path),
    )


@dataclass(frozen=True)
class Lab:
    """Everything under configs/: the targets and the kernel profiles."""

    root: Path
    targets: Mapping[str, Target]
    profiles: Mapping[str, KernelProfile]
    default_target: str = DEFAULT_TARGET

    def target(self, name: str) -> Target:
        if name not in self.targets:
            raise LabError(f"unknown target {name!r}; targets: {', '.join(sorted(self.targets))}")
        return self.targets[name]

    def profile_of(self, target: Target) -> KernelProfile:
        return self.profiles[target.kernel]

    def with_kernel(self, target: Target, profile: str | None) -> Target:
        """``target`` with another kernel profile (``--kernel``), checked like a target file."""
        if not profile or profile == target.kernel:
            return target
        if profile not in self.profiles:
            raise LabError(f"--kernel {profile}: not a kernel profile; choose one of: "
                           f"{', '.join(sorted(self.profiles))}")
        if target.arch not in self.profiles[profile].arches:
            raise LabError(f"--kernel {profile}: the profile does not build for {target.arch} "
                           f"(target {target.name}); it builds: "
                           f"{', '.join(self.profiles[profile].arches)}")
        return replace(target, kernel=profile)


def load_lab(root: Path | None = None) -> Lab:
    root = root or project_root()
    cfg = root / "configs"
    profiles = {p.stem: load_profile(p) for p in sorted((cfg / "kernels").glob("*.yaml"))}
    targets = {}
    for p in sorted((cfg / "targets").glob("*.yaml")):
        t = load_target(p)
        if t.kernel not in profiles:
            raise ConfigError(str(p), "kernel", f"{t.kernel!r} is not a kernel profile; "
                              f"choose one of: {', '.join(profiles) or '(none)'}")
        if t.arch not in profiles[t.kernel].arches:
            raise ConfigError(str(p), "arch", f"kernel profile {t.kernel!r} does not build for "
                              f"{t.arch}; it builds: {', '.join(profiles[t.kernel].arches)}")
        targets[t.name] = t
    if not targets:
        raise LabError(f"no targets found in {cfg / 'targets'}")
    return Lab(root=root, targets=targets, profiles=profiles)
