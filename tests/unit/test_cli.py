"""The CLI's exit codes and one-line errors, driven through main(argv)."""

import json

from lab.cli import main


def test_unknown_target_is_one_line_with_the_list(lab_dirs, capsys):
    assert main(["up", "alpha-es45"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lab: error: unknown target 'alpha-es45'")
    assert "alpha-es40" in err and "i386-up" in err and len(err.splitlines()) == 1


def test_status_json_with_no_guests(lab_dirs, capsys):
    assert main(["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_down_unknown_guest(lab_dirs, capsys):
    assert main(["down", "nosuch"]) == 2
    assert "no guest named 'nosuch'" in capsys.readouterr().err


def test_images_list_json_empty_cache(lab_dirs, capsys):
    assert main(["images", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_bad_params_are_an_infra_error(lab_dirs):
    from lab.soak.run import parse_params
    import pytest
    from lab.errors import LabError
    assert parse_params("nthreads=3 period_ms=50") == {"nthreads": "3", "period_ms": "50"}
    with pytest.raises(LabError):
        parse_params("nthreads")
    with pytest.raises(LabError, match="'=bad' is not key=value"):
        parse_params("=bad")


import pytest  # noqa: E402


@pytest.mark.parametrize("argv, words", [
    (["soak", "--cycles", "0"], "--cycles 0"),
    (["soak", "--cycles", "-5"], "--cycles -5"),
    (["soak", "--hold-ms", "-1"], "--hold-ms"),
    (["soak", "--dwell", "3"], "--dwell-every"),
    (["soak", "--dwell-every", "10"], "--dwell-every"),
    (["soak", "--max-unload-ms", "0"], "--max-unload-ms"),
    (["matrix", "--cycles", "0"], "--cycles 0"),
    (["soak", "--config", "CONFIG_DEBUG_LIST"], "expected CONFIG_NAME=VALUE"),
    (["up", "i386-up", "--config-fragment", "nosuch"], "not a shipped fragment"),
    (["up", "i386-up", "--kernel", "linux-9"], "not a kernel profile"),
])
def test_bad_input_is_one_line_and_exit_2_before_anything_runs(lab_dirs, capsys, monkeypatch,
                                                             argv, words):
    monkeypatch.chdir(lab_dirs)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lab: error: ") and words in err and len(err.splitlines()) == 1
    # nothing was built, booted or written
    assert not (lab_dirs / "cache").exists() and not (lab_dirs / "run").exists()
    assert not (lab_dirs / "results").exists() and not (lab_dirs / "matrix-results").exists()


def test_sigterm_during_a_command_is_interrupted_with_exit_2(lab_dirs, capsys, monkeypatch):
    import os
    import signal

    import lab.cli as cli

    def slow_status(args, ui):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("the signal should have interrupted this command")
    monkeypatch.setattr(cli, "cmd_status", slow_status)
    assert main(["status"]) == 2
    assert "interrupted by SIGTERM" in capsys.readouterr().err
    # the handlers are restored afterwards
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_progress_without_a_terminal_is_plain_timestamped_lines(capsys):
    import re

    from lab.cli import UI
    from lab.cli_module import SoakProgress
    ui = UI()
    assert not ui.live
    with ui.status("planning") as status:
        status("building kernel linux-6.1-i386")
        status("building kernel linux-6.1-i386")  # unchanged: not repeated
    with SoakProgress(ui, "i386-up", 20) as shown:
        shown.status("booting")
        shown.record({"type": "baseline"}, 0)
        for n in range(1, 21):
            shown.record({"type": "cycle", "n": n}, 0)
    lines = capsys.readouterr().err.splitlines()
    assert all(re.match(r"^\[\d\d:\d\d:\d\d\] ", line) for line in lines), lines
    assert sum("building kernel" in line for line in lines) == 1
    assert any("i386-up: booting" in line for line in lines)
    assert any("cycle 20/20" in line for line in lines)


def test_bisect_exit_codes_follow_git_bisect_run():
    from lab.integrations.bisect import BISECT_EXIT
    from lab.verdict import Verdict
    assert {v: BISECT_EXIT[v] for v in Verdict} == {
        Verdict.PASS: 0, Verdict.FAIL: 1, Verdict.CRASH: 1, Verdict.HANG: 1,
        Verdict.INFRA: 125, Verdict.INTERRUPTED: 128}


def test_bisect_outside_a_git_tree_is_one_line(lab_dirs, capsys):
    assert main(["bisect", "HEAD~1", "HEAD", "--module", str(lab_dirs)]) == 2
    assert "not inside a git work tree" in capsys.readouterr().err


@pytest.mark.parametrize("factor", ["-3", "0", "-0.5", "101", "nan", "fast"])
def test_a_timeout_factor_that_leaves_no_time_is_refused_before_anything_runs(
        lab_dirs, capsys, monkeypatch, factor):
    import os

    import lab.cli as cli
    ran = []
    monkeypatch.setattr(cli, "cmd_status", lambda args, ui: ran.append(args) or 0)
    monkeypatch.delenv("LAB_TIMEOUT_FACTOR", raising=False)
    assert main(["--timeout-factor", factor, "status"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lab: error: --timeout-factor=") and len(err.splitlines()) == 1
    assert ran == [] and "LAB_TIMEOUT_FACTOR" not in os.environ


def test_a_bad_lab_timeout_factor_is_refused_by_every_command(lab_dirs, capsys, monkeypatch):
    monkeypatch.setenv("LAB_TIMEOUT_FACTOR", "-3")
    assert main(["status"]) == 2
    assert "LAB_TIMEOUT_FACTOR=-3: must be above 0" in capsys.readouterr().err


def test_a_good_timeout_factor_reaches_the_targets(lab_dirs, monkeypatch):
    import os

    import lab.cli as cli
    seen = []
    monkeypatch.delenv("LAB_TIMEOUT_FACTOR", raising=False)
    monkeypatch.setattr(cli, "cmd_status", lambda args, ui: seen.append(
        cli._lab().target("i386-up").timeout_policy) or 0)
    try:
        assert main(["--timeout-factor", "2.5", "status"]) == 0
    finally:
        os.environ.pop("LAB_TIMEOUT_FACTOR", None)
    assert seen == ["LAB_TIMEOUT_FACTOR=2.5"]


def a_record(run_dir):
    from lab.guest.state import GuestRecord
    return GuestRecord(name="g", target="i386-up", arch="i386", smp=1, memory=256, pid=1,
                       ssh_port=1, accel="tcg", dir=str(run_dir), host_key="ssh-ed25519 AAAA",
                       kernel_key="k", rootfs_key="r", kernel_release="6.1.0")


class RecordingConnection:
    """What `lab ssh` gets from Guest.connection: remembers the command timeout."""

    timeouts: list = []

    def __init__(self, command_timeout):
        self.timeouts.append(command_timeout)

    def connect(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def run(self, command, check, stdin):
        from lab.ssh import Result
        return Result(0, "", "")


def test_lab_ssh_commands_default_to_the_targets_ssh_command_timeout(lab_dirs, monkeypatch):
    """`lab ssh NAME -- CMD` without --timeout: the target's timeouts.ssh_command,
    scaled by the timeout factor like every other timeout."""
    from lab.guest.qemu import Guest
    monkeypatch.setenv("LAB_TIMEOUT_FACTOR", "2")
    rec = a_record(lab_dirs / "run" / "g")
    monkeypatch.setattr("lab.cli.find", lambda name: rec)
    monkeypatch.setattr(RecordingConnection, "timeouts", [])
    monkeypatch.setattr(Guest, "connection",
                        lambda self, command_timeout: RecordingConnection(command_timeout))
    monkeypatch.setattr("sys.stdin", None)
    assert main(["ssh", "g", "--", "true"]) == 0
    assert main(["ssh", "--timeout", "7", "g", "--", "true"]) == 0
    assert RecordingConnection.timeouts == [300.0 * 2, 7.0]


def test_guest_connections_default_to_the_targets_ssh_command_timeout(lab_dirs, monkeypatch):
    from dataclasses import replace

    from lab.config import load_lab
    from lab.guest.qemu import Guest
    monkeypatch.setattr("lab.guest.qemu.ensure_client_key", lambda: (lab_dirs / "key", None))
    rec = a_record(lab_dirs)
    target = load_lab().target("i386-up")
    target = replace(target, timeouts=replace(target.timeouts, ssh_command=123.0))
    assert Guest(rec, target).connection().command_timeout == 123.0
    assert Guest(rec, target).connection(command_timeout=5).command_timeout == 5
    assert Guest(rec).connection().command_timeout == 300.0    # known by its record only
