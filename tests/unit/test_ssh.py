"""The SSH connection's socket: short messages leave at once, refusals are ConnectError."""

import socket

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from lab import keys, ssh


@pytest.fixture
def client_key(tmp_path, monkeypatch):
    monkeypatch.setattr(keys, "data_dir", lambda: tmp_path)
    return keys.ensure_client_key()[0]


def a_host_key() -> str:
    raw = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return raw.decode()


def test_the_session_socket_has_nagle_off(client_key, monkeypatch):
    seen = {}

    def fake_connect(self, hostname, port, **kw):
        sock = kw["sock"]
        seen["nodelay"] = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        seen["peer"] = sock.getpeername()
        sock.close()

    monkeypatch.setattr(paramiko.SSHClient, "connect", fake_connect)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        ssh.Connection(port, client_key, a_host_key()).connect()
    assert seen == {"nodelay": 1, "peer": ("127.0.0.1", port)}


def test_a_refused_port_is_a_connect_error(client_key):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]          # bound, not listening: refused
        with pytest.raises(ssh.ConnectError, match="cannot open an SSH session"):
            ssh.Connection(port, client_key, a_host_key(), connect_timeout=2).connect()
