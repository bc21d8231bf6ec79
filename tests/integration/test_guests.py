import hashlib
import os

import pytest

from lab.errors import LabError
from lab.guest.qemu import BootVerdict, Guest
from lab.keys import ensure_client_key
from lab.guest.lifecycle import down, up
from lab.ssh import Connection, SSHError
from lab.guest.state import all_records, load


UNAME = {"alpha": "alpha", "i386": "i686"}


@pytest.mark.parametrize("name", ["i386-up", "i386-smp", "alpha-pws500au", "alpha-ds20",
                                  "alpha-es40"])
def test_boot_and_run_a_command(lab, built, running, name):
    target = lab.target(name)
    with running(name) as (guest, conn):
        assert int(conn.run("nproc").stdout) == target.smp
        assert conn.run(["uname", "-m"]).stdout.strip() == UNAME[target.arch]
        assert conn.run("exit 7", check=False).exit_code == 7
        pid = guest.record.pid
    assert not Guest(guest.record).running()
    assert not os.path.exists(guest.record.dir)
    assert all_records() == []
    with pytest.raises(OSError):
        os.kill(pid, 0)


def test_lab_ssh_passes_standard_input_and_a_command_without_it_gets_eof(lab, built, running):
    import subprocess
    import sys
    from pathlib import Path
    lab_cli = str(Path(sys.executable).parent / "lab")
    data = bytes(range(256)) * 300
    with running("i386-up") as (guest, conn):
        name = guest.record.name
        p = subprocess.run([lab_cli, "ssh", name, "--", "cat > /tmp/in; md5sum < /tmp/in"],
                           input=data, capture_output=True, timeout=120)
        assert p.returncode == 0, p.stderr
        assert p.stdout.split()[0].decode() == hashlib.md5(data).hexdigest()
        # no input: the remote `cat` ends at once instead of waiting out the timeout
        p = subprocess.run([lab_cli, "ssh", name, "--", "cat | wc -c"],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        assert p.returncode == 0 and p.stdout.strip() == b"0", p
        assert conn.run("cat | wc -c", timeout=30).stdout.strip() == "0"


def test_panic_during_boot_is_reported_quickly(lab, built):
    with pytest.raises(BootVerdict) as e:
        up(lab, lab.target("i386-up"), accel="tcg", timeout=60,
           extra_cmdline="rdinit=/nonexistent root=/dev/nothing")
    assert e.value.outcome == "panic"
    assert "Kernel panic" in str(e.value)
    assert all_records() == []


def test_down_after_qemu_was_killed(lab, built):
    guest, conn = up(lab, lab.target("i386-up"), accel="tcg")
    conn.close()
    os.kill(guest.record.pid, 9)
    guest.proc.wait()
    assert down(guest.record.name) == "already"
    assert load(guest.record.name) is None
    with pytest.raises(LabError, match="no guest named"):
        down(guest.record.name)


def test_host_key_mismatch_is_refused(lab, built, running):
    other = lab.target("alpha-es40")
    with running("i386-up") as (guest, _):
        from lab.cache import Store
        from lab.images import images_for
        from lab.paths import cache_dir
        alpha_key = images_for(lab, other, Store(cache_dir())).host_key
        assert alpha_key != guest.record.host_key
        key, _ = ensure_client_key()
        with pytest.raises(SSHError, match="host key mismatch"):
            Connection(guest.record.ssh_port, key, alpha_key).connect()


def test_two_lab_up_of_one_name_at_once_boot_one_guest(built):
    """Two users (or CI jobs) start the same guest name at the same moment."""
    import subprocess
    import sys
    from pathlib import Path
    argv = [str(Path(sys.executable).parent / "lab"), "up", "i386-up", "--name", "clash", "--accel", "tcg"]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    try:
        assert sorted(rc for rc, _, _ in outs) == [0, 2], outs
        loser = next(err for rc, _, err in outs if rc == 2)
        assert "already running" in loser, loser
        assert [r.name for r in all_records()] == ["clash"]
    finally:
        if load("clash"):
            down("clash", soft_timeout=10)


def test_port_taken_between_choice_and_bind_boots_on_another(lab, built, squatted_port):
    guest, conn = up(lab, lab.target("i386-up"), accel="tcg")
    try:
        assert guest.record.ssh_port != squatted_port
        assert conn.run(["true"]).exit_code == 0
    finally:
        conn.close()
        guest.shutdown(soft_timeout=10)


def test_start_up_finishes_while_the_first_session_stays_open(lab, built):
    # rcS leaves the pseudo-terminals and busybox init until the host's first
    # session ends, or 1 s passes without a word from the SSH server: a session
    # the host keeps open must not hold the guest's start-up back for longer.
    import time
    guest, conn = up(lab, lab.target("alpha-pws500au"), accel="tcg", cold=True)
    try:
        deadline = time.monotonic() + 15
        while True:
            state = conn.run("cat /proc/1/comm; ls /dev/pts", check=False).stdout.split()
            if state[:2] == ["init", "ptmx"] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert state[:2] == ["init", "ptmx"], state
        # the SSH server's log still reaches its file, through rcS and then cat
        log = conn.run("cat /var/log/dropbear.log").stdout
        assert log.count("Pubkey auth succeeded") >= 1, log
        conn.run("true")
        other = guest.connection().connect()
        other.close()
        deadline = time.monotonic() + 10
        while conn.run("cat /var/log/dropbear.log").stdout.count("Pubkey auth succeeded") < 2:
            assert time.monotonic() < deadline, "a later login never reached the log"
            time.sleep(0.2)
    finally:
        conn.close()
        guest.shutdown(hard_only=True)


def test_soft_stop_right_after_up(lab, built):
    # Right after up() PID 1 is still rcS, waiting for the first session to end;
    # it must act on poweroff's signal as init would, or the stop waits out its
    # soft timeout and ends in a hard one.
    import time
    guest, conn = up(lab, lab.target("alpha-pws500au"), accel="tcg", cold=True)
    t0 = time.monotonic()
    try:
        how = guest.shutdown(soft_timeout=20)
    finally:
        conn.close()
        guest.shutdown(hard_only=True)
    assert how == "soft" and time.monotonic() - t0 < 10, (how, time.monotonic() - t0)
