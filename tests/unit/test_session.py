"""The soak core against recorded agent streams and console logs: every ending.

Streams and consoles under tests/data/soak/ were recorded from real soaks of
the fixtures in tests/faulty and tests/good (records.jsonl and console.log of
the run, the host's fields stripped).
"""

import json
import threading
from pathlib import Path

import pytest

from lab.guest.console import ConsoleLog, first_report
from lab.soak.evidence import AgentProbe, HangEvidence
from lab.soak.session import Expectations, SoakSession
from lab.soak.thresholds import Thresholds
from lab.verdict import Verdict

DATA = Path(__file__).resolve().parent.parent / "data" / "soak"
T = Thresholds(cycle_deadline_s=10, max_unload_ms=1000)


class FakeRecord:
    name = "g"


class FakeGuest:
    """The surface of lab.guest.qemu.Guest that a session uses."""

    def __init__(self, console: Path, alive: bool = True):
        self.console = ConsoleLog(console)
        self.alive = alive
        self.record = FakeRecord()

    def running(self) -> bool:
        return self.alive

    def exit_code(self):
        return None if self.alive else 0


class Replay:
    """An AgentStream that replays recorded lines, then exits (or goes silent). Like the
    agent, it hears the host's answer to each cycle: after a stop it gives at most the
    one cycle already under way, then its end record."""

    def __init__(self, lines, exit_status=0, then_silent=False, on_poll=None):
        self.lines = [x if isinstance(x, bytes) else x.encode() for x in lines]
        self.exit_status, self.then_silent, self.on_poll = exit_status, then_silent, on_poll
        self.polls = 0
        self.answers: list[bool] = []
        self.cycles_given = 0

    def answer(self, go_on):
        self.answers.append(go_on)

    def _told_to_stop(self) -> bool:
        # cycle N starts only once cycles up to N-2 are answered (soak-agent.c)
        return False in self.answers[:max(0, self.cycles_given - 1)]

    def poll(self, timeout):
        self.polls += 1
        if self.on_poll:
            self.on_poll(self.polls)
        if self.lines and b'"type":"cycle"' in self.lines[0] and self._told_to_stop():
            self.lines = [x for x in self.lines if b'"type":"end"' in x] or \
                [f'{{"type":"end","cycles":{self.cycles_given}}}'.encode()]
        if self.lines:
            line = self.lines.pop(0)
            self.cycles_given += b'"type":"cycle"' in line
            return [line], None
        return [], None if self.then_silent else self.exit_status


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        self.t += 1.0
        return self.t


def recorded(case: str) -> list[str]:
    return (DATA / case / "agent.jsonl").read_text().splitlines()


def session(tmp_path, console_text="", alive=True, **kw):
    tmp_path.mkdir(parents=True, exist_ok=True)
    console = tmp_path / "console.log"
    console.write_text(console_text)
    guest = FakeGuest(console, alive)
    evidence_calls = []

    probe = kw.pop("probe", AgentProbe(True, "D", "kthread_stop"))

    def hang_evidence(g, out, agent_pid):
        evidence_calls.append(out)
        return HangEvidence(["sysrq w, t and l sent through the keyboard (QMP sendkey)"], probe)
    s = SoakSession(guest, T, tmp_path / "out", kw.pop("expect", Expectations()),
                    hang_evidence=hang_evidence, clock=Clock(), stop=kw.pop("stop", threading.Event()),
                    **kw)
    return s, guest, evidence_calls


def test_shipped_module_stream_passes(tmp_path):
    s, _, _ = session(tmp_path)
    lines = recorded("pass-thread-mod")
    assert s.run(Replay(lines)) == Verdict.PASS
    written = (tmp_path / "out" / "records.jsonl").read_text().splitlines()
    assert len(written) == len(lines)
    assert all(json.loads(x).get("failures", []) == [] for x in written)


def edited(lines: list[str], cycle: int, **fields) -> list[str]:
    """The recorded stream with one cycle's record changed."""
    out = []
    for line in lines:
        rec = json.loads(line)
        if rec.get("type") == "cycle" and rec["n"] == cycle:
            rec.update(fields)
        out.append(json.dumps(rec, separators=(",", ":")))  # as the agent writes them
    return out


def cycles_of(s) -> list[int]:
    return [r["n"] for r in s.records if r.get("type") == "cycle"]


@pytest.mark.parametrize("keep_going", [False, True])
def test_a_failed_timing_check_ends_the_soak_unless_keep_going(tmp_path, keep_going):
    # unload took 2.5 s in cycle 3 (limit 1 s): the host alone judges timing
    lines = edited(recorded("pass-thread-mod"), 3, unload_us=2_500_000)
    # with --keep-going the agent (-k) reads no answers, and gets none
    s, _, _ = session(tmp_path, keep_going=keep_going, agent_listens=not keep_going)
    stream = Replay(lines)
    assert s.run(stream) == Verdict.FAIL
    assert [f.check for f in s.failures] == ["timing-unload"] and s.failures[0].cycle == 3
    if keep_going:
        assert cycles_of(s) == list(range(1, 21)) and stream.answers == []
    else:
        # the agent hears "stop" for cycle 3 while cycle 4 may already run
        assert cycles_of(s) in ([1, 2, 3], [1, 2, 3, 4])
        assert stream.answers[:3] == [True, True, False]
        assert s.records[-1]["type"] == "end"


def test_kernel_log_lines_are_judged_on_the_host_by_the_console_patterns(tmp_path):
    warn = "WARNING: CPU: 1 PID: 93 at kernel/kthread.c:659 kthread_stop+0x1c/0x60"
    chatter = "thread_mod: device not answering, retrying"   # a pr_warn of its own
    lines = edited(recorded("pass-thread-mod"), 2, klog=[chatter, warn])
    lines = edited(lines, 5, klog=[chatter])
    s, _, _ = session(tmp_path)
    assert s.run(Replay(lines)) == Verdict.FAIL
    assert [(f.cycle, f.check, f.evidence) for f in s.failures] == [(2, "kernel-log", (warn,))]


def test_a_parameter_the_kernel_ignored_is_bad_input_after_the_first_load(tmp_path):
    lines = edited(recorded("pass-thread-mod"), 1,
                   klog=["thread_mod: unknown parameter 'nthread' ignored"])
    s, _, _ = session(tmp_path, module="thread_mod")
    stream = Replay(lines)
    assert s.run(stream) == Verdict.INFRA and s.verdict.exit_code == 2
    assert "--params: the kernel ignored 'nthread'" in s.reason
    assert stream.answers == [False]


def test_thread_left_stream_fails_with_the_thread_named(tmp_path):
    s, _, _ = session(tmp_path)
    assert s.run(Replay(recorded("thread-left"), exit_status=1)) == Verdict.FAIL
    left = [f for f in s.failures if f.check == "threads-left"]
    assert left and "faulty worker" in left[0].message


def test_blocked_unload_fails_at_once_then_hangs_with_its_stack(tmp_path):
    s, _, calls = session(tmp_path)
    seen = []
    s.progress = lambda rec, fails: seen.append((rec["type"], fails))
    verdict = s.run(Replay(recorded("ignore-stop"), then_silent=True))
    assert verdict == Verdict.HANG
    # the timing failure was known (and shown) before the deadline
    assert ("unload-blocked", 1) in seen
    assert [f.check for f in s.failures] == ["timing-unload"]
    assert "no record in 10s" in s.reason
    assert calls, "hang evidence was captured"
    assert s.evidence[0].startswith("/proc/modules: faulty_ignore_stop")
    assert "Unloading" in s.evidence[0]
    assert any("kthread_stop" in line for line in s.evidence)


def test_slow_unload_that_finishes_is_one_timing_failure(tmp_path):
    blocked = {"type": "unload-blocked", "n": 1, "after_us": 1_001_000, "limit_ms": 1000,
               "module": "m 16384 0 - Unloading 0x0", "wchan": "", "stack_from": "stack",
               "stack": []}
    cycle = {"type": "cycle", "n": 1, "load_us": 1000, "threads_us": 2000, "unload_us": 1_500_000,
             "threads": [], "refcnt": 0, "module_listed": 0, "zombies": 0, "klog": []}
    lines = [json.dumps({"type": "baseline"}), json.dumps(blocked), json.dumps(cycle),
             json.dumps({"type": "end", "cycles": 1, "failed": False})]
    s, _, _ = session(tmp_path)
    assert s.run(Replay(lines)) == Verdict.FAIL
    assert [(f.cycle, f.check) for f in s.failures] == [(1, "timing-unload")]


def test_oops_on_the_console_is_a_crash_quoting_the_first_report(tmp_path):
    console = (DATA / "oops-init-i386" / "console.log").read_text()
    s, _, _ = session(tmp_path, console)
    assert s.run(Replay(recorded("oops-init-i386"), then_silent=True)) == Verdict.CRASH
    assert s.evidence[0] == next(line.rstrip() for line in console.replace("\r", "").splitlines()
                                 if "BUG: kernel NULL pointer dereference" in line)
    assert any("faulty_init" in line for line in s.evidence)


def test_alpha_oops_report_ends_at_its_code_line_and_the_rest_is_collapsed():
    lines = (DATA / "oops-init-alpha" / "console.log").read_text().replace("\r", "").splitlines()
    report = first_report(lines)
    assert "Unable to handle kernel" in report[0] or "Oops" in report[0]
    assert any("faulty_init" in line for line in report)
    assert "Code:" in report[-2] and report[-1].startswith("[... ")
    assert len(report) < 60


def test_alpha_unaligned_access_in_a_kernel_thread_is_a_crash(tmp_path):
    # tests/faulty/race on alpha-es40: list_del() of a request another CPU had taken
    # follows LIST_POISON2 (0x122), and Alpha's trap handler kills the thread with a
    # report of its own, code before trace.
    console = (DATA / "race-alpha" / "console.log").read_text()
    s, _, _ = session(tmp_path, console)
    assert s.run(Replay(recorded("pass-thread-mod"), then_silent=True)) == Verdict.CRASH
    assert s.reason.startswith("kernel oops: ") and "unhandled unaligned exception" in s.reason
    report = s.evidence
    assert report[0].endswith("qworker/2(81): unhandled unaligned exception")
    assert any("Trace:" in line for line in report) and "kthread+0x154" in "".join(report)
    assert report[-1].startswith("[... ") and len(report) < 45


def test_agent_killed_from_outside_is_infra(tmp_path):
    s, _, _ = session(tmp_path, "[   30.1] lab-guest: sshd ready\n")
    lines = recorded("pass-thread-mod")[:3]
    assert s.run(Replay(lines, exit_status=137)) == Verdict.INFRA
    assert "killed from outside" in s.reason


def test_agent_killed_by_the_oom_killer_is_a_crash(tmp_path):
    console = ("[   41.0] soak-agent invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0\n"
               "[   41.0] CPU: 0 PID: 99 Comm: soak-agent Not tainted 6.1.0 #1\n"
               "[   41.1] Out of memory: Killed process 99 (soak-agent)\n")
    s, guest, _ = session(tmp_path)
    lines = recorded("pass-thread-mod")[:3]

    def oom_late(polls):  # the kernel's report arrives while the agent's channel closes
        if polls == 4:
            (tmp_path / "console.log").write_text(console)
    s2 = Replay(lines, exit_status=137, on_poll=oom_late)
    assert s.run(s2) == Verdict.CRASH
    assert "oom" in s.reason


def test_qemu_gone_without_a_kernel_report_is_infra(tmp_path):
    s, guest, _ = session(tmp_path, alive=False)
    assert s.run(Replay(recorded("pass-thread-mod"))) == Verdict.INFRA
    assert "QEMU exited" in s.reason


def test_stop_request_ends_the_session_as_interrupted(tmp_path):
    stop = threading.Event()
    s, _, _ = session(tmp_path, stop=stop)
    lines = recorded("pass-thread-mod")[:4]

    def stop_at(polls):
        if polls == 3:
            stop.set()
    assert s.run(Replay(lines, then_silent=True, on_poll=stop_at)) == Verdict.INTERRUPTED
    assert "after 2 cycle(s)" in s.reason or "cycle(s)" in s.reason


def test_agent_error_record_is_infra(tmp_path):
    s, _, _ = session(tmp_path)
    lines = ['{"type":"error","err":"cannot read /lab/m.ko: No such file or directory"}']
    assert s.run(Replay(lines, exit_status=2)) == Verdict.INFRA
    assert "cannot read" in s.reason


def test_lab_yaml_expectations_are_added_not_required(tmp_path):
    # The same recorded stream, judged with lab.yaml's expectation of 5 named threads.
    s, _, _ = session(tmp_path, expect=Expectations(threads=5, period_ms=1000.0))
    assert s.run(Replay(recorded("pass-thread-mod"))) == Verdict.PASS
    s, _, _ = session(tmp_path / "b", expect=Expectations(threads=6))
    assert s.run(Replay(recorded("pass-thread-mod"))) == Verdict.FAIL
    assert {f.check for f in s.failures} >= {"threads-missing"}


@pytest.mark.parametrize("case", ["pass-thread-mod", "thread-left", "ignore-stop"])
def test_recorded_streams_are_valid_json_lines(case):
    for line in recorded(case):
        json.loads(line)


def test_guest_shut_down_from_outside_is_infra_with_the_reason(tmp_path):
    s, guest, _ = session(tmp_path)
    lines = recorded("pass-thread-mod")[:4]

    def lab_down(polls):  # `lab down` from another shell: init's shutdown, then QEMU goes
        if polls == 5:
            (tmp_path / "console.log").write_text(
                "The system is going down NOW!\nSent SIGTERM to all processes\n"
                "[   40.1] reboot: Power down\n")
    assert s.run(Replay(lines, exit_status=-1, then_silent=False, on_poll=lab_down)) == Verdict.INFRA
    assert "shut down from outside" in s.reason and "3 cycle(s)" in s.reason


def _silent_after_two_cycles():
    pass_lines = recorded("pass-thread-mod")
    return [pass_lines[0].replace('"type":"baseline"', '"type":"baseline","agent_pid":77'),
            *[x for x in pass_lines if '"type":"cycle"' in x][:2]]


def test_records_that_stop_on_the_way_are_infra_not_a_hang(tmp_path):
    """The guest answers a new SSH session and the agent waits to write: the
    stream stalled between guest and host, the module did nothing wrong."""
    s, _, calls = session(tmp_path, probe=AgentProbe(True, "S", "pipe_write", ["found"]))
    lines = _silent_after_two_cycles()
    assert '"agent_pid":77' in lines[0]
    assert s.run(Replay(lines, then_silent=True)) == Verdict.INFRA
    assert s.agent_pid == 77
    assert "gave no record" in s.reason and "waits to write its records" in s.reason
    assert calls and "sysrq w, t and l" in " ".join(s.evidence)


@pytest.mark.parametrize("probe, note", [
    (AgentProbe(True, "D", "do_init_module"), ""),
    (AgentProbe(True, "S", "my_module_wait"), ""),
    (AgentProbe(False, lines=["a new SSH session to the guest failed: timed out"]),
     "answered no new SSH session"),
])
def test_silent_agent_anywhere_else_is_a_hang(tmp_path, probe, note):
    s, _, _ = session(tmp_path, probe=probe)
    assert s.run(Replay(_silent_after_two_cycles(), then_silent=True)) == Verdict.HANG
    assert "cycle 3 gave no record" in s.reason and note in s.reason


def test_agent_waiting_for_answers_the_host_sent_is_a_stalled_session():
    stalled = AgentProbe(True, "S", "pipe_read").output_stalled
    assert "waits for the host's answers to its records (pipe_read)" in stalled


def test_agent_gone_without_its_exit_status_is_infra():
    assert "never said so" in AgentProbe(True, "").output_stalled
    assert "never said so" in AgentProbe(True, "Z").output_stalled  # its relay never reaped it
    assert AgentProbe(False).output_stalled == ""
