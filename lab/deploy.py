"""Putting files on a guest over the lab's SSH connection.

dropbear has no SFTP server, so a file is streamed into ``cat`` on an exec
channel, then its checksum is verified on the guest. A file whose checksum
already matches is not sent again.
"""

from __future__ import annotations

import posixpath
import shlex
from dataclasses import dataclass
from pathlib import Path

from .cache import file_digest
from .errors import LabError
from .ssh import Connection

REMOTE_ROOT = "/lab"


@dataclass(frozen=True)
class Deployed:
    local: str
    remote: str
    sha256: str
    size: int
    sent: bool


def remote_sha256(conn: Connection, path: str) -> str | None:
    r = conn.run(["sha256sum", path], check=False)
    return r.stdout.split()[0] if r.exit_code == 0 and r.stdout else None


def put_file(conn: Connection, local: Path, remote: str, mode: int = 0o644) -> Deployed:
    digest = file_digest(local)
    size = local.stat().st_size
    if remote_sha256(conn, remote) == digest:
        return Deployed(str(local), remote, digest, size, sent=False)
    tmp = remote + ".part"
    conn.run(["mkdir", "-p", posixpath.dirname(remote)])
    conn.run("cat > " + shlex.quote(tmp), stdin=local.read_bytes(), timeout=120)
    got = remote_sha256(conn, tmp)
    if got != digest:
        conn.run(["rm", "-f", tmp], check=False)
        raise LabError(f"upload of {local.name} to {remote} is corrupt: sha256 {got} on the guest, "
                       f"{digest} here")
    conn.run(["chmod", oct(mode)[2:], tmp])
    conn.run(["mv", "-f", tmp, remote])
    return Deployed(str(local), remote, digest, size, sent=True)


def module_remote_path(module_name: str, ko: Path) -> str:
    return f"{REMOTE_ROOT}/modules/{module_name}/{ko.name}"
