"""Integration tests: real image builds, real QEMU guests, real soaks.

They use the user's lab cache (a cold build takes about a quarter of an hour
on two cores; later runs reuse it) but their own run directory.
"""

from contextlib import contextmanager

import pytest

from lab.build import build_targets
from lab.config import load_lab

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def lab():
    return load_lab()


@pytest.fixture(scope="session")
def built(lab):
    """Every target's images, built once per session (cached across sessions)."""
    return build_targets(lab, list(lab.targets.values()))


@pytest.fixture(autouse=True)
def private_run_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_RUN", str(tmp_path / "run"))


@pytest.fixture
def running(lab):
    """running(target_name) -> context manager yielding (guest, connection)."""
    return lambda name, **kw: _running(lab, name, **kw)


@contextmanager
def _running(lab, target_name, **kw):
    from lab.lifecycle import up
    guest, conn = up(lab, lab.target(target_name), accel="tcg", **kw)
    try:
        yield guest, conn
    finally:
        conn.close()
        guest.shutdown(soft_timeout=10)
