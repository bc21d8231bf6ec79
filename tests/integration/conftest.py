"""Integration tests: real image builds, real QEMU guests, real soaks.

They use the user's lab cache (a cold build takes about a quarter of an hour
on two cores; later runs reuse it) but their own run directory.
"""

from contextlib import contextmanager

import pytest

from lab.build import build_targets
from lab.config import load_lab

pytestmark = pytest.mark.integration


# The debug kernel the tests use: the shipped `debug` fragment (lockdep, kmemleak,
# DEBUG_OBJECTS on i386) plus a --config line that shows in `uname -r`.
DEBUG_FRAGMENTS = ("debug",)
DEBUG_CONFIG = ('CONFIG_LOCALVERSION="-lab-test"',)


@pytest.fixture(scope="session")
def debug_variant(lab):
    """debug_variant(target_name) -> that target on the tests' debug kernel;
    debug_variant.cli: the same kernel as command-line options."""
    from lab.images.variant import variant

    def on_debug_kernel(name):
        return variant(lab, lab.target(name), None, DEBUG_CONFIG, DEBUG_FRAGMENTS)
    on_debug_kernel.cli = [*(x for f in DEBUG_FRAGMENTS for x in ("--config-fragment", f)),
                           *(x for c in DEBUG_CONFIG for x in ("--config", c))]
    return on_debug_kernel


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
    from lab.guest.lifecycle import up
    guest, conn = up(lab, lab.target(target_name), accel="tcg", **kw)
    try:
        yield guest, conn
    finally:
        conn.close()
        guest.shutdown(soft_timeout=10)
