import os

import pytest

from lab.errors import LabError
from lab.guest import BootVerdict, Guest
from lab.keys import ensure_client_key
from lab.lifecycle import down, up
from lab.ssh import Connection, SSHError
from lab.state import all_records, load


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


def test_panic_during_boot_is_reported_quickly(lab, built):
    with pytest.raises(BootVerdict) as e:
        up(lab, lab.target("i386-up"), accel="tcg", timeout=60,
           extra_cmdline="rdinit=/nonexistent root=/dev/nothing")
    assert e.value.verdict == "panic"
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
