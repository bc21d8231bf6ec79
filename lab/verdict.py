"""The one vocabulary of outcomes: soak checks, summaries, reports, JUnit and the CLI
all speak it, and it decides every command's exit status. A boot that did not reach
SSH has its own, smaller vocabulary (BootOutcome), carried by lab.guest.qemu.BootVerdict."""

from __future__ import annotations

from enum import StrEnum
from typing import Iterable


class Verdict(StrEnum):
    PASS = "pass"                # every cycle passed every check
    FAIL = "fail"                # a check failed (which, at which cycle, with evidence)
    CRASH = "crash"              # the kernel oopsed, panicked or ran out of memory
    HANG = "hang"                # a cycle did not finish before its deadline
    INFRA = "infra"              # the lab could not run the soak (boot, SSH, QEMU)
    INTERRUPTED = "interrupted"  # stopped by a signal (Ctrl-C, SIGTERM, SIGHUP)

    @property
    def exit_code(self) -> int:
        """0 pass, 1 the module failed, 2 the lab could not run (or was stopped)."""
        if self is Verdict.PASS:
            return 0
        return 1 if self.module_failed else 2

    @property
    def module_failed(self) -> bool:
        return self in (Verdict.FAIL, Verdict.CRASH, Verdict.HANG)

    @property
    def colour(self) -> str:
        return COLOURS[self]


COLOURS = {Verdict.PASS: "#2e9d4f", Verdict.FAIL: "#d1495b", Verdict.CRASH: "#8e1b2c",
           Verdict.HANG: "#e07a1f", Verdict.INFRA: "#8d8d8d", Verdict.INTERRUPTED: "#5b6f8a"}

# When results are merged, the headline is the most serious verdict among them.
SEVERITY = (Verdict.INFRA, Verdict.INTERRUPTED, Verdict.CRASH, Verdict.HANG, Verdict.FAIL,
            Verdict.PASS)


def worst(verdicts: Iterable[str]) -> Verdict:
    present = {Verdict(v) for v in verdicts}
    return next((v for v in SEVERITY if v in present), Verdict.PASS)


class BootOutcome(StrEnum):
    """Why a guest did not become ready. The kernel's own reports are named as the
    console recognises them (lab.guest.console.TROUBLE)."""

    PANIC = "panic"                      # the kernel crashed during boot
    OOPS = "oops"
    BUG = "bug"
    OOM = "oom"
    SOFT_LOCKUP = "soft-lockup"          # the kernel says it is stuck
    RCU_STALL = "rcu-stall"
    HUNG_TASK = "hung-task"
    KVM_FAILURE = "kvm-failure"          # KVM could not run the guest
    QEMU_EXIT = "qemu-exit"              # QEMU ended before the guest was ready
    NO_NETWORK = "no-network"            # the guest says its NIC passes no packet
    SSH_SILENT = "ssh-silent"            # the SSH server said ready, SSH never answered
    SSH_TIMEOUT = "ssh-timeout"          # the boot's budget ran out while SSH refused
    TIMEOUT = "timeout"                  # the boot's budget ran out before the ready mark
    SILENT_HANG = "silent-hang"          # no console output for the silence limit
    RESTORE_TIMEOUT = "restore-timeout"  # a saved state did not run, or did not answer
    RESTORE_FAILED = "restore-failed"    # the restored guest could not be refreshed

    @property
    def emulator_fault(self) -> bool:
        """A boot lost to the emulation, not to the kernel, whatever else is known: the
        kernel reported itself stuck (RCU stall, soft lockup, hung task) before anything
        of the user's was loaded, or the guest reached user space and its network passed
        no packet (its own ping of the gateway failed, or SSH never answered). A QEMU
        exit is one only for some statuses (BootVerdict.emulator_fault)."""
        return self in _EMULATOR_FAULTS


_EMULATOR_FAULTS = frozenset({BootOutcome.SOFT_LOCKUP, BootOutcome.RCU_STALL,
                              BootOutcome.HUNG_TASK, BootOutcome.NO_NETWORK,
                              BootOutcome.SSH_SILENT})
