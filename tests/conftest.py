from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def squatted_port(monkeypatch):
    """A port another process holds, handed out by lab's free_port() first: the race
    between choosing a port and QEMU binding it. Later calls get free ports."""
    import socket
    import lab.guest.qemu as guest_mod
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports, real = iter([taken]), guest_mod.free_port
        monkeypatch.setattr(guest_mod, "free_port", lambda: next(ports, None) or real())
        yield taken


@pytest.fixture
def lab_dirs(tmp_path, monkeypatch):
    """Private cache, data and run directories, so tests never touch the user's."""
    for var, sub in (("LAB_CACHE", "cache"), ("LAB_DATA", "data"), ("LAB_RUN", "run")):
        monkeypatch.setenv(var, str(tmp_path / sub))
    return tmp_path
