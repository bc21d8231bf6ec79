"""The soak core: one object reads the agent's records as they come, judges each,
appends it to records.jsonl, watches the console, and decides the verdict.

Every way a soak can end goes through here: the agent's end record (pass or
fail), an oops or panic on the console (crash), a cycle past its deadline or a
stall the kernel reports (hang, one path, with evidence), the agent or QEMU
dying (infra, unless the kernel says the module caused it), a stop request
(interrupted). The agent's output arrives through an ``AgentStream``, so the
whole decision is tested against recorded streams and console logs.
"""

from __future__ import annotations

import json
import os
import select
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

from ..guest.console import FATAL, SHUTDOWN, STUCK, findings, first_report
from ..interrupt import STOP, reason as stop_reason
from ..results.files import RECORDS
from ..verdict import Verdict
from .checks import Failure, check_blocked, check_cycle, ignored_params, memory_trend
from .thresholds import Thresholds


class AgentStream(Protocol):
    def poll(self, timeout: float) -> tuple[list[bytes], int | None]:
        """Complete lines received within ``timeout``, and the agent's exit status once it
        has ended and all its output has been read (None before)."""

    def answer(self, go_on: bool) -> None:
        """Tell the agent the host's judgement of one cycle: go on, or stop."""


class ChannelStream:
    """An AgentStream over a paramiko channel running the agent."""

    def __init__(self, channel):
        self.ch = channel
        self.buf = b""
        self.stderr = b""

    def poll(self, timeout: float) -> tuple[list[bytes], int | None]:
        select.select([self.ch], [], [], timeout)
        while self.ch.recv_ready():
            self.buf += self.ch.recv(65536)
        while self.ch.recv_stderr_ready():
            self.stderr = (self.stderr + self.ch.recv_stderr(65536))[-4096:]
        *lines, self.buf = self.buf.split(b"\n")
        done = self.ch.exit_status_ready() and not self.ch.recv_ready()
        return lines, (self.ch.recv_exit_status() if done else None)

    def answer(self, go_on: bool) -> None:
        try:
            self.ch.sendall(b"c" if go_on else b"s")
        except OSError:    # the agent or the channel has gone: poll() tells the rest
            pass


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
        if self.f.closed:
            return
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()


@dataclass
class Expectations:
    """What lab.yaml adds to the checks (nothing is required without one)."""

    threads: int = 0                 # threads named in lab.yaml
    period_ms: float | None = None   # the module's wake-up period
    dwell_s: float = 0.0             # longest planned extra hold of one cycle


@dataclass
class SoakSession:
    guest: Any                       # lab.guest.qemu.Guest, or a fake with the same surface
    thresholds: Thresholds
    out: Path
    expect: Expectations = field(default_factory=Expectations)
    progress: Callable[[dict[str, Any], int], None] = lambda rec, fails: None
    on_record: Callable[[dict[str, Any], Any], None] = lambda rec, guest: None
    hang_evidence: Callable[[Any, Path, int | None], Any] | None = None  # -> HangEvidence
    clock: Callable[[], float] = time.monotonic
    stop: Any = STOP
    keep_going: bool = False         # a failed cycle does not end the soak
    # The agent waits for the host's answer to each cycle (soak-agent.c); with -k or
    # -b it reads none, and answers it never reads would fill its SSH channel.
    agent_listens: bool = True
    module: str = ""                 # the module's name, as the kernel's messages give it

    def __post_init__(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self.sink = RecordSink(self.out / RECORDS)
        self.records: list[dict[str, Any]] = []
        self.failures: list[Failure] = []
        self.verdict: Verdict | None = None
        self.reason = ""
        self.evidence: list[str] = []
        self.blocked: dict[int, Failure] = {}
        self.agent_pid: int | None = None
        self.ended = False
        self.stream: AgentStream | None = None
        self.stopping = False        # the agent has been told to stop after a failed cycle
        self.console_from = len(self.guest.console.lines)

    # ---- reading the agent ----------------------------------------------------------
    def run(self, stream: AgentStream) -> Verdict:
        """Read records until the soak ends one way or another; returns the verdict."""
        self.stream = stream
        last_cycle = self.clock()
        t = self.thresholds
        # a cycle may hold the module --hold-ms and dwell on purpose: not part of the deadline
        deadline = t.cycle_deadline_s + self.expect.dwell_s + t.hold_ms / 1000.0
        while self.verdict is None:
            lines, status = stream.poll(0.25)
            for line in lines:
                if self._take(line):
                    last_cycle = self.clock()
                if self.verdict is not None:
                    return self.verdict
            if self._watch_console():
                break
            if not self.guest.running():
                self._lost_guest()
            elif status is not None:
                if self.ended:
                    break
                self._agent_died(status)
            elif self.clock() - last_cycle > deadline:
                n = self.cycles_done() + 1
                self._hang(f"cycle {n} gave no record in {deadline:g}s", records_stopped=True)
            elif self.stop.is_set():
                self.end(Verdict.INTERRUPTED, f"{stop_reason()} after {self.cycles_done()} cycle(s)")
        if self.verdict is None:
            self.verdict = Verdict.FAIL if self.failures else Verdict.PASS
        return self.verdict

    def _take(self, line: bytes) -> bool:
        """Judge and store one line; True if it finished a cycle (or is the baseline)."""
        if not line.strip():
            return False
        try:
            rec = json.loads(line)
        except ValueError:
            rec = {"type": "garbage", "line": line.decode(errors="replace")}
        rec["host_time"] = round(time.time(), 3)
        kind = rec.get("type")
        if kind == "cycle":
            self._judge(rec)
        elif kind == "unload-blocked":
            f = check_blocked(rec)
            self.blocked[f.cycle] = f
            self.failures.append(f)
        self.sink.write(rec)
        self.records.append(rec)
        if kind == "baseline":
            self.agent_pid = rec.get("agent_pid")
        elif kind == "end":
            self.ended = True
        elif kind == "error":
            self.end(Verdict.INFRA, f"soak agent: {rec.get('err')}")
        self.progress(rec, len({f.cycle for f in self.failures}))
        self.on_record(rec, self.guest)
        return kind in ("baseline", "cycle")

    def _judge(self, rec: dict[str, Any]) -> None:
        """The one judgement of a cycle; the agent hears whether to go on."""
        for f in check_cycle(rec, self.thresholds, self.expect.threads, self.expect.period_ms):
            if not (f.check == "timing-unload" and rec["n"] in self.blocked):
                self.failures.append(f)
        failed = sorted({f.check for f in self.failures if f.cycle == rec["n"]})
        rec["failures"] = failed
        ignored = ignored_params(rec, self.module) if rec["n"] == 1 and self.module else []
        if ignored:
            self.end(Verdict.INFRA, f"--params: the kernel ignored {', '.join(map(repr, ignored))} "
                     f"(\"{self.module}: unknown parameter ... ignored\" at the first load): "
                     "no such parameter of the module, so it was never tested")
        go_on = self.verdict is None and not self.stopping and (self.keep_going or not failed)
        self.stopping = self.stopping or not go_on
        if self.stream is not None and self.agent_listens:
            self.stream.answer(go_on)

    # ---- endings ------------------------------------------------------------------------
    def end(self, verdict: Verdict, reason: str, evidence: list[str] | None = None) -> None:
        if self.verdict is None:
            self.verdict, self.reason, self.evidence = verdict, reason, evidence or []

    def _console_lines(self) -> list[str]:
        return self.guest.console.lines[self.console_from:]

    def _watch_console(self) -> bool:
        """The console decides crashes and stalls, whatever the agent says."""
        seen = findings(self.guest.console.poll())
        bad = [f for f in seen if f.kind in FATAL]
        if bad:
            time.sleep(1.0)  # let the rest of the report reach the log
            self.guest.console.poll()
            self.end(Verdict.CRASH, f"kernel {bad[0].kind}: {bad[0].line.strip()}",
                     first_report(self._console_lines()))
            return True
        stuck = [f for f in seen if f.kind in STUCK]
        if stuck:
            self._hang(f"kernel reports {stuck[0].kind}: {stuck[0].line.strip()}")
            return True
        return False

    def _hang(self, reason: str, records_stopped: bool = False) -> None:
        """The one hang path: the blocked unload's stack if the agent sent one, where
        the agent is, the kernel's task dumps and registers, the console after them.
        Records that stopped on their way to the host are the lab's trouble, not a hang."""
        evidence: list[str] = []
        stalled = ""
        if self.blocked:
            evidence += list(self.blocked[max(self.blocked)].evidence)
        if self.hang_evidence is not None:
            found = self.hang_evidence(self.guest, self.out, self.agent_pid)
            evidence += found.notes
            if found.probe is not None and records_stopped and not self.blocked:
                stalled = found.probe.output_stalled
                if not found.probe.answered:
                    reason += "; the guest answered no new SSH session either"
        self.guest.console.poll()
        evidence += self.guest.console.tail(80).splitlines()
        if stalled:
            self.end(Verdict.INFRA, f"{reason}: {stalled}", evidence)
        else:
            self.end(Verdict.HANG, reason, evidence)

    def _kernel_blames_module(self) -> list[str]:
        time.sleep(0.5)
        self.guest.console.poll()
        return first_report(self._console_lines())

    def _shut_down_from_outside(self) -> str:
        """A reason if the guest was shut down on request while the soak ran."""
        record_dir = getattr(self.guest.record, "path", None)
        if any(SHUTDOWN.search(line) for line in self._console_lines()):
            return "the guest was shut down from outside during the soak (`lab down`, or " \
                   f"poweroff in the guest) after {self.cycles_done()} cycle(s)"
        if record_dir is not None and not record_dir.exists():
            return f"the guest was stopped from outside during the soak (`lab down`) after " \
                   f"{self.cycles_done()} cycle(s)"
        return ""

    def _lost_guest(self) -> None:
        report = self._kernel_blames_module()
        code = self.guest.exit_code()
        if report:
            self.end(Verdict.CRASH, f"QEMU exited (status {code}) after a kernel report", report)
        else:
            self.end(Verdict.INFRA, self._shut_down_from_outside() or f"QEMU exited (status {code})",
                     self.guest.console.tail(40).splitlines())

    def _agent_died(self, status: int) -> None:
        """The agent ended without its end record: killed, or the guest went away under it.
        A crash only if the kernel's log says why (oops, OOM kill)."""
        report = self._kernel_blames_module()
        if report:
            self.end(Verdict.CRASH, f"soak agent died (status {status}) after a kernel report",
                     report)
        elif outside := self._shut_down_from_outside():
            self.end(Verdict.INFRA, outside, self.guest.console.tail(40).splitlines())
        else:
            self.end(Verdict.INFRA, f"soak agent died with status {status} before finishing, "
                     "with no kernel report of a crash (killed from outside?)",
                     self.guest.console.tail(40).splitlines())

    # ---- after the cycles ---------------------------------------------------------------
    def cycles_done(self) -> int:
        return sum(1 for r in self.records if r.get("type") == "cycle")

    def add_failure(self, failure: Failure) -> None:
        """A soak-wide check (memory trend, kmemleak) failed after the cycles."""
        self.failures.append(failure)
        if self.verdict == Verdict.PASS:
            self.verdict = Verdict.FAIL

    def judge_memory(self) -> dict[str, Any]:
        info, failure = memory_trend(self.records, self.thresholds)
        if failure:
            self.add_failure(failure)
        return info

    def soak_tasks(self) -> set[str]:
        """Names of the tasks that ran module code: the agent and every discovered thread."""
        names = {"soak-agent"}
        for r in self.records:
            names.update(t["comm"] for t in r.get("threads", ()))
        return names

    def close(self) -> None:
        self.sink.close()
