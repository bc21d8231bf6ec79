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
