"""The guest lifecycle against a fake QEMU (tests/fakes): verdicts and cleanup, in seconds."""

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from lab import interrupt
from lab.cache import Store
from lab.config import load_lab
from lab.deadline import Deadline
from lab.errors import GuestError, LabError
from lab.guest import snapshot
from lab.guest.console import FATAL, STUCK
from lab.guest.qemu import BootVerdict, Guest, qemu_command
from lab.guest.state import GuestRecord, all_records, load
from lab.paths import cache_dir
from lab.ssh import ConnectError
from lab.verdict import BootOutcome

from fakeguest import FakeConnection, images, up_on_fake_qemu

def launch(tmp_path, scenario, name="g1"):
    target = load_lab().target("alpha-es40")
    return Guest.launch(target, images(tmp_path), name, "tcg", extra_cmdline=f"fake={scenario}")


def test_command_line_has_console_log_qmp_and_port(tmp_path):
    target = load_lab().target("alpha-es40")
    argv = qemu_command(target, images(tmp_path), tmp_path, 2222, "tcg", 4, 512)
    s = " ".join(argv)
    assert argv[0] == "qemu-system-alpha"
    assert "-M clipper -cpu ev67 -smp 4 -m 512 -accel tcg " in s
    assert "user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22" in s and "virtio-net-pci,netdev=net0" in s
    assert f"logfile={tmp_path}/console.log" in s and f"unix:{tmp_path}/qmp.sock" in s
    assert "panic=-1" in s and "-no-reboot" in argv


def test_panic_during_boot_is_a_verdict_quoting_the_console(fake_qemu):
    g = launch(fake_qemu, "panic")
    t0 = time.monotonic()
    with pytest.raises(BootVerdict) as e:
        g.wait_ready(Deadline(30), silence=30)
    assert time.monotonic() - t0 < 5
    assert e.value.outcome == "panic"
    assert "No working init found" in str(e.value)
    g.shutdown(hard_only=True)
    assert not g.record.path.exists()


def test_qemu_exit_is_a_verdict_with_stderr(fake_qemu):
    g = launch(fake_qemu, "exit")
    with pytest.raises(BootVerdict) as e:
        g.wait_ready(Deadline(30), silence=30)
    assert e.value.outcome == "qemu-exit"
    assert "could not load kernel" in str(e.value) and "status 1" in str(e.value)
    g.shutdown(hard_only=True)


def test_silence_is_a_silent_hang_not_an_endless_wait(fake_qemu):
    g = launch(fake_qemu, "silent")
    t0 = time.monotonic()
    with pytest.raises(BootVerdict) as e:
        g.wait_ready(Deadline(60), silence=1.0)
    assert e.value.outcome == "silent-hang"
    assert time.monotonic() - t0 < 5
    assert "Run /etc/init.d/rcS" in e.value.console_tail
    g.shutdown(hard_only=True)
    assert not g.running()


def test_shutdown_kills_and_removes_everything(fake_qemu):
    g = launch(fake_qemu, "ready")
    pid = g.record.pid
    assert load("g1") is not None and g.running()
    how = g.shutdown(soft_timeout=0.5)
    assert how == "qmp"          # no SSH in the fake; QMP quit ends it
    assert not g.running()
    assert not os.path.exists(f"/proc/{pid}") or b"qemu" not in open(f"/proc/{pid}/cmdline", "rb").read()
    assert all_records() == []


def test_a_qemu_that_does_not_answer_qmp_is_killed(fake_qemu):
    g = launch(fake_qemu, "ready")
    # the fake binds the SSH port (all launch waits for) before its QMP socket
    appears = Deadline(5, "the fake's QMP socket")
    while not g.record.qmp_socket.exists() and not appears.expired():
        appears.sleep(0.01)
    g.record.qmp_socket.unlink()     # QMP unreachable
    assert g.shutdown(soft_timeout=0.5) == "kill"
    assert not g.running() and all_records() == []


def test_down_after_qemu_was_killed_cleans_up(fake_qemu):
    g = launch(fake_qemu, "ready")
    os.kill(g.record.pid, 9)
    g.proc.wait()
    stale = Guest(load("g1"))
    assert not stale.running()
    assert stale.shutdown() == "already"
    assert all_records() == []


def test_a_guest_name_is_taken_once(fake_qemu):
    g = launch(fake_qemu, "ready")
    try:
        with pytest.raises(Exception, match="already running"):
            launch(fake_qemu, "ready")
    finally:
        g.shutdown(hard_only=True)


def test_two_launches_of_one_name_at_once_start_one_guest(fake_qemu):
    results = []

    def start():
        try:
            results.append(launch(fake_qemu, "ready"))
        except Exception as e:
            results.append(e)
    threads = [threading.Thread(target=start) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    guests = [r for r in results if isinstance(r, Guest)]
    errors = [str(r) for r in results if not isinstance(r, Guest)]
    try:
        assert len(guests) == 1, results
        assert len(errors) == 1 and "already running" in errors[0]
    finally:
        for g in guests:
            g.shutdown(hard_only=True)


def test_stale_record_of_a_dead_guest_does_not_block_the_name(fake_qemu):
    g = launch(fake_qemu, "ready")
    os.kill(g.record.pid, signal.SIGKILL)
    g.proc.wait(5)
    stale = load("g1")
    assert stale is not None and not Guest(stale).running()
    again = launch(fake_qemu, "ready")
    try:
        assert again.record.pid != stale.pid and again.running()
    finally:
        again.shutdown(hard_only=True)


def test_port_taken_before_qemu_binds_it_is_retried_on_another(fake_qemu, squatted_port):
    """The race free_port() leaves open: another process binds the port first."""
    from lab.guest.qemu import listening_pid_owns
    g = launch(fake_qemu, "ready")
    try:
        assert g.record.ssh_port != squatted_port and g.running()
        assert listening_pid_owns(g.record.pid, g.record.ssh_port)
        assert not listening_pid_owns(g.record.pid, squatted_port)
    finally:
        g.shutdown(hard_only=True)


def test_silent_qemu_exit_is_told_apart_from_a_panic(fake_qemu):
    g = launch(fake_qemu, "vanish")
    with pytest.raises(BootVerdict) as e:
        g.wait_ready(Deadline(30), silence=30)
    g.shutdown(hard_only=True)
    assert e.value.outcome == "qemu-exit" and e.value.silent_exit
    p = launch(fake_qemu, "panic", name="g2")
    with pytest.raises(BootVerdict) as e2:
        p.wait_ready(Deadline(30), silence=30)
    p.shutdown(hard_only=True)
    assert not e2.value.silent_exit


@pytest.fixture
def fake_up(fake_qemu, monkeypatch, tmp_path):
    """lifecycle.up() against the fake QEMU: no image build, no KVM probe, no real SSH."""
    import lab.guest.lifecycle as lc
    monkeypatch.setattr(lc, "images_for", lambda lab, target, store: images(tmp_path))
    monkeypatch.setattr(lc, "choose_accel", lambda *a: "tcg")
    launches = []
    real_launch = Guest.launch.__func__

    def counting_launch(cls, *a, **kw):
        launches.append(1)
        return real_launch(cls, *a, **kw)
    monkeypatch.setattr(Guest, "launch", classmethod(counting_launch))
    monkeypatch.setattr(Guest, "wait_ready",
                        lambda self, d, s, a=40.0: _ready_without_ssh(self, d, s))
    return lc, launches


def _ready_without_ssh(guest, deadline, silence):
    # the fake's "ready" has no SSH server behind it: stop at the ready mark
    while not deadline.expired():
        for line in guest.console.poll():
            if "sshd ready" in line:
                return "connection"
        code = guest.exit_code()
        if code is not None:
            raise BootVerdict("qemu-exit", "exited", guest.console.tail(), exit_code=code)
        time.sleep(0.02)
    raise BootVerdict("timeout", "no ready mark")


@pytest.mark.parametrize("fault", ["vanish", "abort"])   # a silent exit, a QEMU crash
def test_up_boots_again_after_an_emulator_fault(fake_up, monkeypatch, tmp_path, fault):
    lc, launches = fake_up
    monkeypatch.setenv("FAKE_QEMU_ONCE", str(tmp_path / "faulted"))
    lab = load_lab()
    guest, conn = lc.up(lab, lab.target("alpha-es40"), extra_cmdline=f"fake={fault}")
    try:
        assert len(launches) == 2 and guest.record.boot_attempts == 2
    finally:
        guest.shutdown(hard_only=True)


def test_a_qemu_that_aborts_is_an_emulator_fault(fake_qemu):
    g = launch(fake_qemu, "abort")
    with pytest.raises(BootVerdict) as e:
        g.wait_ready(Deadline(30), silence=30)
    g.shutdown(hard_only=True)
    assert e.value.outcome == "qemu-exit" and e.value.exit_code == -signal.SIGABRT
    assert e.value.emulator_crash and e.value.emulator_fault and not e.value.silent_exit
    assert "iotlb_to_section: Assertion" in str(e.value)


def test_a_kernel_stuck_during_boot_ends_the_wait_at_once_as_an_emulator_fault(fake_qemu):
    # the console keeps printing (no silent hang), and the deadline is far away;
    # up() boots again for any emulator fault (the vanish and abort tests)
    verdict, seconds = boot_given_up(fake_qemu, "stall", 120, ssh_after_ready=40.0)
    assert verdict.outcome == "rcu-stall" and verdict.emulator_fault
    assert seconds < 20
    assert "rcu_preempt detected stalls" in str(verdict)


def test_qemu_stopped_from_outside_is_not_retried():
    # lab down (SIGTERM, then SIGKILL) or the OOM killer: the boot is not QEMU's fault
    for sig in (signal.SIGTERM, signal.SIGKILL):
        v = BootVerdict("qemu-exit", "QEMU exited", exit_code=-sig)
        assert not v.emulator_crash and not v.emulator_fault
    assert not BootVerdict("qemu-exit", "QEMU exited", exit_code=1).emulator_fault


def test_up_gives_up_after_the_retries(fake_up):
    lc, launches = fake_up
    lab = load_lab()
    with pytest.raises(BootVerdict) as e:
        lc.up(lab, lab.target("alpha-es40"), extra_cmdline="fake=vanish")
    assert e.value.silent_exit and len(launches) == 2
    assert all_records() == []


def test_a_panic_is_never_retried(fake_up):
    lc, launches = fake_up
    lab = load_lab()
    with pytest.raises(BootVerdict):
        lc.up(lab, lab.target("alpha-es40"), extra_cmdline="fake=panic")
    assert len(launches) == 1


def boot_given_up(tmp_path, scenario: str, deadline: float, ssh_after_ready: float
                  ) -> tuple[BootVerdict, float]:
    """Launch the fake in ``scenario``; the verdict wait_ready gives up with, and after
    how many seconds."""
    g = launch(tmp_path, scenario)
    t0 = time.monotonic()
    with pytest.raises(BootVerdict) as e:
        g.wait_ready(Deadline(deadline), silence=deadline - 10, ssh_after_ready=ssh_after_ready)
    g.shutdown(hard_only=True)
    return e.value, time.monotonic() - t0


def test_ssh_silent_after_ready_is_an_emulator_fault(fake_qemu):
    # the fake says "sshd ready" but nothing listens on the forwarded port
    verdict, seconds = boot_given_up(fake_qemu, "ready", 30, ssh_after_ready=2.0)
    assert verdict.outcome == "ssh-silent" and verdict.emulator_fault
    assert seconds < 15
    assert "SSH never answered" in str(verdict) and "info network" in str(verdict)


def test_a_guest_that_reports_no_network_is_given_up_at_once(fake_qemu):
    # rcS pings the gateway after the ready mark; when that fails it says so, and
    # lab must not spend ssh_after_ready waiting for an SSH server nobody can reach
    verdict, seconds = boot_given_up(fake_qemu, "nonet", 60, ssh_after_ready=40.0)
    assert verdict.outcome == "no-network" and verdict.emulator_fault
    assert seconds < 20
    assert "5 pings of the gateway 10.0.2.2 lost" in str(verdict)


def accel_arg(tmp_path, name: str, accel: str = "tcg", smp: int | None = None) -> str:
    """The -accel value of a target's QEMU command line."""
    target = load_lab().target(name)
    argv = qemu_command(target, images(tmp_path), tmp_path, 2222, accel, smp or target.smp, 512)
    return argv[argv.index("-accel") + 1]


def test_smp_guests_run_one_tcg_thread_per_vcpu_by_default(tmp_path):
    # two threads of a module run at the same instant only with a host thread per vCPU
    def accel(name, smp=None):
        return accel_arg(tmp_path, name, smp=smp)
    assert accel("alpha-es40") == accel("alpha-ds20") == accel("i386-smp") == "tcg"
    assert accel("alpha-pws500au") == accel("alpha-es40", smp=1) == "tcg"
    assert accel_arg(tmp_path, "i386-smp", accel="kvm") == "kvm"
    lab = load_lab()
    assert [lab.target(n).threading("tcg") for n in ("alpha-es40", "i386-up")] == ["multi", "up"]
    assert lab.target("alpha-es40").host_threads() == 4


def test_tcg_threading_can_be_chosen(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_TCG_THREAD", "single")
    assert accel_arg(tmp_path, "alpha-es40") == "tcg,thread=single"
    assert accel_arg(tmp_path, "i386-smp") == "tcg,thread=single"
    assert accel_arg(tmp_path, "i386-up") == "tcg"
    assert load_lab().target("alpha-es40").host_threads() == 1
    monkeypatch.setenv("LAB_TCG_THREAD", "multi")
    assert accel_arg(tmp_path, "alpha-es40") == "tcg"
    monkeypatch.setenv("LAB_TCG_THREAD", "two")
    with pytest.raises(LabError, match="LAB_TCG_THREAD"):
        accel_arg(tmp_path, "alpha-es40")


# ---- one teardown: whatever fails while a guest starts leaves nothing behind ----------
def qemus_left(tmp_path: Path) -> list[str]:
    """Fake QEMU processes still running with a run directory of this test."""
    run = str(tmp_path / "run").encode()
    left = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if proc.name.isdigit() and b"qemu-system" in argv and run in argv:
            left.append(f"{proc.name}: {argv[:80]!r}")
    return left


def assert_nothing_left(tmp_path: Path) -> None:
    run = tmp_path / "run"
    dirs = sorted(p.name for p in run.iterdir() if p.is_dir()) if run.exists() else []
    assert qemus_left(tmp_path) == [], "QEMU still running"
    assert dirs == [], "run directories left"
    assert all_records() == []


@pytest.fixture
def start(fake_qemu, monkeypatch, tmp_path):
    """lifecycle.up() of i386-up (a target with snapshots) on the fake QEMU: the
    connection is a FakeConnection once the console shows the ready mark."""
    yield from up_on_fake_qemu(monkeypatch, tmp_path)


def failing_on_call(real, n: int, exc: BaseException):
    """``real`` (a method), except that its ``n``-th call raises ``exc``."""
    calls = []

    def wrapper(self, *a, **kw):
        calls.append(1)
        if len(calls) == n:
            raise exc
        return real(self, *a, **kw)
    return wrapper


def raising(exc: BaseException):
    """A stand-in for a function or method that fails with ``exc``, whatever it is given."""
    def fail(*a, **kw):
        raise exc
    return fail


def _fail_qemu_start(monkeypatch):
    real = subprocess.Popen

    def popen(argv, *a, **kw):
        if "-append" in argv:     # QEMU's start, not `qemu --version` for the snapshot key
            raise OSError("exec format error")
        return real(argv, *a, **kw)
    monkeypatch.setattr("lab.guest.qemu.subprocess.Popen", popen)


def _kill_and_fail_save(guest, snap, store, timeout):
    os.kill(guest.record.pid, signal.SIGKILL)
    guest.proc.wait(5)
    raise GuestError("QEMU exited while saving the snapshot")


START_FAILURES = {
    # step: how it fails
    "QEMU does not start": _fail_qemu_start,
    "the record is not written": lambda mp: mp.setattr(
        GuestRecord, "save", failing_on_call(GuestRecord.save, 1, OSError("disk full"))),
    "Ctrl-C while QEMU binds its port": lambda mp: mp.setattr(
        "lab.guest.qemu.listening_pid_owns", raising(KeyboardInterrupt())),
    "wait_ready fails": lambda mp: mp.setattr(
        Guest, "wait_ready", raising(RuntimeError("bug"))),
    "Ctrl-C in wait_ready": lambda mp: mp.setattr(
        Guest, "wait_ready", raising(interrupt.Interrupted())),
    "the ready record is not written": lambda mp: mp.setattr(
        GuestRecord, "save", failing_on_call(GuestRecord.save, 2, OSError("disk full"))),
    "QEMU dies saving the snapshot": lambda mp: mp.setattr(snapshot, "save", _kill_and_fail_save),
    "Ctrl-C saving the snapshot": lambda mp: mp.setattr(
        snapshot, "save", raising(KeyboardInterrupt())),
    "Ctrl-C refreshing after the save": lambda mp: mp.setattr(
        Guest, "freshen", raising(KeyboardInterrupt())),
    "no connection after the save": lambda mp: mp.setattr(
        Guest, "connection", failing_on_call(
            lambda self, **kw: FakeConnection(), 2, ConnectError("refused"))),
    "the snapshot note is not written": lambda mp: mp.setattr(
        GuestRecord, "save", failing_on_call(GuestRecord.save, 3, OSError("disk full"))),
}


@pytest.mark.parametrize("step", START_FAILURES)
def test_a_failure_at_any_start_step_leaves_no_qemu_and_no_run_directory(
        start, monkeypatch, fake_qemu, step):
    START_FAILURES[step](monkeypatch)
    with pytest.raises(BaseException) as e:
        start(name="a")
    assert not isinstance(e.value, AssertionError), e.value
    assert_nothing_left(fake_qemu)


def snapshot_artifacts():
    return [a for a in Store(cache_dir()).all() if a.kind == snapshot.KIND]


def test_a_failure_while_restoring_leaves_nothing_and_keeps_the_snapshot(start, monkeypatch,
                                                                         fake_qemu):
    start(name="a").shutdown(hard_only=True)
    assert len(snapshot_artifacts()) == 1
    monkeypatch.setattr(Guest, "wait_restored",
                        raising(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        start(name="b")
    assert_nothing_left(fake_qemu)
    # Ctrl-C is not the snapshot's fault: it stays for the next `lab up`
    assert len(snapshot_artifacts()) == 1


def test_a_snapshot_that_cannot_be_saved_costs_only_a_note(start, monkeypatch):
    monkeypatch.setattr(snapshot, "save", raising(OSError("read-only file system")))
    g = start(name="a")
    assert g.running() and "no snapshot saved: read-only file system" in g.record.snapshot_note
    assert load("a").snapshot_note == g.record.snapshot_note


def test_ctrl_c_during_wait_ready_leaves_no_qemu_and_no_run_directory(fake_qemu, monkeypatch,
                                                                      tmp_path):
    """The real wait_ready on a guest that boots silently, stopped as a signal stops
    it (interrupt.STOP, checked in every wait loop)."""
    import lab.guest.lifecycle as lc
    monkeypatch.setattr(lc, "images_for", lambda lab, target, store: images(tmp_path))
    monkeypatch.setattr(lc, "choose_accel", lambda *a: "tcg")
    lab = load_lab()
    stop = threading.Timer(0.5, interrupt.STOP.set)
    stop.start()
    try:
        t0 = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            lc.up(lab, lab.target("alpha-es40"), extra_cmdline="fake=silent")
        assert time.monotonic() - t0 < 10
    finally:
        stop.cancel()
        interrupt.STOP.clear()
    assert_nothing_left(tmp_path)


# ---- retries: for the emulator's faults, and only for them --------------------------
RETRIED = [("ssh-silent", None), ("no-network", None), ("rcu-stall", None),
           ("soft-lockup", None), ("hung-task", None),
           ("qemu-exit", 0), ("qemu-exit", -signal.SIGABRT), ("qemu-exit", -signal.SIGSEGV)]
NOT_RETRIED = [("panic", None), ("oops", None), ("bug", None), ("oom", None),
               ("kvm-failure", None), ("ssh-timeout", None), ("timeout", None),
               ("silent-hang", None), ("restore-timeout", None), ("restore-failed", None),
               ("qemu-exit", 1), ("qemu-exit", -signal.SIGTERM), ("qemu-exit", -signal.SIGKILL)]


def test_the_retry_tables_cover_every_boot_outcome():
    assert {o for o, _ in RETRIED + NOT_RETRIED} == set(BootOutcome)
    # what the console recognises as the kernel's own trouble is a boot outcome
    assert FATAL | STUCK <= set(BootOutcome)


@pytest.mark.parametrize("outcome, exit_code", RETRIED + NOT_RETRIED)
def test_up_boots_again_for_emulator_faults_only(fake_up, monkeypatch, outcome, exit_code):
    lc, launches = fake_up
    monkeypatch.setattr(Guest, "wait_ready",
                        raising(BootVerdict(outcome, "given up", exit_code=exit_code)))
    lab = load_lab()
    with pytest.raises(BootVerdict) as e:
        lc.up(lab, lab.target("alpha-es40"), extra_cmdline="fake=ready")
    assert e.value.outcome is BootOutcome(outcome)
    retried = (outcome, exit_code) in RETRIED
    assert e.value.emulator_fault == retried
    assert len(launches) == (2 if retried else 1)
    assert all_records() == []


def test_a_boot_outcome_is_a_string_for_json_and_old_comparisons():
    v = BootVerdict("ssh-silent", "never answered")
    assert v.outcome == "ssh-silent" and v.outcome is BootOutcome.SSH_SILENT
    assert json.dumps({"verdict": v.outcome}) == '{"verdict": "ssh-silent"}'
    assert str(v).startswith("ssh-silent: ")
    with pytest.raises(ValueError):
        BootVerdict("no-such-outcome", "typo")
