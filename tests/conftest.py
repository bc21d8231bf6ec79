from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def lab_dirs(tmp_path, monkeypatch):
    """Private cache, data and run directories, so tests never touch the user's."""
    for var, sub in (("LAB_CACHE", "cache"), ("LAB_DATA", "data"), ("LAB_RUN", "run")):
        monkeypatch.setenv(var, str(tmp_path / sub))
    return tmp_path
