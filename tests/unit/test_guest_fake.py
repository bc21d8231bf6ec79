"""The guest lifecycle against a fake QEMU (tests/fakes): verdicts and cleanup, in seconds."""

import os
import signal
import threading
import time

import pytest

from lab.config import load_lab
from lab.deadline import Deadline
from lab.errors import LabError
from lab.guest.qemu import BootVerdict, Guest, qemu_command
from lab.guest.state import all_records, load

from fakeguest import images

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
