"""The lab's one SSH connection type (paramiko).

Key authentication with the lab's client key; the host key is checked against
the one recorded when the image was built (RejectPolicy, never auto-add);
timeouts on connect and on every command.
"""

from __future__ import annotations

import base64
import logging
import select
import shlex
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import paramiko

from .config import Timeouts
from .deadline import Deadline
from .errors import LabError
from .keys import load_client_key

# paramiko's transport thread logs every failed attempt with a traceback; the
# lab reports failures itself, with context.
logging.getLogger("paramiko").addHandler(logging.NullHandler())
logging.getLogger("paramiko").propagate = False


class SSHError(LabError):
    pass


class HostKeyError(SSHError):
    """The guest offered another host key than the one recorded at image build."""


class ConnectError(SSHError):
    """No SSH session could be set up (refused, no banner, timeout...): may be transient."""


class RemoteCommandError(SSHError):
    def __init__(self, command: str, result: "Result"):
        self.command, self.result = command, result
        out = (result.stdout + result.stderr).strip().splitlines()[-15:]
        super().__init__(f"remote command failed (exit {result.exit_code}): {command}"
                         + ("\n--- last lines ---\n" + "\n".join(out) if out else ""))


@dataclass(frozen=True)
class Result:
    exit_code: int
    stdout: str
    stderr: str


def host_key_from_line(line: str) -> paramiko.PKey:
    """A paramiko key from an OpenSSH public key line ("ssh-ed25519 AAAA...")."""
    kind, b64 = line.split()[:2]
    return paramiko.PKey.from_type_string(kind, base64.b64decode(b64))


def known_hosts_line(port: int, host_key: str) -> str:
    return f"[127.0.0.1]:{port} {' '.join(host_key.split()[:2])}"


def command_string(command: str | Sequence[str]) -> str:
    """Argument lists are quoted for the remote shell; strings are taken as shell code."""
    return command if isinstance(command, str) else shlex.join(command)


class Connection:
    def __init__(self, port: int, key_file: Path, host_key: str, host: str = "127.0.0.1",
                 user: str = "root", connect_timeout: float = 10.0,
                 command_timeout: float = Timeouts.ssh_command):
        self.host, self.port, self.user = host, port, user
        self.key_file, self.host_key = key_file, host_key
        self.connect_timeout, self.command_timeout = connect_timeout, command_timeout
        self.client: paramiko.SSHClient | None = None

    def connect(self) -> "Connection":
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        name = f"[{self.host}]:{self.port}" if self.port != 22 else self.host
        key = host_key_from_line(self.host_key)
        client.get_host_keys().add(name, key.get_name(), key)
        try:
            client.connect(self.host, port=self.port, username=self.user, sock=self._socket(),
                           pkey=load_client_key(self.key_file), timeout=self.connect_timeout,
                           banner_timeout=self.connect_timeout, auth_timeout=self.connect_timeout,
                           allow_agent=False, look_for_keys=False)
        except paramiko.BadHostKeyException as e:
            client.close()
            raise HostKeyError(f"host key mismatch on {name}: the guest offered "
                               f"{e.key.get_name()} {e.key.get_base64()[:24]}..., the image "
                               f"recorded {self.host_key[:40]}...: refusing to connect") from None
        except (paramiko.SSHException, OSError, EOFError) as e:
            client.close()
            if "not found in known_hosts" in str(e):
                raise HostKeyError(f"{name} offered a host key of another type than the "
                                   f"recorded one ({self.host_key.split()[0]}): refusing to "
                                   "connect") from None
            raise ConnectError(f"cannot open an SSH session to {name}: "
                               f"{e or type(e).__name__}") from None
        self.client = client
        return self

    def _socket(self) -> socket.socket:
        # Without TCP_NODELAY the kernel holds each short SSH message back until the
        # one before it is acknowledged, and acknowledgements come late (delayed
        # ACK): two stalls of about 40 ms in each connection to a running
        # alpha-pws500au (connect to first command answered: 144 ms, 61 ms with
        # Nagle off). A cold boot's first connection, where the guest is slow to
        # answer anyway, showed no difference.
        sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def close(self) -> None:
        if self.client:
            self.client.close()
            self.client = None

    def __enter__(self) -> "Connection":
        return self if self.client else self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _transport(self) -> paramiko.Transport:
        if not self.client:
            self.connect()
        assert self.client is not None
        t = self.client.get_transport()
        if t is None or not t.is_active():
            raise SSHError(f"SSH connection to port {self.port} is closed")
        return t

    def open_channel(self, command: str | Sequence[str]) -> paramiko.Channel:
        try:
            ch = self._transport().open_session(timeout=self.connect_timeout)
            ch.exec_command(command_string(command))
        except (paramiko.SSHException, OSError, EOFError) as e:
            raise ConnectError(f"cannot start {command_string(command)!r} on port "
                               f"{self.port}: {e or type(e).__name__}") from None
        return ch

    def run(self, command: str | Sequence[str], timeout: float | None = None,
            check: bool = True, stdin: bytes | None = None) -> Result:
        """Run a command (``stdin`` as its standard input, else none); raise SSHError on
        timeout, RemoteCommandError on failure if check."""
        cmd = command_string(command)
        limit = self.command_timeout if timeout is None else timeout
        ch = self.open_channel(cmd)
        ch.settimeout(limit)
        deadline = Deadline(limit, cmd)
        # The command's standard input is ``stdin``, then end of file (none: at once),
        # so a command that reads it does not wait out the timeout.
        if stdin:
            ch.sendall(stdin)
        ch.shutdown_write()
        out, err = bytearray(), bytearray()
        try:
            while True:
                if ch.recv_ready():
                    out += ch.recv(65536)
                elif ch.recv_stderr_ready():
                    err += ch.recv_stderr(65536)
                elif ch.exit_status_ready() and not ch.recv_ready() and not ch.recv_stderr_ready():
                    break
                else:
                    if deadline.expired():
                        raise socket.timeout()
                    select.select([ch], [], [], 0.05)
            code = ch.recv_exit_status()
        except socket.timeout:
            ch.close()
            raise SSHError(f"remote command timed out after {limit:g}s: {cmd}") from None
        finally:
            ch.close()
        result = Result(code, out.decode(errors="replace"), err.decode(errors="replace"))
        if check and code != 0:
            raise RemoteCommandError(cmd, result)
        return result
