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
    from lab.soak import parse_params
    import pytest
    from lab.errors import LabError
    assert parse_params("nthreads=3 period_ms=50") == {"nthreads": "3", "period_ms": "50"}
    with pytest.raises(LabError):
        parse_params("nthreads")
