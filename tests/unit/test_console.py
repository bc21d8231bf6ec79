from lab.console import ConsoleLog, classify, findings


def test_classify_kernel_trouble():
    assert classify("[ 1.2] Kernel panic - not syncing: No working init found.") == "panic"
    assert classify("[ 3.0] Unable to handle kernel paging request at virtual address 0") == "oops"
    assert classify("[ 3.0] BUG: kernel NULL pointer dereference, address: 00000000") == "oops"
    assert classify("[ 3.0] Oops: 0002 [#1] SMP") == "oops"
    assert classify("[ 9.0] WARNING: CPU: 0 PID: 1 at mm/slub.c:1 x") == "warning"
    assert classify("[ 9.0] rcu: INFO: rcu_sched self-detected stall on CPU") == "rcu-stall"
    assert classify("[99.0] INFO: task rmmod:77 blocked for more than 30 seconds.") == "hung-task"
    assert classify("[60.2] watchdog: BUG: soft lockup - CPU#0 stuck for 53s! [faulty thread:87]") == "soft-lockup"
    assert classify("[ 1.0] thread_mod: thread 3 woke up") is None
    assert classify("[ 0.5] e1000: eth0 NIC Link is Up") is None


def test_incremental_lines_with_partial_tail(tmp_path):
    p = tmp_path / "console.log"
    log = ConsoleLog(p)
    assert log.poll() == []
    p.write_bytes(b"one\r\ntw")
    assert log.poll() == ["one"]
    with open(p, "ab") as f:
        f.write(b"o\r\nthree")
    assert log.poll() == ["two"]
    assert log.tail(2) == "two\nthree"
    assert [f.kind for f in findings(["x", "Kernel panic - not syncing: y"])] == ["panic"]
