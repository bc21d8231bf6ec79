import os

import pytest

from fakeguest import FAKES


@pytest.fixture
def fake_qemu(lab_dirs, monkeypatch):
    """The fake QEMU first on PATH, and private lab directories."""
    monkeypatch.setenv("PATH", f"{FAKES}{os.pathsep}{os.environ['PATH']}")
    return lab_dirs
