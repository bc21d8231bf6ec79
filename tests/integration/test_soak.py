"""Real soaks: the shipped module and well-behaved modules of other styles pass;
each faulty module gets its verdict with no lab.yaml, on i386-up and alpha-es40.

None of the fixtures helps the detector: no lab.yaml, no waiting for their own
threads in init, thread names unlike the module's.
"""

import json
import threading
from pathlib import Path

import pytest

from lab.soak.run import SoakOptions, run_soak
from lab.soak.thresholds import TCG_ROUND_ROBIN_MS

TESTS = Path(__file__).resolve().parent.parent
FAULTY, GOOD = TESTS / "faulty", TESTS / "good"
BOTH = ["i386-up", "alpha-es40"]


def soak(lab, name, out, target=None, **kw):
    opts = SoakOptions(out=out, accel="tcg", **kw)
    return run_soak(lab, target or lab.target(name), opts)


def records(out):
    return [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]


def explain(res):
    s = res.summary
    return s.verdict, s.reason, s.checks_failed, s.failures[:2], s.evidence[:20]


@pytest.mark.parametrize("name", ["i386-smp", "alpha-es40"])
def test_shipped_module_passes(lab, built, tmp_path, name):
    res = soak(lab, name, tmp_path, cycles=25, dwell_every=12, dwell_s=3.5)
    s = res.summary
    assert res.verdict == "pass", explain(res)
    assert res.exit_code == 0
    assert s.cycles == 25 and s.stats.failed_cycles == 0
    cycles = [r for r in records(tmp_path) if r["type"] == "cycle"]
    assert [r["n"] for r in cycles] == list(range(1, 26))
    # lab.yaml adds its checks; discovery found the same five threads by itself
    assert all(r["starts"] == 5 and r["zombies"] <= 0 for r in cycles)
    assert list(s.stats.kthreads.first_cycle) == ["example thread"] * 5
    assert s.stats.kthreads.per_cycle == {"5": 25}
    assert all(t["ran"] and not t["left"] for r in cycles for t in r["threads"])
    # two dwell cycles of 3.5 s: 5 threads x 2-3 periods each
    assert s.stats.period.samples >= 10
    # About the module's 1-s sleep; an SMP guest on one TCG thread may wake late by
    # QEMU's round-robin slice (the allowance the soak's jitter check gives it too).
    target = lab.target(name)
    one_thread_smp = target.threading("tcg") == "single"
    assert abs(s.stats.period.mean - 1000) < 100 + (TCG_ROUND_ROBIN_MS if one_thread_smp else 0)
    assert s.memory.samples == 25 and "too few cycles" in s.memory.note
    for f in ("summary.json", "console.log", "junit.xml"):
        assert (tmp_path / f).is_file()
    assert json.loads((tmp_path / "summary.json").read_text())["verdict"] == "pass"


@pytest.mark.parametrize("name", BOTH)
@pytest.mark.parametrize("module, threads", [
    ("selfexit", ["fw-upload/0", "fw-upload/1", "fw-upload/2"]),
    ("workqueue", ["good_poll_wq"]),
])
def test_well_behaved_modules_of_other_styles_pass(lab, built, tmp_path, name, module, threads):
    res = soak(lab, name, tmp_path, cycles=20, module_dir=GOOD / module)
    assert res.verdict == "pass", explain(res)
    assert list(res.summary.stats.kthreads.first_cycle) == threads


@pytest.mark.parametrize("name", BOTH)
def test_thread_ignoring_stop_fails_at_once_then_hangs(lab, built, tmp_path, name):
    res = soak(lab, name, tmp_path, cycles=5, module_dir=FAULTY / "ignore-stop",
               overrides={"cycle_deadline_s": 15})
    assert res.verdict == "hang" and res.exit_code == 1, explain(res)
    s = res.summary
    assert s.checks_failed.get("timing-unload") == 1
    # the blocked unload was reported before the deadline, with the module's state
    recs = records(tmp_path)
    blocked = [r for r in recs if r["type"] == "unload-blocked"]
    assert blocked and blocked[0]["n"] == 1
    assert "Unloading" in blocked[0]["module"]
    stack = "\n".join(blocked[0]["stack"])
    if name.startswith("i386"):      # /proc/PID/stack
        assert blocked[0]["stack_from"] == "stack" and "kthread_stop" in stack
    else:                            # Alpha keeps no stack file: the kernel's sysrq-w dump
        assert blocked[0]["stack_from"] == "sysrq-w" and "soak-agent" in stack
    assert s.evidence[0].startswith("/proc/modules: faulty_ignore_stop")
    assert (tmp_path / "registers.txt").is_file()
    assert "sysrq: Show" in (tmp_path / "hang-console.txt").read_text()


@pytest.mark.parametrize("name", BOTH)
def test_leak_per_load_is_caught_by_the_memory_trend(lab, built, tmp_path, name):
    res = soak(lab, name, tmp_path, cycles=60, module_dir=FAULTY / "leak")
    assert res.verdict == "fail", explain(res)
    assert set(res.summary.checks_failed) == {"mem-growth"}
    assert res.summary.memory.slab.kb_per_cycle > 16


def test_kmemleak_names_the_leak_on_the_debug_kernel(lab, built, debug_variant, tmp_path):
    res = soak(lab, "i386-up", tmp_path, debug_variant("i386-up"), cycles=12,
               module_dir=FAULTY / "leak")
    assert res.verdict == "fail", explain(res)
    assert "kmemleak" in res.summary.checks_failed
    km = res.summary.kmemleak
    assert km.available and km.attributed >= 64 * 12 * 0.9, km
    assert res.summary.setup.kernel == "linux-6.1-i386+debug+cmdline"


def test_well_behaved_module_has_no_kmemleak_finding(lab, built, debug_variant, tmp_path):
    res = soak(lab, "i386-up", tmp_path, debug_variant("i386-up"), cycles=12,
               module_dir=GOOD / "workqueue")
    assert res.verdict == "pass", explain(res)
    assert res.summary.kmemleak.available and res.summary.kmemleak.attributed == 0


@pytest.mark.parametrize("name", BOTH)
def test_held_refcount_is_caught(lab, built, tmp_path, name):
    res = soak(lab, name, tmp_path, cycles=5, module_dir=FAULTY / "refcount")
    assert res.verdict == "fail", explain(res)
    assert "refcount" in res.summary.checks_failed
    assert res.summary.failures[0].message.startswith("module refcount 1")


@pytest.mark.parametrize("name", BOTH)
@pytest.mark.parametrize("module, comm", [("misnamed", "irq/poll-"), ("thread-left", "faulty worker")])
def test_threads_left_behind_are_found_whatever_their_name(lab, built, tmp_path, name, module, comm):
    res = soak(lab, name, tmp_path, cycles=5, module_dir=FAULTY / module)
    # The thread still sleeps in module code that unload freed: the agent sees it
    # first; an oops may follow when it wakes.
    assert res.verdict in ("fail", "crash"), explain(res)
    left = [f for f in res.summary.failures if f.check == "threads-left"]
    assert left and comm in left[0].message, explain(res)


@pytest.mark.parametrize("name", BOTH)
def test_oops_in_init_is_a_crash_quoting_the_first_report(lab, built, tmp_path, name):
    res = soak(lab, name, tmp_path, cycles=5, module_dir=FAULTY / "oops-init")
    assert res.verdict == "crash" and res.exit_code == 1, explain(res)
    ev = res.summary.evidence
    assert "oops" in res.summary.reason
    assert any("faulty_init" in line for line in ev), ev
    assert ev[-1].startswith("[... ") or len(ev) < 80


@pytest.mark.parametrize("name", ["i386-smp", "alpha-ds20", "alpha-es40"])
def test_a_race_between_threads_is_caught_on_every_smp_target(lab, built, tmp_path, name):
    # Four threads share a list with no lock: only two vCPUs running at one instant
    # (one TCG thread per vCPU, the default) can make it go wrong.
    res = soak(lab, name, tmp_path, cycles=300, module_dir=FAULTY / "race")
    assert res.summary.threading == "multi"
    assert res.verdict.module_failed, explain(res)
    assert res.summary.cycles < 300, explain(res)


@pytest.mark.parametrize("name", ["i386-up", "alpha-pws500au"])
def test_the_same_race_is_harmless_on_one_cpu(lab, built, tmp_path, name):
    res = soak(lab, name, tmp_path, cycles=150, module_dir=FAULTY / "race")
    assert res.verdict == "pass", explain(res)
    assert res.summary.threading == "up"
    assert res.summary.stats.kthreads.per_cycle == {"4": 150}


@pytest.mark.parametrize("name", BOTH)
@pytest.mark.parametrize("module, named", [
    ("chrdev-left", "char major "),                    # only /proc/devices knows
    ("misc-left", "device /devices/virtual/misc/ctlpanel"),   # the kernel's uevents
])
def test_a_registration_left_after_unload_is_named_in_its_cycle(lab, built, tmp_path, name,
                                                                 module, named):
    res = soak(lab, name, tmp_path, cycles=20, module_dir=FAULTY / module)
    # a misc device left registered points into the freed module: the next load's
    # misc_register() may crash on it, after the cycle that left it was judged
    assert res.verdict in ("fail", "crash"), explain(res)
    regs = [f for f in res.summary.failures if f.check == "registrations"]
    assert regs and regs[0].cycle == 1, explain(res)
    assert named in regs[0].message and "still there after unload" in regs[0].message


@pytest.mark.parametrize("name", BOTH)
def test_a_failed_init_names_the_thread_it_left_running(lab, built, tmp_path, name):
    res = soak(lab, name, tmp_path, cycles=10, module_dir=FAULTY / "init-leaves-thread")
    assert res.verdict in ("fail", "crash"), explain(res)
    first = res.summary.failures[0]
    assert first.check == "syscall" and first.cycle == 1, explain(res)
    assert first.message.startswith("init_module: No such device, and the failed load left "
                                    "thread rtl-poll (pid "), first.message


@pytest.mark.parametrize("name", BOTH)
def test_modules_that_register_and_unregister_or_fail_cleanly_leave_nothing(lab, built,
                                                                            tmp_path, name):
    res = soak(lab, name, tmp_path / "registers", cycles=30, module_dir=GOOD / "registers")
    assert res.verdict == "pass", explain(res)
    res = soak(lab, name, tmp_path / "fails", cycles=3, module_dir=GOOD / "init-fails-cleanly")
    assert res.verdict == "fail" and set(res.summary.checks_failed) == {"syscall"}, explain(res)
    assert res.summary.failures[0].message == "init_module: No such device"


@pytest.mark.parametrize("keep_going", [False, True])
def test_slow_load_fails_on_timing_and_ends_the_soak_unless_keep_going(lab, built, tmp_path,
                                                                        keep_going):
    res = soak(lab, "i386-up", tmp_path, cycles=5, module_dir=FAULTY / "slow-load",
               overrides={"max_load_ms": 1000}, keep_going=keep_going)
    assert res.verdict == "fail", explain(res)
    assert set(res.summary.checks_failed) == {"timing-load"}
    # the host judges timing; without --keep-going the agent stops after the failed
    # cycle and the one already under way
    cycles = [r["n"] for r in records(tmp_path) if r["type"] == "cycle"]
    assert cycles == [1, 2, 3, 4, 5] if keep_going else cycles in ([1], [1, 2])
    assert res.summary.checks_failed["timing-load"] == len(cycles)


def test_zombie_made_during_the_soak_fails(lab, built, tmp_path):
    done = threading.Event()

    def make_zombie(rec, guest):
        # After the baseline, a user-space process leaves an unreaped child.
        if rec.get("type") == "cycle" and rec["n"] == 2 and not done.is_set():
            done.set()
            with guest.connection().connect() as c:
                c.run("(sleep 0.1 & exec sleep 600) >/dev/null 2>&1 &", timeout=20)
                c.run("sleep 0.5")

    opts = SoakOptions(out=tmp_path, accel="tcg", cycles=300)
    res = run_soak(lab, lab.target("i386-up"), opts, on_record=make_zombie)
    assert done.is_set()
    assert res.verdict == "fail", explain(res)
    assert "zombies" in res.summary.checks_failed
    first = next(f for f in res.summary.failures if f.check == "zombies")
    assert first.cycle >= 2


def test_threads_are_found_after_the_pid_counter_wraps(lab, built, running, tmp_path):
    """A long soak hands out more PIDs than pid_max (about 6500 cycles of five threads
    at the default 32768); new threads then get PIDs from 300 up again, below tasks
    that outlived the last wrap. With pid_max at 600 and five new PIDs a cycle, the
    first wrap comes near cycle 100 and then one every 60 cycles (300 PIDs from 300
    to 599): four in 300 cycles. At 1024 there were only one or two, as the
    guest's other tasks happened to take PIDs or not."""
    with running("alpha-ds20") as (guest, conn):
        conn.run("echo 600 > /proc/sys/kernel/pid_max")
        res = soak(lab, "alpha-ds20", tmp_path, cycles=300)
    assert res.verdict == "pass", explain(res)
    cycles = [r for r in records(tmp_path) if r["type"] == "cycle"]
    pids = [[t["pid"] for t in r["threads"]] for r in cycles]
    wraps = sum(1 for a, b in zip(pids, pids[1:]) if a and b and min(b) < max(a))
    assert wraps >= 2, pids
    assert res.summary.stats.kthreads.per_cycle == {"5": 300}


def test_zombie_its_parent_reaps_within_the_grace_passes(lab, built, tmp_path):
    """A user's SSH commands during a soak leave short-lived zombies (a parent
    reaps its child when it gets to it): not the module's doing, not a failure."""
    done = threading.Event()

    def short_zombies(rec, guest):
        if rec.get("type") == "cycle" and rec["n"] == 2 and not done.is_set():
            done.set()
            with guest.connection().connect() as c:
                for _ in range(3):  # a zombie until its parent ends and init reaps it: 0.75 s
                    c.run(["sh", "-c", "sleep 0.05 & exec sleep 0.8"], timeout=20)

    opts = SoakOptions(out=tmp_path, accel="tcg", cycles=300)
    res = run_soak(lab, lab.target("i386-up"), opts, on_record=short_zombies)
    assert done.is_set()
    assert res.verdict == "pass", explain(res)


def test_agent_killed_from_outside_is_infra_not_crash(lab, built, tmp_path):
    done = threading.Event()
    agent = {}

    def kill_agent(rec, guest):
        if rec.get("type") == "baseline":
            agent["pid"] = rec["agent_pid"]
        # a passed cycle 3: the agent is still running (after a failed one it has ended)
        if rec.get("type") == "cycle" and rec["n"] == 3 and not rec["failures"] \
                and not done.is_set():
            done.set()
            with guest.connection().connect() as c:
                c.run(["kill", "-9", str(agent["pid"])], timeout=20, check=False)

    opts = SoakOptions(out=tmp_path, accel="tcg", cycles=100000)
    res = run_soak(lab, lab.target("i386-up"), opts, on_record=kill_agent)
    assert done.is_set(), explain(res)
    assert res.verdict == "infra" and res.exit_code == 2, explain(res)
    assert "killed from outside" in res.summary.reason, explain(res)


def test_records_stalled_between_guest_and_host_are_infra_not_a_hang(lab, built, tmp_path):
    """The SSH server that carries the agent's records stops (SIGSTOP), as when the
    guest's network stalls: the agent blocks writing, a new SSH session finds it
    there, and the module is not blamed."""
    done = threading.Event()
    agent = {}

    def stop_relay(rec, guest):
        if rec.get("type") == "baseline":
            agent["pid"] = rec["agent_pid"]
        if rec.get("type") == "cycle" and rec["n"] == 3 and not done.is_set():
            done.set()
            with guest.connection().connect() as c:
                stat = c.run(["cat", f"/proc/{agent['pid']}/stat"]).stdout
                relay = stat[stat.rfind(")") + 2:].split()[1]
                c.run(["kill", "-STOP", relay])

    opts = SoakOptions(out=tmp_path, accel="tcg", cycles=100000,
                       overrides={"cycle_deadline_s": 10})
    res = run_soak(lab, lab.target("i386-up"), opts, on_record=stop_relay)
    assert done.is_set(), explain(res)
    assert res.verdict == "infra" and res.exit_code == 2, explain(res)
    # the agent blocks writing records, or (its answers stopped too) reading the next answer
    assert ("waits to write its records (pipe_write)" in res.summary.reason
            or "waits for the host's answers to its records (pipe_read)" in res.summary.reason), \
        explain(res)
    assert res.summary.failures == ()


def test_lab_down_during_a_soak_ends_it_as_infra_with_the_reason(lab, built, tmp_path):
    from lab.guest.lifecycle import down
    done = threading.Event()

    def stop_guest(rec, guest):
        if rec.get("type") == "cycle" and rec["n"] == 3 and not done.is_set():
            done.set()
            down(guest.record.name)   # as `lab down --all` from another shell would

    opts = SoakOptions(out=tmp_path, accel="tcg", cycles=100000)
    res = run_soak(lab, lab.target("i386-up"), opts, on_record=stop_guest)
    assert res.verdict == "infra" and res.exit_code == 2, explain(res)
    assert "from outside" in res.summary.reason, res.summary.reason


def test_a_module_from_the_kernel_tree_passes_without_lab_yaml(lab, built, tmp_path):
    # samples/kobject from the kernel source: written elsewhere, with a "-" in its file
    # name that the kernel turns into "_" in the module's name.
    import shutil

    from lab.cache import Store
    from lab.images.kernel import KernelSource
    from lab.paths import cache_dir
    src = KernelSource(lab.profiles["linux-6.1"]).artifact(Store(cache_dir())).path / "src"
    mod = tmp_path / "kobject"
    mod.mkdir()
    shutil.copy(src / "samples" / "kobject" / "kobject-example.c", mod)
    (mod / "Kbuild").write_text("obj-m += kobject-example.o\n")
    res = soak(lab, "i386-up", tmp_path / "out", cycles=25, module_dir=mod)
    assert res.verdict == "pass", explain(res)
    assert res.summary.module.name == "kobject_example" and res.summary.cycles == 25
