"""`lab bisect GOOD BAD`: find the commit of a module's history that broke the soak.

`git bisect run` drives the search; the judge of each commit is a `lab soak`
in a fresh guest with `--bisect-exit-codes` (pass = good, fail/crash/hang =
bad, infra = skip, interrupted = abort). The work tree goes back to where it
was, whatever happens.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import CommandError, LabError
from ..results import read_summary
from ..results.files import BISECT_JUDGE, BISECT_LOG, SUMMARY
from ..verdict import Verdict

# git bisect run: 0 good, 1-127 bad (but 125), 125 skip, above 127 abort.
BISECT_EXIT = {Verdict.PASS: 0, Verdict.FAIL: 1, Verdict.CRASH: 1, Verdict.HANG: 1,
               Verdict.INFRA: 125, Verdict.INTERRUPTED: 128}
FIRST_BAD = re.compile(r"^([0-9a-f]{40}) is the first bad commit", re.M)


@dataclass
class BisectResult:
    first_bad: str
    subject: str
    verdict: str
    reason: str
    checks_failed: dict
    steps: int
    out: Path

    def as_json(self) -> dict:
        return {k: str(v) if isinstance(v, Path) else v for k, v in self.__dict__.items()}


def _git(repo: Path, *args: str, check: bool = True) -> str:
    p = subprocess.run(["git", "-C", str(repo), *args], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, check=False)
    if check and p.returncode != 0:
        raise CommandError(["git", "-C", str(repo), *args], p.returncode, p.stdout, what="git")
    return p.stdout.strip()


def soak_command(target: str, cycles: int, module: Path, extra: list[str]) -> list[str]:
    """The judge of one commit: `lab soak` with bisect exit codes (--out is added per commit)."""
    return [sys.executable, "-m", "lab.cli", "soak", "--target", target, "--cycles", str(cycles),
            "--module", str(module), "--bisect-exit-codes", *extra]


def bisect(module: Path, good: str, bad: str, target: str, cycles: int, out: Path,
           extra: list[str] | None = None, log: Callable[[str], None] = lambda m: None
           ) -> BisectResult:
    module = module.resolve()
    try:
        repo = Path(_git(module, "rev-parse", "--show-toplevel"))
    except CommandError:
        raise LabError(f"{module} is not inside a git work tree") from None
    if _git(repo, "status", "--porcelain", "--untracked-files=no"):
        raise LabError(f"{repo}: the work tree has uncommitted changes; commit or stash them "
                       "first (bisect checks out other commits)")
    if (repo / _git(repo, "rev-parse", "--git-path", "BISECT_LOG")).exists():
        raise LabError(f"{repo}: a bisect is already in progress (`git bisect reset` ends it)")
    good_sha = _git(repo, "rev-parse", "--verify", f"{good}^{{commit}}")
    bad_sha = _git(repo, "rev-parse", "--verify", f"{bad}^{{commit}}")
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    # Each step's results go to OUT/<commit>: a small wrapper names the directory.
    judge = out / BISECT_JUDGE
    cmd = shlex.join(soak_command(target, cycles, module, extra or []))
    judge.write_text("#!/bin/sh\n# one bisect step: soak the commit checked out now\n"
                     f'exec {cmd} --out {shlex.quote(str(out))}/"$(git rev-parse HEAD)"\n')
    judge.chmod(0o755)
    log(f"bisecting {good_sha[:12]}..{bad_sha[:12]} in {repo} on {target}, {cycles} cycles per step")
    try:
        _git(repo, "bisect", "start", bad_sha, good_sha)
        p = subprocess.run(["git", "-C", str(repo), "bisect", "run", str(judge)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
        (out / BISECT_LOG).write_text(p.stdout)
        m = FIRST_BAD.search(p.stdout)
        if not m:
            raise LabError(f"git bisect found no first bad commit (exit {p.returncode}); "
                           f"see {out / BISECT_LOG}:\n" + "\n".join(p.stdout.splitlines()[-15:]))
        first = m.group(1)
        subject = _git(repo, "log", "-1", "--format=%s", first)
    finally:
        _git(repo, "bisect", "reset", check=False)
    steps = sum(1 for d in out.iterdir() if (d / SUMMARY).is_file())
    judged = out / first / SUMMARY
    if not judged.is_file():  # git trusts the BAD end without running the judge on it
        return BisectResult(first, subject, "fail", "the BAD commit given (not soaked by the "
                            "bisect itself)", {}, steps, out)
    summary = read_summary(judged)
    return BisectResult(first, subject, str(summary.verdict), summary.reason,
                        dict(summary.checks_failed), steps, out)

