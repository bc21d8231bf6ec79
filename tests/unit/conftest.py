import os
import signal
from pathlib import Path

import pytest

from fakeguest import FAKES


@pytest.fixture
def fake_qemu(lab_dirs, monkeypatch):
    """The fake QEMU first on PATH, and private lab directories. A fake QEMU of this
    test still running at its end (a test that failed before its shutdown) is killed,
    so no failure leaves processes behind for the rest of the run."""
    monkeypatch.setenv("PATH", f"{FAKES}{os.pathsep}{os.environ['PATH']}")
    yield lab_dirs
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(str(FAKES).encode() in a for a in argv[:2]) and \
                any(str(lab_dirs).encode() in a for a in argv):
            try:
                os.kill(int(proc.name), signal.SIGKILL)
            except (OSError, ValueError):
                pass
