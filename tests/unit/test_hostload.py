"""Budgets that follow the host: the timeout factor and the matrix's job count."""

import pytest

from lab.config import load_lab, timeout_policy
from lab.hostload import HostLoad, auto_factor, free_core_slots


@pytest.mark.parametrize("vcpus, load, factor", [
    (1, HostLoad(2, 0.0), 1.0),    # idle: the timeouts as set
    (4, HostLoad(2, 0.0), 1.0),    # a 4-vCPU guest on 2 idle cores is what they were set on
    (1, HostLoad(2, 1.0), 1.0),    # one core busy, one free: a 1-vCPU guest does not wait
    (4, HostLoad(2, 1.0), 2.0),    # 4 vCPUs on the one free core: twice as slow as idle
    (1, HostLoad(2, 2.0), 2.0),    # every core busy: half a core each
    (4, HostLoad(2, 8.0), 4.0),    # capped
])
def test_auto_factor_is_the_slowdown_the_load_adds(vcpus, load, factor):
    assert auto_factor(vcpus, load) == factor


@pytest.mark.parametrize("load, slots", [(HostLoad(2, 0.0), 2), (HostLoad(2, 0.7), 1),
                                         (HostLoad(2, 5.0), 1), (HostLoad(8, 2.2), 6)])
def test_matrix_runs_one_guest_per_free_core(load, slots):
    assert free_core_slots(load) == slots


def test_policy_is_auto_unless_set_and_says_why(monkeypatch):
    monkeypatch.delenv("LAB_TIMEOUT_FACTOR", raising=False)
    monkeypatch.setattr("lab.hostload.read_load", lambda: HostLoad(2, 2.0))
    factor, why = timeout_policy(4)
    assert factor == 4.0 and why.startswith("auto: load 2.00 on 2 cores, 4 vCPU thread(s)")
    # the host threads of the target's vCPUs decide its factor: one per vCPU (the
    # default), or one in all on single-threaded TCG
    def boot_timeouts(load, threading):
        monkeypatch.setenv("LAB_TCG_THREAD", threading)
        monkeypatch.setattr("lab.hostload.read_load", lambda: HostLoad(2, load))
        lab = load_lab()
        return {t: lab.target(t).timeouts.boot for t in ("alpha-es40", "i386-smp", "i386-up")}
    calm = boot_timeouts(0.0, "multi")
    assert boot_timeouts(1.0, "multi") == {"alpha-es40": calm["alpha-es40"] * 2.0,
                                           "i386-smp": calm["i386-smp"] * 2.0,
                                           "i386-up": calm["i386-up"]}
    assert boot_timeouts(1.0, "single") == calm
    busy = load_lab()       # load 1.0, one TCG thread in all
    monkeypatch.setattr("lab.hostload.read_load", lambda: HostLoad(2, 1.8))
    busier = load_lab()
    assert busier.target("alpha-es40").timeouts.boot == calm["alpha-es40"] * 2.0
    # the factor the timeouts got is kept with the target, for the soak and its summary
    assert busier.target("alpha-es40").timeout_factor == 2.0
    assert busy.target("alpha-es40").timeout_policy.startswith("auto: load 1.00 on 2 cores")
    assert busy.target("i386-up").timeouts.boot == calm["i386-up"]
    monkeypatch.setenv("LAB_TIMEOUT_FACTOR", "1")
    assert timeout_policy(4) == (1.0, "LAB_TIMEOUT_FACTOR=1")
