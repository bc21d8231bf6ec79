"""One object per QEMU process: build the command, launch, wait until SSH is
ready under one deadline, shut down soft then hard, and always clean up.

While waiting, the serial console is watched: a panic or oops, or QEMU exiting,
ends the wait at once with a verdict quoting the console; silence past the
target's limit is a "silent hang" verdict.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from qemu.qmp.legacy import QEMUMonitorProtocol

from ..config import Target, Timeouts
from .console import (CPU_MARK, FATAL, KVM_FATAL, NO_NETWORK_MARK, READY_MARK, STUCK, ConsoleLog,
                      findings)
from ..deadline import Deadline
from ..errors import GuestError, LabError
from ..images import GuestImages
from ..interrupt import check as check_interrupt
from ..interrupt import deferred as deferred_interrupt
from ..keys import ensure_client_key
from ..runner import require
from ..ssh import ConnectError, Connection, known_hosts_line
from ..paths import run_dir
from .state import GuestRecord, guest_dir, load, pid_is_qemu, remove
from ..verdict import BootOutcome

# rdinit: the start-up script runs first as PID 1 and execs busybox init when the
# SSH server is up (images/rootfs/overlay/etc/init.d/rcS says why).
BASE_CMDLINE = "console=ttyS0 rdinit=/etc/init.d/rcS panic=-1"
# The devices every guest gets besides its console (the NIC on netdev "net0").
# virtio-net, not an emulated e1000: QEMU's e1000 holds every received frame for
# one second of guest time after each write of its receive control register, and
# the driver writes it when the interface opens, so the first SSH connection of a
# boot waited up to a second for nothing.
# virtio-rng: host entropy, the guest's SSH server needs random numbers at once.
GUEST_DEVICES = ("-device", "virtio-net-pci,netdev=net0", "-device", "virtio-rng-pci")
# Seconds between looks at a booting guest's console: the ready line is noticed
# half of this late on average, and each look costs the host about 0.2 ms.
CONSOLE_POLL = 0.005
# Seconds a starting QEMU gets to bind its SSH forwarding port (it does so before
# the guest runs; a busy host can delay it).
PORT_WAIT = 10.0
# Seconds between SSH attempts on a booting guest (its SSH server limits
# unauthenticated connections), and on a restored one, whose server ran already.
SSH_RETRY = 0.5
SSH_RETRY_RESTORED = 0.1
# Seconds a kernel report found on the console gets to reach the log in full before
# it is quoted.
REPORT_SETTLE = 0.5


# Signals QEMU dies of by its own fault (Popen reports them as a negative status).
QEMU_FAULT_SIGNALS = {signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE,
                      signal.SIGILL}


class BootVerdict(GuestError):
    """The guest did not become ready: panic, oops, QEMU exit, silent hang or timeout."""

    def __init__(self, outcome: BootOutcome | str, message: str, console_tail: str = "",
                 exit_code: int | None = None):
        self.outcome = BootOutcome(outcome)
        self.exit_code = exit_code
        super().__init__(f"{self.outcome}: {message}", console_tail)

    @property
    def silent_exit(self) -> bool:
        """QEMU stopped with status 0 and the kernel said nothing wrong: an emulator fault."""
        return (self.outcome is BootOutcome.QEMU_EXIT and self.exit_code == 0
                and not findings(self.console_tail.splitlines()))

    @property
    def emulator_crash(self) -> bool:
        """QEMU itself died of a fault signal: one of its own assertions (SIGABRT), or a
        crash. Seen once: i386-smp under QEMU 10.0's multi-threaded TCG aborted in PCI
        enumeration with `iotlb_to_section: Assertion section_index < sections_nb`, a vCPU
        resolving a stale memory-map index. A `lab down` or the OOM killer sends other
        signals, which are not retried."""
        return (self.outcome is BootOutcome.QEMU_EXIT and self.exit_code is not None
                and -self.exit_code in QEMU_FAULT_SIGNALS)

    @property
    def emulator_fault(self) -> bool:
        """A boot lost to the emulation, not to the kernel: worth one more boot. The
        outcome says so itself (BootOutcome.emulator_fault), or QEMU exited silently or
        crashed."""
        return self.outcome.emulator_fault or self.silent_exit or self.emulator_crash


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening_pid_owns(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds the socket listening on 127.0.0.1:``port`` (from
    /proc/net/tcp and its file descriptors). Connecting would not tell: another
    process that took the port first would answer too."""
    want = f"0100007F:{port:04X}"
    inodes = set()
    try:
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if cols[1] == want and cols[3] == "0A":      # LISTEN
                    inodes.add(f"socket:[{cols[9]}]")
        if not inodes:
            return False
        fds = Path(f"/proc/{pid}/fd")
        return any(os.readlink(fd) in inodes for fd in fds.iterdir())
    except OSError:
        return False


@contextmanager
def name_claim(name: str):
    """Hold the guest name while a launch checks and records it: two `lab up` of one
    name at once see each other instead of both booting."""
    run_dir().mkdir(parents=True, exist_ok=True)
    with open(run_dir() / f".{name}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def guest_cmdline(target: Target, extra_cmdline: str = "") -> str:
    """The kernel command line of a guest of ``target``."""
    return " ".join(x for x in (BASE_CMDLINE, target.kernel_cmdline, extra_cmdline) if x)


def guest_command(target: Target, images: GuestImages, accel: str, smp: int, memory: int,
                  cmdline: str, *, console: Sequence[str], netdev: str,
                  incoming: str | None = None) -> list[str]:
    """QEMU's argument list for a guest of ``target``: its machine, CPUs, memory,
    kernel, firmware and devices, booted with ``cmdline``, with ``console`` (the
    serial console and any control socket) and ``netdev`` (the user network
    behind the NIC) as the caller wants them."""
    spec = target.spec
    cpu = "host" if accel == "kvm" else target.cpu
    return [
        spec.qemu, "-M", target.machine, "-cpu", cpu, "-smp", str(smp), "-m", str(memory),
        "-accel", target.accel_arg(accel, smp),
        "-kernel", str(images.kernel), "-initrd", str(images.initramfs), "-append", cmdline,
        "-display", "none", "-monitor", "none", "-parallel", "none", "-no-reboot",
        *console,
        "-netdev", netdev,
        *GUEST_DEVICES,
        *(["-bios", str(images.bios)] if images.bios else []),
        *target.qemu_args,
        *(["-incoming", incoming] if incoming else []),
    ]


def qemu_command(target: Target, images: GuestImages, run: Path, port: int, accel: str,
                 smp: int, memory: int, extra_cmdline: str = "",
                 incoming: str | None = None) -> list[str]:
    """The full QEMU argument list for one lab guest: console log and socket and QMP
    in ``run``, SSH forwarded from ``port`` (``incoming``: a saved state to restore
    instead of booting, as QEMU's -incoming URI)."""
    console = ["-chardev", f"socket,id=con0,path={run / 'console.sock'},server=on,wait=off,"
                           f"logfile={run / 'console.log'}",
               "-serial", "chardev:con0",
               "-qmp", f"unix:{run / 'qmp.sock'},server=on,wait=off"]
    return guest_command(target, images, accel, smp, memory,
                         guest_cmdline(target, extra_cmdline), console=console,
                         netdev=f"user,id=net0,hostfwd=tcp:127.0.0.1:{port}-:22",
                         incoming=incoming)


class Guest:
    def __init__(self, record: GuestRecord, target: Target | None = None):
        self.record = record
        self.target = target
        self.proc: subprocess.Popen | None = None
        self.console = ConsoleLog(record.console_log)

    # ---- launch -------------------------------------------------------------
    @classmethod
    def launch(cls, target: Target, images: GuestImages, name: str, accel: str,
               smp: int | None = None, memory: int | None = None, extra_cmdline: str = "",
               log=lambda msg: None, attempts: int = 3, incoming: str | None = None) -> "Guest":
        """Start QEMU in the background (its own session: it outlives this process).
        With ``incoming`` it restores that saved state instead of booting."""
        require(target.spec.qemu, target.spec.qemu_package)
        smp, memory = smp or target.smp, memory or target.memory
        if smp > target.spec.max_smp:
            raise LabError(f"--smp {smp}: {target.machine} allows at most {target.spec.max_smp}")
        with name_claim(name):
            old = load(name)
            if old is not None and cls(old).running():
                raise LabError(f"a guest named {name!r} is already running (target {old.target}, "
                               f"SSH port {old.ssh_port}); `lab down {name}` first, or pick "
                               "another --name")
            if old is not None:  # QEMU is gone: a stale record
                remove(name)
            return cls._start(target, images, name, accel, smp, memory, extra_cmdline, log,
                              attempts, incoming)

    @classmethod
    def _start(cls, target: Target, images: GuestImages, name: str, accel: str, smp: int,
               memory: int, extra_cmdline: str, log, attempts: int,
               incoming: str | None) -> "Guest":
        run = guest_dir(name)
        last_err = ""
        for _ in range(attempts):
            run.mkdir(parents=True, exist_ok=True)
            port = free_port()
            argv = qemu_command(target, images, run, port, accel, smp, memory, extra_cmdline,
                                incoming)
            log("$ " + shlex.join(argv))
            (run / "console.log").write_bytes(b"")
            with open(run / "qemu.stderr", "wb") as stderr:
                try:
                    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stderr,
                                            stderr=stderr, start_new_session=True)
                except BaseException:
                    remove(name)      # no QEMU to stop: only its run directory to go
                    raise
            rec = GuestRecord(name=name, target=target.name, arch=target.arch, smp=smp,
                              memory=memory, pid=proc.pid, ssh_port=port, accel=accel, dir=str(run),
                              host_key=images.host_key, kernel_key=images.kernel_key,
                              rootfs_key=images.rootfs_key, kernel_release=images.kernel_release,
                              command=argv, bios_key=images.bios_key,
                              from_snapshot=incoming is not None,
                              threading=target.threading(accel, smp))
            guest = cls(rec, target)
            guest.proc = proc
            with guest.torn_down_on_failure():
                rec.save()
                rec.known_hosts.write_text(known_hosts_line(port, images.host_key) + "\n")
                if guest._wait_port(port):
                    return guest
            last_err = guest.stderr()
            guest.cleanup()
        raise LabError(f"could not set up SSH port forwarding after {attempts} tries: {last_err}")

    def _wait_port(self, port: int) -> bool:
        """Whether QEMU came to hold its SSH forwarding port; False when it exited because
        another process took the port between free_port() and QEMU's bind (QEMU refuses
        the forwarding rule then)."""
        assert self.proc is not None
        bound = Deadline(PORT_WAIT, f"QEMU binding port {port}")
        while self.proc.poll() is None and not listening_pid_owns(self.proc.pid, port) \
                and not bound.expired():
            bound.sleep(0.02)
        return not (self.proc.poll() is not None and "host forwarding" in self.stderr())

    @contextmanager
    def torn_down_on_failure(self) -> Iterator["Guest"]:
        """The one teardown of a guest that is still starting: whatever ends the steps
        inside early (an error, a BootVerdict, Ctrl-C) stops QEMU hard and removes the
        guest's run directory and record, then goes on up. Like launch() around
        _launch() in QEMU's python machine.py."""
        try:
            yield self
        except BaseException:
            self.shutdown(hard_only=True)
            raise

    # ---- state ----------------------------------------------------------------
    def stderr(self) -> str:
        try:
            return (self.record.path / "qemu.stderr").read_text(errors="replace")
        except OSError:
            return ""

    def exit_code(self) -> int | None:
        """QEMU's exit status if it has exited (None while it runs or if unknown)."""
        if self.proc is not None:
            return self.proc.poll()
        return None if pid_is_qemu(self.record.pid) else -1

    def running(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        return pid_is_qemu(self.record.pid)

    def connection(self, command_timeout: float | None = None,
                   connect_timeout: float = 10.0) -> Connection:
        """An SSH connection to the guest, not yet connected. A command run without a
        timeout of its own gets ``command_timeout``: by default the target's
        ``timeouts.ssh_command``, or Timeouts' own for a guest known only by its record."""
        key, _ = ensure_client_key()
        if command_timeout is None:
            command_timeout = (self.target.timeouts if self.target else Timeouts()).ssh_command
        return Connection(self.record.ssh_port, key, self.record.host_key,
                          connect_timeout=connect_timeout, command_timeout=command_timeout)

    # ---- wait until ready ---------------------------------------------------------
    def wait_ready(self, deadline: Deadline, silence: float,
                   ssh_after_ready: float = 40.0) -> Connection:
        """Return a connected SSH connection, or raise BootVerdict: the kernel boots
        until the guest says its SSH server is ready, then SSH is tried until it
        answers, the console watched all along."""
        self._wait_ready_mark(deadline, silence)
        return self._connect_ssh(deadline, ssh_after_ready, SSH_RETRY,
                                 "the guest said its SSH server was ready")

    def _wait_ready_mark(self, deadline: Deadline, silence: float) -> None:
        """Until the console shows the ready mark; silence past ``silence`` seconds is a
        silent hang."""
        quiet = Deadline(silence, "console silence")
        while True:
            check_interrupt()
            if self._watch_console("before SSH was ready"):
                quiet = quiet.renewed()
                if READY_MARK in self.console.user_text():
                    return
            if deadline.expired():
                raise BootVerdict(BootOutcome.TIMEOUT, f"not ready after {deadline.seconds:g}s",
                                  self.console.tail())
            if quiet.expired():
                raise BootVerdict(BootOutcome.SILENT_HANG, f"no console output for {silence:g}s",
                                  self.console.tail())
            deadline.sleep(CONSOLE_POLL)

    def _watch_console(self, when: str) -> list[str]:
        """Read the console's new lines; raise BootVerdict if they, QEMU's stderr or its
        exit say the guest will not become ready. Returns the new lines."""
        new = self.console.poll()
        # A kernel stuck before lab has loaded anything (an RCU stall: seen on
        # i386-smp under QEMU 10.0's multi-threaded TCG, an idle vCPU whose timer
        # never fired) ends the wait at once too, as the emulator's fault.
        bad = [f for f in findings(new) if f.kind in FATAL | STUCK]
        if bad:
            # Let the rest of the report reach the log before quoting it.
            time.sleep(REPORT_SETTLE)
            self.console.poll()
            raise BootVerdict(BootOutcome(bad[0].kind),
                              f"kernel {bad[0].kind} during boot: {bad[0].line.strip()}",
                              self.console.tail(40))
        if KVM_FATAL.search(self.stderr()):
            raise BootVerdict(BootOutcome.KVM_FAILURE, "KVM could not run the guest: "
                              + self.stderr().strip().splitlines()[0], self.console.tail())
        self._raise_if_exited(when)
        if new:
            user = self.console.user_text()
            if m := CPU_MARK.search(user):
                self.record.cpu_model = m.group(1)
            if m := NO_NETWORK_MARK.search(user):
                raise BootVerdict(BootOutcome.NO_NETWORK, f"the guest's network passes no "
                                  f"packets: {m.group(1)}; {self.nic_state()}", self.console.tail())
        return new

    def _connect_ssh(self, deadline: Deadline, silent_after: float, retry_every: float,
                     ready: str) -> Connection:
        """SSH to a guest whose SSH server runs (``ready`` says since when), watching its
        console between attempts. An SSH server silent for ``silent_after`` seconds is
        given up (ssh-silent: an emulator fault)."""
        silent = Deadline(silent_after, f"SSH of {self.record.name}")
        while True:
            check_interrupt()
            self._watch_console("before SSH answered")
            try:
                limit = max(1.0, min(10.0, deadline.remaining()))
                return self.connection(connect_timeout=limit).connect()
            except ConnectError as e:  # sshd not answering yet
                error = e
            if silent.expired():
                raise BootVerdict(BootOutcome.SSH_SILENT, f"{ready} {silent.elapsed():.0f}s ago, "
                                  f"but SSH never answered: {error}; {self.nic_state()}",
                                  self.console.tail())
            if deadline.expired():
                raise BootVerdict(BootOutcome.SSH_TIMEOUT, f"SSH did not answer: {error}",
                                  self.console.tail())
            # One attempt at a time, spaced out: sshd limits unauthenticated
            # connections, and a storm of them locks us out.
            pause = Deadline(min(retry_every, deadline.remaining()))
            while not pause.expired():
                check_interrupt()
                self._watch_console("before SSH answered")
                pause.sleep(CONSOLE_POLL)

    # ---- restored guests -----------------------------------------------------------
    def wait_restored(self, deadline: Deadline, ssh_after_ready: float) -> Connection:
        """For a guest launched with a saved state: wait until QEMU has loaded it and
        runs it, make the guest fresh, then connect. Raises BootVerdict."""
        while True:
            check_interrupt()
            self._raise_if_exited("before the saved state was loaded")
            try:
                status = self.qmp("query-status", timeout=2).get("status")
            except Exception:      # QMP is not listening yet
                status = None
            if status == "running":
                break
            if status == "paused":  # loaded: the snapshot was taken of a paused guest
                self.qmp("cont")
                continue
            if deadline.expired():
                raise BootVerdict(BootOutcome.RESTORE_TIMEOUT, f"the saved state was not "
                                  f"running after {deadline.seconds:g}s (QEMU status {status!r})",
                                  self.console.tail())
            deadline.sleep(0.01)
        self.freshen(deadline)
        return self._connect_ssh(deadline, ssh_after_ready, SSH_RETRY_RESTORED,
                                 "the restored guest's SSH server was running")

    def freshen(self, deadline: Deadline, resend_after: float = 2.0) -> None:
        """Make a guest that runs from a saved state distinct from every other run of
        it: on its serial console, have it reseed its random numbers from the host's
        RNG device and set its wall clock (images/rootfs/src/lab-fresh.c)."""
        token = secrets.token_hex(4)
        mark = f"lab-guest: fresh {token}"
        # One connection for the whole exchange: QEMU drops what it has not read yet
        # from a console client that hangs up.
        with self.console_connection() as keys:
            resend = Deadline(0.0)         # the first line goes at once
            while True:
                check_interrupt()
                self._raise_if_exited("while the restored guest was being refreshed")
                if resend.expired():
                    now = time.time_ns()
                    # Enter first: the console shell may still wait for "press Enter".
                    keys.sendall(f"\rlab-fresh {token} {now // 10**9} {now % 10**9}\r".encode())
                    resend = Deadline(resend_after, "lab-fresh's answer")
                self.console.poll()
                text = self.console.user_text(80)
                if mark in text:
                    return
                if m := re.search(r"^lab-fresh: .*$", text, re.M):
                    raise BootVerdict(BootOutcome.RESTORE_FAILED, f"the restored guest could "
                                      f"not be refreshed: {m.group(0)}", self.console.tail())
                if deadline.expired():
                    raise BootVerdict(BootOutcome.RESTORE_TIMEOUT, "the restored guest did not "
                                      f"answer on its serial console within {deadline.seconds:g}s",
                                      self.console.tail())
                deadline.sleep(0.01)

    @contextmanager
    def console_connection(self):
        """A socket whose writes are keystrokes on the guest's serial console. Keep it
        open until the guest has read them."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(str(self.record.console_socket))
            yield s

    def _raise_if_exited(self, when: str) -> None:
        code = self.exit_code()
        if code is not None:
            self.console.poll()
            raise BootVerdict(BootOutcome.QEMU_EXIT, f"QEMU exited with status {code} {when}; "
                              f"stderr: {self.stderr().strip()[-500:] or '(empty)'}",
                              self.console.tail(40), exit_code=code)

    def nic_state(self) -> str:
        """QEMU's view of the network, one line, for the record when SSH or a soak's
        records go silent."""
        try:
            return "QEMU info network: " + " | ".join(self.hmp("info network").split("\n"))
        except Exception as e:
            return f"(QMP info network failed: {e})"

    # ---- shutdown ---------------------------------------------------------------
    def _wait_exit(self, seconds: float) -> bool:
        d = Deadline(seconds)
        while not d.expired():
            if not self.running():
                return True
            d.sleep(0.05)
        return not self.running()

    def qmp(self, command: str, timeout: float = 3.0, **args):
        """One QMP command through qemu.qmp; returns its result."""
        with deferred_interrupt():    # bounded by ``timeout``: a Ctrl-C lands right after
            mon = QEMUMonitorProtocol(str(self.record.qmp_socket))
            try:
                mon.settimeout(timeout)   # the greeting too: a wedged QEMU must not hang lab
                mon.connect(negotiate=True)
                return mon.cmd(command, **args) if args else mon.cmd(command)
            finally:
                mon.close()

    def hmp(self, command: str, timeout: float = 3.0) -> str:
        """One human-monitor command (info registers, sendkey, xp, ...) through QMP;
        its output as text."""
        return str(self.qmp("human-monitor-command", timeout=timeout, **{"command-line": command}))

    def shutdown(self, soft_timeout: float = 20.0, hard_only: bool = False) -> str:
        """Stop the guest: poweroff over SSH, then QMP quit, then SIGKILL. Always cleans up.

        Returns how it stopped: 'soft', 'qmp', 'kill' or 'already'.
        """
        how = "already"
        try:
            if self.running() and not hard_only:
                try:
                    with self.connection(command_timeout=5).connect() as c:
                        c.run("poweroff", timeout=5, check=False)
                except Exception:
                    pass
                if self._wait_exit(soft_timeout):
                    how = "soft"
            if self.running():
                try:
                    self.qmp("quit")
                except Exception:
                    pass
                if self._wait_exit(3):
                    how = "qmp"
            if self.running():
                try:
                    os.kill(self.record.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self._wait_exit(5)
                how = "kill"
        finally:
            self.cleanup()
        return how

    def cleanup(self) -> None:
        """Reap our child (if we started it) and remove the guest's run directory."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        shutil.rmtree(self.record.path, ignore_errors=True)
