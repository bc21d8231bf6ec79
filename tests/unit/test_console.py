from lab.guest.console import ConsoleLog, classify, findings


def test_classify_kernel_trouble():
    assert classify("[ 1.2] Kernel panic - not syncing: No working init found.") == "panic"
    assert classify("[ 3.0] Unable to handle kernel paging request at virtual address 0") == "oops"
    assert classify("[ 3.0] BUG: kernel NULL pointer dereference, address: 00000000") == "oops"
    assert classify("[ 3.0] Oops: 0002 [#1] SMP") == "oops"
    assert classify("[ 9.0] WARNING: CPU: 0 PID: 1 at mm/slub.c:1 x") == "warning"
    assert classify("[ 9.0] rcu: INFO: rcu_sched self-detected stall on CPU") == "rcu-stall"
    assert classify("[99.0] INFO: task rmmod:77 blocked for more than 30 seconds.") == "hung-task"
    assert classify("[60.2] watchdog: BUG: soft lockup - CPU#0 stuck for 53s! [faulty thread:87]") == "soft-lockup"
    assert classify("[ 2.4] qworker/2(81): unhandled unaligned exception") == "oops"
    assert classify("[ 2.4] CPU 1 faulty(90): Arithmetic fault 0") == "oops"
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


def test_marks_split_by_a_kernel_message_are_still_found(tmp_path):
    """Seen on i386-smp under load: printk wrote into the middle of rcS's ready line,
    and lab waited for a mark that had been printed."""
    from lab.guest.console import CPU_MARK, READY_MARK
    log = tmp_path / "console.log"
    log.write_bytes(
        b"[    6.060063] ip (79) used greatest stack depth: 6192 bytes left\r\n"
        b"lab-guest: cpu [    6.1] random: fast init done\r\nGenuine Intel(R) CPU T2600\r\n"
        b"lab-guest: sshd [    8.408960] rcS (75) used greatest stack depth: 6104 bytes left\r\n"
        b"ready\r\n\r\nPlease press Enter to activate this console. ")
    c = ConsoleLog(log)
    c.poll()
    assert not any(READY_MARK in line for line in c.lines)  # no single line has it
    user = c.user_text()
    assert READY_MARK in user
    assert CPU_MARK.search(user).group(1) == "Genuine Intel(R) CPU T2600"
