"""`lab soak`: load/unload a module N times on a guest and judge every cycle.

The agent runs in the guest and streams one JSON line per cycle over SSH; each
record is judged and appended to records.jsonl at once. The console is
watched the whole time: an oops or panic is a crash; a cycle with no record
before its deadline is a hang, for which evidence (sysrq task dump, QMP
registers) is captured before the guest is killed.
"""

from __future__ import annotations

import json
import os
import select
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from . import __version__
from .agent import REMOTE_PATH as AGENT_REMOTE, build_agent
from .checks import CRASH, FAIL, HANG, INFRA, PASS, Failure, check_cycle, summarize
from .config import Lab, Target
from .console import FATAL, STUCK, findings
from .deploy import module_remote_path, put_file
from .errors import LabError
from .guest import Guest
from .junit import write_junit
from .lifecycle import up
from .module import BuiltModule, build_module
from .state import load
from .thresholds import Thresholds, load_thresholds


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


@dataclass
class SoakResult:
    target: str
    verdict: str
    summary: dict[str, Any]
    out: Path
    seconds: float

    @property
    def exit_code(self) -> int:
        from .checks import VERDICT_EXIT
        return VERDICT_EXIT[self.verdict]


def parse_params(params: str) -> dict[str, str]:
    out = {}
    for item in shlex.split(params):
        if "=" not in item:
            raise LabError(f"--params: {item!r} is not key=value")
        k, v = item.split("=", 1)
        out[k] = v
    return out


def expected_threads(mod: BuiltModule, params: Mapping[str, str]) -> int:
    s = mod.spec
    if not s.thread_name:
        return 0
    try:
        return int(params.get(s.threads_param, s.default_threads)) if s.threads_param else s.default_threads
    except ValueError:
        raise LabError(f"--params: {s.threads_param} must be a number") from None


def module_period(mod: BuiltModule, params: Mapping[str, str]) -> float | None:
    s = mod.spec
    if not s.period_param:
        return None
    return float(params.get(s.period_param, s.default_period_ms))


def agent_argv(mod: BuiltModule, remote_ko: str, opts: SoakOptions, threads: int,
               t: Thresholds) -> list[str]:
    argv = [AGENT_REMOTE, "-m", remote_ko, "-n", mod.spec.module, "-c", str(opts.cycles),
            "-W", str(int(t.thread_wait_ms))]
    if opts.params:
        argv += ["-p", opts.params]
    if opts.bare:
        return argv + ["-b"]
    if mod.spec.thread_name and threads:
        argv += ["-t", mod.spec.thread_name, "-T", str(threads)]
    if mod.spec.start_message:
        argv += ["-s", mod.spec.start_message]
    if mod.spec.wake_message:
        argv += ["-w", mod.spec.wake_message]
    if opts.dwell_every and opts.dwell_s:
        argv += ["-D", str(opts.dwell_every), "-S", str(int(opts.dwell_s * 1000))]
    if opts.keep_going:
        argv.append("-k")
    return argv


class RecordSink:
    """records.jsonl, appended and flushed per record; fsynced at least once a second."""

    def __init__(self, path: Path):
        self.f = open(path, "a", encoding="utf-8")
        self.last_sync = time.monotonic()

    def write(self, rec: Mapping[str, Any]) -> None:
        self.f.write(json.dumps(rec, separators=(",", ":")) + "\n")
        self.f.flush()
        if time.monotonic() - self.last_sync > 1.0:
            os.fsync(self.f.fileno())
            self.last_sync = time.monotonic()

    def close(self) -> None:
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()


def capture_hang_evidence(guest: Guest, out: Path) -> list[str]:
    """Task dumps through sysrq and CPU registers through QMP, before the guest is killed.

    sysrq goes through the emulated keyboard (QMP sendkey), which works even when
    a spinning thread starves user space; SSH is only the fallback.
    """
    notes = []
    before = guest.console.offset
    sent = False
    for key in ("alt-sysrq-w", "alt-sysrq-t", "alt-sysrq-l"):
        try:
            guest.qmp("human-monitor-command", timeout=5, **{"command-line": f"sendkey {key}"})
            sent = True
        except Exception as e:
            notes.append(f"QMP sendkey {key} failed: {e}")
            break
        time.sleep(1.0)
    if sent:
        notes.append("sysrq w, t and l sent through the keyboard (QMP sendkey)")
    else:
        try:
            with guest.connection(command_timeout=10).connect() as c:
                c.run("echo w > /proc/sysrq-trigger; echo t > /proc/sysrq-trigger", timeout=10,
                      check=False)
            notes.append("sysrq w and t requested over SSH")
        except Exception as e:
            notes.append(f"sysrq over SSH failed too: {e}")
    time.sleep(2.0)
    try:
        regs = guest.qmp("human-monitor-command", timeout=10, **{"command-line": "info registers -a"})
        (out / "registers.txt").write_text(str(regs))
        notes.append("CPU registers saved to registers.txt")
    except Exception as e:
        notes.append(f"QMP register dump failed: {e}")
    if _save_console(guest, before, out / "hang-console.txt"):
        notes.append("console output after the hang saved to hang-console.txt")
    return notes


def run_soak(lab: Lab, target: Target, opts: SoakOptions,
             progress: Callable[[dict[str, Any], int], None] = lambda rec, fails: None,
             status: Callable[[str], None] = lambda m: None,
             on_record: Callable[[dict[str, Any], Guest], None] = lambda rec, g: None) -> SoakResult:
    """Run one soak on ``target``; never raises for a module failure, only for infra."""
    t_start = time.monotonic()
    out = opts.out
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("records.jsonl", "summary.json", "console.log", "junit.xml"):
        (out / stale).unlink(missing_ok=True)
    thresholds = load_thresholds(target.arch, overrides=opts.overrides)
    params = parse_params(opts.params)

    status("building module and agent")
    mod, _ = build_module(lab, target, opts.module_dir, status=status)
    agent = build_agent(lab, target)
    threads = expected_threads(mod, params)
    period = module_period(mod, params)

    name = opts.name or target.name
    rec = load(name)
    owned = rec is None or not Guest(rec).running()
    if rec is not None and rec.target != target.name:
        raise LabError(f"guest {name} runs target {rec.target}, not {target.name}")
    if owned:
        if rec is not None:
            Guest(rec).shutdown(hard_only=True)
        guest, conn = up(lab, target, name=name, accel=opts.accel, status=status)
    else:
        assert rec is not None
        guest = Guest(rec, target)
        conn = guest.connection().connect()
    guest.console.poll()
    console_start = guest.console.offset

    sink = RecordSink(out / "records.jsonl")
    failures: list[Failure] = []
    records: list[dict[str, Any]] = []
    verdict, reason, evidence = PASS, "", []
    try:
        status(f"deploying to {name}")
        remote_ko = module_remote_path(mod.spec.module, mod.path)
        put_file(conn, mod.path, remote_ko)
        put_file(conn, agent, AGENT_REMOTE, mode=0o755)
        argv = agent_argv(mod, remote_ko, opts, threads, thresholds)
        status(f"soaking {mod.spec.module} on {name}")
        verdict, reason, evidence = _stream(guest, conn, argv, thresholds, threads, period, opts,
                                            sink, records, failures, progress, on_record, out)
    except LabError as e:
        verdict, reason = INFRA, str(e)
    finally:
        sink.close()
        _save_console(guest, console_start, out / "console.log")
        conn.close()
        if verdict == HANG or (owned and not opts.keep) or not guest.running():
            guest.shutdown(soft_timeout=target.timeouts.shutdown, hard_only=verdict in (HANG, CRASH))
    seconds = time.monotonic() - t_start
    summary = summarize(records, failures, verdict, thresholds, {
        "target": target.name, "arch": target.arch, "smp": guest.record.smp,
        "cpu": target.cpu, "reason": reason, "evidence": evidence,
        "module": mod.spec.module, "module_sha256": mod.sha256, "params": opts.params,
        "kernel_release": guest.record.kernel_release, "kernel_key": guest.record.kernel_key,
        "rootfs_key": guest.record.rootfs_key, "lab_version": __version__,
        "boot_attempts": guest.record.boot_attempts,
        "requested_cycles": opts.cycles, "seconds": round(seconds, 2),
        "cycles_per_second": _rate(records),
        "expected_threads": threads, "module_period_ms": period,
    })
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    write_junit(out / "junit.xml", [summary])
    return SoakResult(target.name, verdict, summary, out, seconds)


def _rate(records: list[dict[str, Any]]) -> float | None:
    """Cycles per second while cycles ran (host clock, baseline to last record)."""
    times = [r["host_time"] for r in records if r.get("type") in ("baseline", "cycle")]
    cycles = sum(1 for r in records if r.get("type") == "cycle")
    return round(cycles / (times[-1] - times[0]), 3) if cycles and times[-1] > times[0] else None


def _save_console(guest: Guest, start: int, dest: Path) -> bool:
    """Copy the guest's console log from byte ``start`` to ``dest`` (empty if unreadable)."""
    try:
        with open(guest.record.console_log, "rb") as f:
            f.seek(start)
            dest.write_bytes(f.read())
        return True
    except OSError:
        dest.write_bytes(b"")
        return False


def _stream(guest: Guest, conn, argv, t: Thresholds, threads: int, period: float | None,
            opts: SoakOptions, sink: RecordSink, records: list, failures: list,
            progress, on_record, out: Path) -> tuple[str, str, list[str]]:
    """Read agent records until it ends, the kernel crashes, or a cycle hangs."""
    ch = conn.open_channel(argv)
    buf = b""
    dwell_extra = opts.dwell_s if opts.dwell_every else 0.0
    last_record = time.monotonic()
    ended = False
    while True:
        select.select([ch], [], [], 0.25)
        while ch.recv_ready():
            buf += ch.recv(65536)
        while ch.recv_stderr_ready():
            ch.recv_stderr(65536)
        *lines, buf = buf.split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                rec = {"type": "garbage", "line": line.decode(errors="replace")}
            last_record = time.monotonic()
            rec["host_time"] = round(time.time(), 3)
            if rec.get("type") == "cycle":
                found = check_cycle(rec, t, threads, period)
                rec["failures"] = [f.check for f in found]
                failures.extend(found)
            sink.write(rec)
            records.append(rec)
            if rec.get("type") == "end":
                ended = True
            if rec.get("type") == "error":
                return INFRA, f"soak agent: {rec.get('err')}", []
            progress(rec, len({f.cycle for f in failures}))
            on_record(rec, guest)
        # The console decides crashes and stalls, whatever the channel says.
        seen = findings(guest.console.poll())
        bad = [f for f in seen if f.kind in FATAL]
        if bad:
            time.sleep(1.0)
            guest.console.poll()
            return CRASH, f"kernel {bad[0].kind}: {bad[0].line.strip()}", guest.console.tail(60).splitlines()
        stuck = [f for f in seen if f.kind in STUCK]
        if stuck:
            notes = capture_hang_evidence(guest, out)
            guest.console.poll()
            return HANG, f"kernel reports {stuck[0].kind}: {stuck[0].line.strip()}", \
                notes + guest.console.tail(80).splitlines()
        if not guest.running():
            return CRASH if failures else INFRA, f"QEMU exited (status {guest.exit_code()})", \
                guest.console.tail(40).splitlines()
        if ended or (ch.exit_status_ready() and not ch.recv_ready()):
            if not ended:
                code = ch.recv_exit_status()
                return (CRASH if code in (-1, 137, 139) or code > 128 else INFRA,
                        f"soak agent died with status {code} before finishing", guest.console.tail(40).splitlines())
            break
        if time.monotonic() - last_record > t.cycle_deadline_s + dwell_extra:
            n = sum(1 for x in records if x.get("type") == "cycle") + 1
            notes = capture_hang_evidence(guest, out)
            guest.console.poll()
            return HANG, f"cycle {n} gave no record in {t.cycle_deadline_s + dwell_extra:g}s", \
                notes + guest.console.tail(80).splitlines()
    return (FAIL if failures else PASS), "", []
