"""Exceptions of the lab, each carrying the context a user needs to act on it.

``LabError`` and its kinds mean the lab itself could not run (exit 2). A module
that fails is not an exception: it is a verdict (lab.verdict), and so is exit 1.
"""

from __future__ import annotations

import shlex
from typing import Sequence


def tail(text: str, lines: int = 20) -> str:
    """The last ``lines`` lines of ``text``."""
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


class LabError(Exception):
    """The lab could not do its job (bad config, missing tool, build failure...)."""

    exit_code = 2  # Verdict.INFRA.exit_code


class ConfigError(LabError):
    """A configuration file is invalid. The message names file, key and valid choices."""

    def __init__(self, path: str, key: str, problem: str):
        self.path, self.key, self.problem = path, key, problem
        super().__init__(f"{path}: {key}: {problem}")


class MissingToolError(LabError):
    """A host program is missing; the message names the Debian package to install."""

    def __init__(self, tool: str, package: str):
        self.tool, self.package = tool, package
        super().__init__(f"{tool} not found: install it with `apt-get install {package}`")


class CommandError(LabError):
    """A host command failed. Carries the command, its exit code and the tail of its output."""

    def __init__(self, argv: Sequence[str], returncode: int, output: str = "",
                 log: str | None = None, what: str | None = None):
        self.argv = list(argv)
        self.returncode = returncode
        self.output = output
        self.log = log
        head = f"{what} failed" if what else "command failed"
        msg = f"{head} (exit {returncode}): {shlex.join(self.argv)}"
        if log:
            msg += f"\nfull log: {log}"
        if output.strip():
            msg += "\n--- last lines ---\n" + tail(output)
        super().__init__(msg)


class GuestError(LabError):
    """A guest could not be started, reached or stopped. Carries the console tail."""

    def __init__(self, message: str, console_tail: str = ""):
        self.console_tail = console_tail
        if console_tail.strip():
            message += "\n--- console ---\n" + tail(console_tail)
        super().__init__(message)
