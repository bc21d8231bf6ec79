"""Running host commands: argument lists only, output kept in a log file.

A failure raises CommandError with the command, its exit code, the log path and
the last lines of output, so a user never has to dig for the reason.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Mapping, Sequence

from .errors import CommandError, MissingToolError


def require(tool: str, package: str) -> str:
    """Path of ``tool`` on PATH, or MissingToolError naming the Debian package."""
    path = shutil.which(tool)
    if not path:
        raise MissingToolError(tool, package)
    return path


def run(argv: Sequence[str], *, log: Path | None = None, cwd: Path | None = None,
        env: Mapping[str, str] | None = None, timeout: float | None = None,
        what: str | None = None) -> str:
    """Run ``argv``; append its output to ``log`` (if given) and return it.

    Raises CommandError on a non-zero exit or on timeout.
    """
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    argv = [str(a) for a in argv]
    if log is None:
        try:
            p = subprocess.run(argv, cwd=cwd, env=full_env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, errors="replace",
                               timeout=timeout, check=False)
        except subprocess.TimeoutExpired as e:
            out = e.stdout if isinstance(e.stdout, str) else (e.stdout or b"").decode(errors="replace")
            raise CommandError(argv, -9, out, what=f"{what or 'command'} timed out after {timeout}s") from None
        if p.returncode != 0:
            raise CommandError(argv, p.returncode, p.stdout, what=what)
        return p.stdout
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8", errors="replace") as f:
        f.write(f"\n$ {shlex.join(argv)}\n")
        f.flush()
        start = f.tell()
        try:
            p = subprocess.run(argv, cwd=cwd, env=full_env, stdout=f, stderr=subprocess.STDOUT,
                               timeout=timeout, check=False)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            rc = -9
    with open(log, encoding="utf-8", errors="replace") as f:
        f.seek(start)
        out = f.read()
    if rc != 0:
        raise CommandError(argv, rc, out, log=str(log), what=what)
    return out
