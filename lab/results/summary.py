"""The soak summary as one typed, frozen value, and its summary.json form.

Every reader (CLI, JUnit, KCIDB, KTAP, report, bisect, pytest plugin, matrix)
takes a SoakSummary; only this module knows the JSON keys. The JSON keeps the
keys summary.json had before it was typed (the README and users' scripts read
them), plus "schema".

A summary's parts are present as far as the soak got: ``setup`` and ``stats``
once the soak was planned, ``module`` once the module built, ``guest`` once a
guest ran, ``kmemleak`` and ``memory`` once the cycles were judged. A part
that is None writes no keys at all, as before; a part that is there writes
every key, null or not.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ..errors import LabError
from .failure import Failure
from .stats import percentiles, thread_census, wake_periods
from ..verdict import Verdict

if TYPE_CHECKING:  # the type only: the config layer is not needed to read a summary
    from ..config import Target

# 1: the first typed summary. Files with no "schema" (lab before it) have the
# same layout with parts missing as the soak ended; they read as schema 0.
SCHEMA_VERSION = 1

# At most this many failures are kept (with their evidence); `checks_failed`
# still counts every one.
MAX_FAILURES = 50


def _opt_float(x: Any) -> float | None:
    return None if x is None else float(x)


def _opt_int(x: Any) -> int | None:
    return None if x is None else int(x)


def failure_from_json(d: Mapping[str, Any]) -> Failure:
    return Failure(int(d.get("cycle", 0)), str(d["check"]), str(d.get("message", "")),
                   tuple(str(e) for e in d.get("evidence", ())))


@dataclass(frozen=True)
class Percentiles:
    """Of one measure across the cycles, in ms; all None when nothing was measured."""
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None
    mean: float | None = None

    @classmethod
    def of(cls, values: list[float]) -> Percentiles:
        return cls(**percentiles(values))

    def to_json(self) -> dict[str, Any]:
        return {"p50": self.p50, "p95": self.p95, "p99": self.p99, "max": self.max,
                "mean": self.mean}

    @classmethod
    def from_json(cls, d: Mapping[str, Any] | None) -> Percentiles:
        d = d or {}
        return cls(*(_opt_float(d.get(k)) for k in ("p50", "p95", "p99", "max", "mean")))


@dataclass(frozen=True)
class Latency:
    """load: init_module; threads: load to every thread having run; unload: delete_module."""
    load: Percentiles = Percentiles()
    threads: Percentiles = Percentiles()
    unload: Percentiles = Percentiles()

    def items(self) -> list[tuple[str, Percentiles]]:
        return [("load", self.load), ("threads", self.threads), ("unload", self.unload)]

    def to_json(self) -> dict[str, Any]:
        return {k: p.to_json() for k, p in self.items()}

    @classmethod
    def from_json(cls, d: Mapping[str, Any] | None) -> Latency:
        d = d or {}
        return cls(*(Percentiles.from_json(d.get(k)) for k in ("load", "threads", "unload")))


@dataclass(frozen=True)
class WakePeriod(Percentiles):
    """The module's threads' wake-up periods on dwell cycles (a lab.yaml's wake message)."""
    jitter: float | None = None   # population standard deviation, ms
    samples: int = 0

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "jitter": self.jitter, "samples": self.samples}

    @classmethod
    def from_json(cls, d: Mapping[str, Any] | None) -> WakePeriod:
        d = d or {}
        p = Percentiles.from_json(d)
        return cls(**asdict(p), jitter=_opt_float(d.get("jitter")),
                   samples=int(d.get("samples") or 0))


@dataclass(frozen=True)
class Processes:
    """Process counts in the guest: before the first cycle, after the first, last, most."""
    baseline: int | None = None
    first: int | None = None
    last: int | None = None
    max: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"baseline": self.baseline, "first": self.first, "last": self.last,
                "max": self.max}

    @classmethod
    def from_json(cls, d: Mapping[str, Any] | None) -> Processes:
        d = d or {}
        return cls(*(_opt_int(d.get(k)) for k in ("baseline", "first", "last", "max")))


@dataclass(frozen=True)
class KthreadCensus:
    """The kernel threads the soak found: the first cycle's in full, then how many
    cycles saw how many ("5" -> 25: five threads in 25 cycles)."""
    first_cycle: tuple[str, ...] = ()
    per_cycle: Mapping[str, int] = field(default_factory=dict)
    pool_workers_max: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"first_cycle": list(self.first_cycle), "per_cycle": dict(self.per_cycle),
                "pool_workers_max": self.pool_workers_max}

    @classmethod
    def from_json(cls, d: Mapping[str, Any] | None) -> KthreadCensus:
        d = d or {}
        return cls(tuple(d.get("first_cycle", ())),
                   {str(k): int(v) for k, v in (d.get("per_cycle") or {}).items()},
                   int(d.get("pool_workers_max") or 0))


@dataclass(frozen=True)
class MemSeries:
    """One /proc/meminfo figure across the soak, kB; the trend only from 60 cycles on."""
    first: float | None = None
    last: float | None = None
    kb_per_cycle: float | None = None        # robust slope over the second half
    kb_lost_second_half: int | None = None


# How lab.soak.checks.memory_trend names its figures: "<label>_kb_per_cycle" and
# "<label>_kb_lost_second_half" per label, the first and last under their own key.
_MEM_SERIES = (("MemAvailable", "mem_available_kb"), ("Slab", "slab_kb"))


@dataclass(frozen=True)
class MemoryTrend:
    samples: int = 0
    note: str | None = None                  # why no trend was judged
    mem_available: MemSeries | None = None
    slab: MemSeries | None = None

    def series(self) -> list[tuple[str, str, MemSeries | None]]:
        return [(label, key, s) for (label, key), s in zip(_MEM_SERIES,
                                                         (self.mem_available, self.slab))]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"samples": self.samples}
        if self.note is not None:
            out["note"] = self.note
        for label, key, s in self.series():
            if s is None:
                continue
            out[key] = {"first": s.first, "last": s.last}
            if s.kb_per_cycle is not None:
                out[f"{label}_kb_per_cycle"] = s.kb_per_cycle
            if s.kb_lost_second_half is not None:
                out[f"{label}_kb_lost_second_half"] = s.kb_lost_second_half
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> MemoryTrend:
        """Also reads memory_trend()'s own result, which has this shape."""
        found = []
        for label, key in _MEM_SERIES:
            fl = d.get(key)
            per, lost = d.get(f"{label}_kb_per_cycle"), d.get(f"{label}_kb_lost_second_half")
            if fl is None and per is None and lost is None:
                found.append(None)
                continue
            fl = fl or {}
            found.append(MemSeries(_opt_float(fl.get("first")), _opt_float(fl.get("last")),
                                   _opt_float(per), _opt_int(lost)))
        return cls(int(d.get("samples") or 0), d.get("note"), *found)


@dataclass(frozen=True)
class Kmemleak:
    available: bool = False          # this kernel has kmemleak (and the soak used it)
    objects: int | None = None       # after the scan: unreferenced objects in all
    attributed: int | None = None    # of them, allocated by the module or its soak
    bytes_attributed: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"available": self.available}
        for k in ("objects", "attributed", "bytes_attributed"):
            if getattr(self, k) is not None:
                out[k] = getattr(self, k)
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Kmemleak:
        return cls(bool(d.get("available")), _opt_int(d.get("objects")),
                   _opt_int(d.get("attributed")), _opt_int(d.get("bytes_attributed")))


@dataclass(frozen=True)
class SoakSetup:
    """What the soak was asked to do, and the thresholds it judged against."""
    kernel_profile: str = ""
    kernel: str = ""                 # the kernel image's name (profile, arch, variant)
    kernel_fragments: tuple[str, ...] = ()
    requested_cycles: int = 0
    params: str = ""
    lab_version: str = ""
    timeout_factor: float = 1.0
    timeout_policy: str = ""
    started: str = ""                # ISO 8601, UTC
    thresholds: Mapping[str, float] = field(default_factory=dict)

    KEYS = ("kernel_profile", "kernel", "kernel_fragments", "requested_cycles", "params",
            "lab_version", "timeout_factor", "timeout_policy", "started", "thresholds")

    def to_json(self) -> dict[str, Any]:
        return {"kernel_profile": self.kernel_profile, "kernel": self.kernel,
                "kernel_fragments": list(self.kernel_fragments),
                "requested_cycles": self.requested_cycles, "params": self.params,
                "lab_version": self.lab_version, "timeout_factor": self.timeout_factor,
                "timeout_policy": self.timeout_policy, "started": self.started,
                "thresholds": dict(self.thresholds)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> SoakSetup:
        return cls(str(d.get("kernel_profile") or ""), str(d.get("kernel") or ""),
                   tuple(d.get("kernel_fragments") or ()), int(d.get("requested_cycles") or 0),
                   str(d.get("params") or ""), str(d.get("lab_version") or ""),
                   # numbers as written (1 stays 1, not 1.0: the file reads the same again)
                   d.get("timeout_factor", 1.0), str(d.get("timeout_policy") or ""),
                   str(d.get("started") or ""), dict(d.get("thresholds") or {}))


@dataclass(frozen=True)
class ModuleInfo:
    """The module under test, once it built."""
    name: str = ""
    sha256: str = ""
    expected_threads: int = 0        # from a lab.yaml that names the threads; 0 without
    period_ms: float | None = None   # the wake-up period a lab.yaml gives

    KEYS = ("module", "module_sha256", "expected_threads", "module_period_ms")

    def to_json(self) -> dict[str, Any]:
        return {"module": self.name, "module_sha256": self.sha256,
                "expected_threads": self.expected_threads, "module_period_ms": self.period_ms}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ModuleInfo:
        return cls(str(d.get("module") or ""), str(d.get("module_sha256") or ""),
                   int(d.get("expected_threads") or 0), _opt_float(d.get("module_period_ms")))


@dataclass(frozen=True)
class GuestInfo:
    """The guest the soak ran on, as its record says (images, CPU read back, boot)."""
    kernel_release: str = ""
    kernel_key: str = ""
    rootfs_key: str = ""
    palcode: str | None = None       # the target's Alpha firmware choice
    palcode_key: str = ""            # the lab's PALcode build, if the guest booted it
    cpu_model: str = ""              # as /proc/cpuinfo says
    boot_attempts: int = 1
    booted_by_soak: bool = False     # False: the soak adopted a running guest
    from_snapshot: bool = False
    ready_seconds: float | None = None

    KEYS = ("kernel_release", "kernel_key", "rootfs_key", "palcode", "palcode_key", "cpu_model",
            "boot_attempts", "guest_booted_by_soak", "from_snapshot", "ready_seconds")

    def to_json(self) -> dict[str, Any]:
        return {"kernel_release": self.kernel_release, "kernel_key": self.kernel_key,
                "rootfs_key": self.rootfs_key, "palcode": self.palcode,
                "palcode_key": self.palcode_key, "cpu_model": self.cpu_model,
                "boot_attempts": self.boot_attempts, "guest_booted_by_soak": self.booted_by_soak,
                "from_snapshot": self.from_snapshot, "ready_seconds": self.ready_seconds}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> GuestInfo:
        return cls(str(d.get("kernel_release") or ""), str(d.get("kernel_key") or ""),
                   str(d.get("rootfs_key") or ""), d.get("palcode"),
                   str(d.get("palcode_key") or ""), str(d.get("cpu_model") or ""),
                   int(d.get("boot_attempts") or 1), bool(d.get("guest_booted_by_soak")),
                   bool(d.get("from_snapshot")), _opt_float(d.get("ready_seconds")))


@dataclass(frozen=True)
class CycleStats:
    """What the records say across the cycles."""
    failed_cycles: int = 0
    latency: Latency = Latency()
    period: WakePeriod = WakePeriod()
    processes: Processes = Processes()
    zombies_max: int = 0
    kthreads: KthreadCensus = KthreadCensus()
    checks_failed: Mapping[str, int] = field(default_factory=dict)  # every failure counted

    KEYS = ("failed_cycles", "latency_ms", "period_ms", "processes", "zombies_max", "kthreads",
            "checks_failed")

    @classmethod
    def from_records(cls, records: Sequence[Mapping[str, Any]],
                     failures: Sequence[Failure]) -> CycleStats:
        cycles = [r for r in records if r.get("type") == "cycle"]
        baseline = next((r for r in records if r.get("type") == "baseline"), {})
        periods = [p for r in cycles if r.get("wake_ts")
                   for ps in wake_periods(r["wake_ts"]).values() for p in ps]
        procs = [r["procs"] for r in cycles if "procs" in r]
        checks: dict[str, int] = {}
        for f in failures:
            checks[f.check] = checks.get(f.check, 0) + 1
        lat = {k: Percentiles.of([r[f"{k}_us"] / 1000.0 for r in cycles if f"{k}_us" in r])
               for k in ("load", "threads", "unload")}
        return cls(
            failed_cycles=len({f.cycle for f in failures if f.cycle}),
            latency=Latency(**lat),
            period=WakePeriod(**percentiles(periods),
                              jitter=statistics.pstdev(periods) if len(periods) > 1 else None,
                              samples=len(periods)),
            processes=Processes(baseline.get("procs"), procs[0] if procs else None,
                                procs[-1] if procs else None, max(procs) if procs else None),
            zombies_max=max((r.get("zombies", 0) for r in cycles), default=0),
            kthreads=KthreadCensus.from_json(thread_census(records)),
            checks_failed=checks)

    def to_json(self) -> dict[str, Any]:
        return {"failed_cycles": self.failed_cycles, "latency_ms": self.latency.to_json(),
                "period_ms": self.period.to_json(), "processes": self.processes.to_json(),
                "zombies_max": self.zombies_max, "kthreads": self.kthreads.to_json(),
                "checks_failed": dict(self.checks_failed)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CycleStats:
        return cls(int(d.get("failed_cycles") or 0), Latency.from_json(d.get("latency_ms")),
                   WakePeriod.from_json(d.get("period_ms")),
                   Processes.from_json(d.get("processes")), int(d.get("zombies_max") or 0),
                   KthreadCensus.from_json(d.get("kthreads")),
                   {str(k): int(v) for k, v in (d.get("checks_failed") or {}).items()})


def _part(cls, d: Mapping[str, Any]):
    """A part of an older or partial summary is there if any of its keys is."""
    return cls.from_json(d) if any(k in d for k in cls.KEYS) else None


@dataclass(frozen=True)
class SoakSummary:
    target: str
    arch: str
    verdict: Verdict
    smp: int = 1
    cpu: str = ""                    # the -cpu asked for (GuestInfo.cpu_model: what ran)
    threading: str | None = None     # "multi", "single", "up" or "kvm"; None before a guest ran
    reason: str = ""
    cycles: int = 0
    failures: tuple[Failure, ...] = ()   # the first MAX_FAILURES
    evidence: tuple[str, ...] = ()       # the soak's own (a crash's report, a hang's dumps)
    setup: SoakSetup | None = None
    module: ModuleInfo | None = None
    guest: GuestInfo | None = None
    stats: CycleStats | None = None
    kmemleak: Kmemleak | None = None
    memory: MemoryTrend | None = None
    seconds: float | None = None
    cycles_per_second: float | None = None   # while cycles ran (host clock)

    @classmethod
    def from_records(cls, records: Sequence[Mapping[str, Any]], failures: Sequence[Failure],
                     verdict: Verdict, **facts: Any) -> SoakSummary:
        """A soak's summary from its records and failures; ``facts``: the other fields."""
        return cls(verdict=verdict, cycles=sum(1 for r in records if r.get("type") == "cycle"),
                   failures=tuple(failures[:MAX_FAILURES]),
                   stats=CycleStats.from_records(records, failures), **facts)

    @classmethod
    def stand_in(cls, target: Target, verdict: Verdict, reason: str) -> SoakSummary:
        """For a matrix cell with no summary of its own (never started, or the lab failed)."""
        return cls(target.name, target.arch, verdict, smp=target.smp, cpu=target.cpu,
                   threading=target.threading("tcg"), reason=reason)

    # ---- readers' questions ----------------------------------------------------------
    @property
    def cpu_model(self) -> str:
        return self.guest.cpu_model if self.guest else ""

    @property
    def kernel_release(self) -> str | None:
        return self.guest.kernel_release if self.guest else None

    @property
    def checks_failed(self) -> Mapping[str, int]:
        return self.stats.checks_failed if self.stats else {}

    def failures_by_check(self) -> dict[str, list[Failure]]:
        """The failures under their check, and a crash or hang as a failure of its own
        ("crash", "hang": the soak's reason and evidence), as JUnit and KCIDB show them."""
        by: dict[str, list[Failure]] = {}
        for f in self.failures:
            by.setdefault(f.check, []).append(f)
        if self.verdict in (Verdict.CRASH, Verdict.HANG):
            by.setdefault(str(self.verdict), []).append(
                Failure(self.cycles, str(self.verdict), self.reason or str(self.verdict),
                        self.evidence))
        return by

    # ---- summary.json ----------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schema": SCHEMA_VERSION, "target": self.target, "arch": self.arch,
            "smp": self.smp, "cpu": self.cpu, "verdict": str(self.verdict),
            "reason": self.reason, "cycles": self.cycles,
            "failures": [f.as_json() for f in self.failures], "evidence": list(self.evidence)}
        if self.threading is not None:
            out["threading"] = self.threading
        for part in (self.setup, self.module, self.guest, self.stats):
            if part is not None:
                out.update(part.to_json())
        if self.kmemleak is not None:
            out["kmemleak"] = self.kmemleak.to_json()
        if self.memory is not None:
            out["memory"] = self.memory.to_json()
        if self.seconds is not None:
            out.update(seconds=self.seconds, cycles_per_second=self.cycles_per_second)
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> SoakSummary:
        """From summary.json's object (any schema up to SCHEMA_VERSION; none: schema 0).
        A LabError in one line says what is wrong; read_summary adds the file."""
        if not isinstance(d, Mapping):
            raise LabError(f"a JSON {type(d).__name__}, not a soak summary object")
        for key in ("target", "verdict"):
            if key not in d:
                raise LabError(f"no {key!r} key: not a soak summary (keys: "
                               f"{', '.join(sorted(d)[:8]) or 'none'})")
        try:
            verdict = Verdict(d["verdict"])
        except ValueError:
            raise LabError(f"'verdict' is {d['verdict']!r}, not one of "
                           f"{', '.join(v.value for v in Verdict)}") from None
        try:
            return cls(
                target=str(d["target"]), arch=str(d.get("arch") or ""), verdict=verdict,
                smp=int(d.get("smp") or 1), cpu=str(d.get("cpu") or ""),
                threading=d.get("threading"), reason=str(d.get("reason") or ""),
                cycles=int(d.get("cycles") or 0),
                failures=tuple(failure_from_json(f) for f in d.get("failures") or ()),
                evidence=tuple(str(e) for e in d.get("evidence") or ()),
                setup=_part(SoakSetup, d), module=_part(ModuleInfo, d),
                guest=_part(GuestInfo, d), stats=_part(CycleStats, d),
                kmemleak=Kmemleak.from_json(d["kmemleak"]) if d.get("kmemleak") is not None
                else None,
                memory=MemoryTrend.from_json(d["memory"]) if d.get("memory") is not None
                else None,
                seconds=_opt_float(d.get("seconds")),
                cycles_per_second=_opt_float(d.get("cycles_per_second")))
        except KeyError as e:
            raise LabError(f"a failure without the {e} key") from None
        except (TypeError, ValueError, AttributeError) as e:
            raise LabError(f"a value of the wrong kind ({type(e).__name__}: {e})") from None

