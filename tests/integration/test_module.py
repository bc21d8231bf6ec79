import re
import time

import pytest

from lab.deploy import module_remote_path, put_file
from lab.module import build_module



@pytest.mark.parametrize("name", ["i386-up", "alpha-es40"])
def test_build_deploy_load_unload(lab, built, running, name):
    target = lab.target(name)
    mod, _ = build_module(lab, target)
    with running(name) as (guest, conn):
        remote = module_remote_path("thread_mod", mod.path)
        first = put_file(conn, mod.path, remote)
        again = put_file(conn, mod.path, remote)
        assert first.sent and not again.sent and first.sha256 == mod.sha256

        conn.run(["insmod", remote])
        t0 = time.monotonic()
        comms = conn.run("cat /proc/[0-9]*/comm 2>/dev/null; true").stdout.splitlines()
        assert comms.count("example thread") == 5
        time.sleep(3.3 - (time.monotonic() - t0))
        dmesg = conn.run("dmesg").stdout
        starts = re.findall(r"thread_mod: thread (\d) started", dmesg)
        assert sorted(starts) == ["0", "1", "2", "3", "4"]
        wakes = re.findall(r"thread_mod: thread (\d) woke up", dmesg)
        for tid in "01234":
            # about once a second: 3.3 s after loading, 2 to 4 lines per thread
            assert 2 <= wakes.count(tid) <= 4, (tid, wakes)

        conn.run(["rmmod", "thread_mod"])
        comms = conn.run("cat /proc/[0-9]*/comm 2>/dev/null; true").stdout.splitlines()
        assert "example thread" not in comms
        assert "thread_mod" not in conn.run("cat /proc/modules").stdout
        assert len(re.findall(r"thread_mod: thread \d stopped", conn.run("dmesg").stdout)) == 5
