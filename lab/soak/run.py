"""`lab soak`: load/unload a module N times on a guest and judge every cycle.

This module wires the pieces: build the module and the agent, boot (or adopt)
a guest, deploy, hand the agent's output to a SoakSession, run the soak-wide
checks, and always write the results (records.jsonl, summary.json,
console.log, junit.xml) and shut down the guest the soak booted, whatever
ended the soak: the module, the lab, or a signal.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

from .. import __version__
from ..config import Lab, Target
from ..deploy import module_remote_path, put_file
from ..errors import LabError
from ..guest.qemu import Guest
from ..images import kernel_step
from ..interrupt import reason as stop_reason
from ..junit import write_junit
from ..guest.lifecycle import up
from ..module import BuiltModule, build_module
from ..results import (GuestInfo, Kmemleak, MemoryTrend, ModuleInfo, SoakSetup, SoakSummary,
                       write_summary)
from ..results.files import CONSOLE, JUNIT, SOAK_FILES
from ..ssh import Connection
from ..guest.state import load
from ..verdict import Verdict
from .agent import REMOTE_PATH as AGENT_REMOTE, build_agent
from .checks import judge_kmemleak, parse_kmemleak
from .evidence import capture_hang_evidence, save_console
from .session import ChannelStream, Expectations, SoakSession
from .thresholds import Thresholds, check_overrides, load_thresholds

KMEMLEAK = "/sys/kernel/debug/kmemleak"
KMEMLEAK_MIN_AGE_S = 5.0  # kmemleak reports no object younger than this


@dataclass
class SoakOptions:
    cycles: int = 100
    module_dir: Path | None = None
    params: str = ""
    dwell_every: int = 0
    dwell_s: float = 0.0
    keep: bool = False
    out: Path = Path("results")
    name: str | None = None
    overrides: Mapping[str, float | None] = field(default_factory=dict)
    bare: bool = False          # agent only loads/unloads (benchmarks)
    keep_going: bool = False
    accel: str = "auto"

    def validate(self) -> None:
        """Bad input is a one-line error before anything is built or booted."""
        if self.cycles < 1:
            raise LabError(f"--cycles {self.cycles}: must be 1 or more")
        if (self.dwell_every > 0) != (self.dwell_s > 0):
            raise LabError("--dwell and --dwell-every go together: every K-th cycle "
                           "(--dwell-every K) holds the module --dwell S seconds")
        if self.dwell_every < 0 or self.dwell_s < 0:
            raise LabError("--dwell and --dwell-every must not be negative")
        check_overrides(self.overrides)
        parse_params(self.params)


@dataclass
class SoakResult:
    target: str
    verdict: Verdict
    summary: SoakSummary
    out: Path
    seconds: float

    @property
    def exit_code(self) -> int:
        return self.verdict.exit_code


def parse_params(params: str) -> dict[str, str]:
    out = {}
    for item in shlex.split(params):
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise LabError(f"--params: {item!r} is not key=value")
        out[k] = v
    return out


def expectations(mod: BuiltModule, params: Mapping[str, str], opts: SoakOptions) -> Expectations:
    s = mod.spec
    threads = 0
    if s.thread_name:
        try:
            threads = int(params.get(s.threads_param, s.default_threads)) if s.threads_param \
                else s.default_threads
        except ValueError:
            raise LabError(f"--params: {s.threads_param} must be a number") from None
    period = float(params.get(s.period_param, s.default_period_ms)) if s.period_param else None
    return Expectations(threads=threads, period_ms=period,
                        dwell_s=opts.dwell_s if opts.dwell_every else 0.0)


def agent_argv(mod: BuiltModule, remote_ko: str, opts: SoakOptions, expect: Expectations,
               t: Thresholds) -> list[str]:
    argv = [AGENT_REMOTE, "-m", remote_ko, "-n", mod.spec.module, "-c", str(opts.cycles)]
    if opts.params:
        argv += ["-p", opts.params]
    if opts.bare:
        return argv + ["-b"]
    argv += ["-H", str(int(t.hold_ms)), "-W", str(int(t.hold_limit_ms)),
             "-U", str(int(t.max_unload_ms))]
    if mod.spec.thread_name and expect.threads:
        argv += ["-t", mod.spec.thread_name, "-T", str(expect.threads)]
    if mod.spec.start_message:
        argv += ["-s", mod.spec.start_message]
    if mod.spec.wake_message:
        argv += ["-w", mod.spec.wake_message]
    if opts.dwell_every and opts.dwell_s:
        argv += ["-D", str(opts.dwell_every), "-S", str(int(opts.dwell_s * 1000))]
    if opts.keep_going:
        argv.append("-k")
    return argv


def kmemleak_clear(conn: Connection) -> bool:
    """Forget what kmemleak knew before the soak; False if this kernel has no kmemleak."""
    r = conn.run(f"mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug; "
                 f"test -w {KMEMLEAK} && echo clear > {KMEMLEAK}", timeout=30, check=False)
    return r.exit_code == 0


def kmemleak_scan(conn: Connection, since_last_load: float) -> str:
    """Scan once every object the soak allocated is old enough to be reported, twice:
    kmemleak treats an object whose contents changed since the previous scan (a new
    one always has) as referenced for that scan, so a leak shows from the second."""
    wait = max(0.0, KMEMLEAK_MIN_AGE_S + 0.5 - since_last_load)
    r = conn.run(f"sleep {wait:.1f}; echo scan > {KMEMLEAK} && echo scan > {KMEMLEAK} && "
                 f"cat {KMEMLEAK}", timeout=300, check=False)
    if r.exit_code != 0:
        raise LabError(f"kmemleak scan failed (exit {r.exit_code}): {r.stderr.strip()[-300:]}")
    return r.stdout


def _guest_for(lab: Lab, target: Target, opts: SoakOptions, status) -> tuple[Guest, Connection, bool]:
    """A running guest of ``target``: adopted when one of that name runs, else booted."""
    name = opts.name or target.name
    rec = load(name)
    if rec is not None and rec.target != target.name:
        raise LabError(f"guest {name} runs target {rec.target}, not {target.name}")
    if rec is not None and Guest(rec).running():
        want = kernel_step(lab, target).key
        if rec.kernel_key != want:
            raise LabError(f"guest {name} runs kernel {rec.kernel_key}, but this soak's kernel "
                           f"(--kernel/--config) is {want}: `lab down {name}` first, or soak "
                           "without those options")
        guest = Guest(rec, target)
        return guest, guest.connection().connect(), False
    if rec is not None:
        Guest(rec).shutdown(hard_only=True)
    guest, conn = up(lab, target, name=name, accel=opts.accel, status=status)
    return guest, conn, True


@dataclass
class _Known:
    """What the soak has learned so far: the summary says it, whatever ends the soak."""
    target: Target
    setup: SoakSetup
    module: ModuleInfo | None = None
    guest: Guest | None = None
    guest_booted: bool = False
    kmemleak: Kmemleak | None = None
    memory: MemoryTrend | None = None

    def summary(self, records: list[dict[str, Any]], failures: list, verdict: Verdict,
                reason: str, evidence: list[str], seconds: float,
                cycles_per_second: float | None) -> SoakSummary:
        """The one place a soak's summary is made."""
        t, rec = self.target, self.guest.record if self.guest else None
        guest = None if rec is None else GuestInfo(
            kernel_release=rec.kernel_release, kernel_key=rec.kernel_key,
            rootfs_key=rec.rootfs_key, palcode=t.palcode, palcode_key=rec.bios_key,
            cpu_model=rec.cpu_model, boot_attempts=rec.boot_attempts,
            booted_by_soak=self.guest_booted, from_snapshot=rec.from_snapshot,
            ready_seconds=rec.ready_seconds)
        return SoakSummary.from_records(
            records, failures, verdict, target=t.name, arch=t.arch,
            # the guest's own count and threading once one ran (an adopted guest may differ)
            smp=rec.smp if rec else t.smp, cpu=t.cpu, threading=rec.threading if rec else None,
            reason=reason, evidence=tuple(evidence), setup=self.setup, module=self.module,
            guest=guest, kmemleak=self.kmemleak, memory=self.memory,
            seconds=round(seconds, 2), cycles_per_second=cycles_per_second)


def run_soak(lab: Lab, target: Target, opts: SoakOptions,
             progress: Callable[[dict[str, Any], int], None] = lambda rec, fails: None,
             status: Callable[[str], None] = lambda m: None,
             on_record: Callable[[dict[str, Any], Guest], None] = lambda rec, g: None) -> SoakResult:
    """Run one soak on ``target``. A module failure, a lab failure after the guest is up,
    and a stop signal all end in a verdict with every result file written; only
    trouble before the guest runs (bad input, builds, boot) raises."""
    opts.validate()
    t_start = time.monotonic()
    out = opts.out
    out.mkdir(parents=True, exist_ok=True)
    for stale in SOAK_FILES:
        (out / stale).unlink(missing_ok=True)
    thresholds = load_thresholds(target.arch, overrides=opts.overrides,
                                 factor=target.timeout_factor,
                                 one_thread_smp=target.threading("tcg") == "single")
    params = parse_params(opts.params)
    known = _Known(target, SoakSetup(
        kernel_profile=target.kernel, kernel=kernel_step(lab, target).name,
        kernel_fragments=tuple(target.config), requested_cycles=opts.cycles,
        params=opts.params, lab_version=__version__, timeout_factor=target.timeout_factor,
        timeout_policy=target.timeout_policy,
        started=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        thresholds=asdict(thresholds)))
    session: SoakSession | None = None
    guest: Guest | None = None
    try:
        status("building module and agent")
        mod, _ = build_module(lab, target, opts.module_dir, status=status)
        agent = build_agent(lab, target)
        expect = expectations(mod, params, opts)
        known.module = ModuleInfo(mod.spec.module, mod.sha256, expect.threads, expect.period_ms)
        guest, conn, owned = _guest_for(lab, target, opts, status)
        known.guest, known.guest_booted = guest, owned
        guest.console.poll()
        console_start = guest.console.offset
        session = SoakSession(guest, thresholds, out, expect, progress=progress,
                              on_record=on_record, hang_evidence=capture_hang_evidence,
                              keep_going=opts.keep_going, module=mod.spec.module,
                              agent_listens=not (opts.keep_going or opts.bare))
        try:
            _soak(session, conn, mod, agent, opts, expect, thresholds, known, status)
        except KeyboardInterrupt:
            session.end(Verdict.INTERRUPTED,
                        f"{stop_reason()} after {session.cycles_done()} cycle(s)")
        except Exception as e:  # SSH gone, guest gone, a failed command: the lab's trouble
            session.end(Verdict.INFRA, str(e) if isinstance(e, LabError)
                        else f"{type(e).__name__}: {e}")
        finally:
            session.close()
            save_console(guest, console_start, out / CONSOLE)
            conn.close()
            if session.verdict in (Verdict.HANG, Verdict.CRASH) or owned and not opts.keep \
                    or not guest.running():
                guest.shutdown(soft_timeout=target.timeouts.shutdown,
                               hard_only=session.verdict in (Verdict.HANG, Verdict.CRASH,
                                                             Verdict.INTERRUPTED))
    except (KeyboardInterrupt, LabError) as e:
        if session is None:  # stopped or failed while building or booting: still a summary
            verdict = Verdict.INFRA if isinstance(e, LabError) else Verdict.INTERRUPTED
            reason = str(e) if isinstance(e, LabError) else f"{stop_reason()} before the first cycle"
            _write(out, known.summary([], [], verdict, reason, [], time.monotonic() - t_start,
                                      None))
            raise
        # A signal during the teardown: the verdict stands (end() keeps the first one).
        session.end(Verdict.INTERRUPTED, f"{stop_reason()} after {session.cycles_done()} cycle(s)")
    assert session.verdict is not None
    seconds = time.monotonic() - t_start
    summary = known.summary(session.records, session.failures, session.verdict, session.reason,
                            session.evidence, seconds, _rate(session.records))
    _write(out, summary)
    return SoakResult(target.name, session.verdict, summary, out, seconds)


def _soak(session: SoakSession, conn: Connection, mod: BuiltModule, agent: Path,
          opts: SoakOptions, expect: Expectations, t: Thresholds, known: _Known,
          status) -> None:
    name = session.guest.record.name
    status(f"deploying to {name}")
    remote_ko = module_remote_path(mod.spec.module, mod.path)
    put_file(conn, mod.path, remote_ko)
    put_file(conn, agent, AGENT_REMOTE, mode=0o755)
    leakcheck = not opts.bare and kmemleak_clear(conn)
    known.kmemleak = Kmemleak(available=leakcheck)
    argv = agent_argv(mod, remote_ko, opts, expect, t)
    status(f"soaking {mod.spec.module} on {name}")
    stream = ChannelStream(conn.open_channel(argv))
    verdict = session.run(stream)
    if verdict not in (Verdict.PASS, Verdict.FAIL) or opts.bare:
        return
    known.memory = MemoryTrend.from_json(session.judge_memory())
    if leakcheck:
        status("kmemleak scan")
        last = max((r["host_time"] for r in session.records if r.get("type") == "cycle"),
                   default=time.time())
        leaks = parse_kmemleak(kmemleak_scan(conn, time.time() - last))
        km, failure = judge_kmemleak(leaks, session.soak_tasks(), mod.spec.module)
        known.kmemleak = Kmemleak(True, km["objects"], km["attributed"], km["bytes_attributed"])
        if failure:
            session.add_failure(failure)


def _write(out: Path, summary: SoakSummary) -> None:
    write_summary(out, summary)
    write_junit(out / JUNIT, [summary])


def _rate(records: list[dict[str, Any]]) -> float | None:
    """Cycles per second while cycles ran (host clock, baseline to last record)."""
    times = [r["host_time"] for r in records if r.get("type") in ("baseline", "cycle")]
    cycles = sum(1 for r in records if r.get("type") == "cycle")
    return round(cycles / (times[-1] - times[0]), 3) if cycles and times[-1] > times[0] else None
