"""pytest plugin: lab guests as fixtures (registered under the `pytest11` entry point).

    pytest --lab-target i386-up --lab-target alpha-es40 tests/

Tests that use `lab_guest` (directly or through `lab_module` / `lab_soak`) run
once per `--lab-target`; each target's guest boots once per session. See
docs/pytest.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import pytest

from ..config import DEFAULT_TARGET

if TYPE_CHECKING:  # pytest loads this plugin in every session: lab's own modules only on use
    from ..results import SoakSummary


def pytest_addoption(parser) -> None:
    g = parser.getgroup("lab", "lab: QEMU guests for kernel module tests")
    g.addoption("--lab-target", action="append", default=[], metavar="NAME",
                help=f"target to run lab tests on (repeatable; default {DEFAULT_TARGET})")
    g.addoption("--lab-keep", action="store_true",
                help="leave the guests up after the session (lab status / lab ssh NAME)")
    g.addoption("--lab-module", metavar="DIR", default=None,
                help="module directory for lab_module (default: the test file's directory)")


def pytest_generate_tests(metafunc) -> None:
    if "lab_target" in metafunc.fixturenames:
        targets = metafunc.config.getoption("lab_target") or [DEFAULT_TARGET]
        metafunc.parametrize("lab_target", targets, scope="session")


class CommandFailed(AssertionError):
    """A command in the guest failed: carries the command, its exit status and output."""

    def __init__(self, command: str, result: "RunResult"):
        self.command, self.result = command, result
        super().__init__(f"`{command}` exited {result.returncode} on the guest\n"
                         f"--- stdout ---\n{result.stdout[-2000:]}\n--- stderr ---\n"
                         f"{result.stderr[-2000:]}")


@dataclass
class RunResult:
    stdout: str
    stderr: str
    returncode: int


class LabGuest:
    """A running guest for tests: run commands, copy files, read its console."""

    def __init__(self, guest, conn, target):
        self.guest, self.conn, self.target = guest, conn, target
        self.name = guest.record.name

    def run(self, cmd: str | list[str], check: bool = True, timeout: float = 60.0) -> RunResult:
        r = self.conn.run(cmd, timeout=timeout, check=False)
        res = RunResult(r.stdout, r.stderr, r.exit_code)
        if check and res.returncode != 0:
            raise CommandFailed(cmd if isinstance(cmd, str) else " ".join(cmd), res)
        return res

    def put(self, local: str | os.PathLike, remote: str, mode: int = 0o644) -> None:
        from ..deploy import put_file
        put_file(self.conn, Path(local), remote, mode=mode)

    def console(self) -> str:
        try:
            return Path(self.guest.record.console_log).read_text(errors="replace")
        except OSError:
            return ""


@dataclass
class LabModule:
    name: str
    remote: str
    path: Path       # the .ko on the host


@pytest.fixture(scope="session")
def lab_config():
    from ..config import load_lab
    return load_lab()


@pytest.fixture(scope="session")
def lab_guest(lab_config, lab_target, request, record_testsuite_property) -> Iterator[LabGuest]:
    from .. import __version__
    from ..build import ensure_images
    from ..guest.lifecycle import up
    target = lab_config.target(lab_target)
    guest, conn = up(lab_config, target, images=ensure_images(lab_config, target),
                     name=f"pytest-{lab_target}-{os.getpid()}")
    rec = guest.record
    for key, value in (("lab_target", lab_target), ("lab_kernel_release", rec.kernel_release),
                       ("lab_kernel_key", rec.kernel_key), ("lab_rootfs_key", rec.rootfs_key),
                       ("lab_cpu_model", rec.cpu_model), ("lab_version", __version__)):
        record_testsuite_property(f"{key}.{lab_target}" if key != "lab_version" else key, value)
    handle = LabGuest(guest, conn, target)
    request.config.stash.setdefault(_GUESTS, []).append(handle)
    try:
        yield handle
    finally:
        conn.close()
        if not request.config.getoption("lab_keep"):
            guest.shutdown(soft_timeout=10)


_GUESTS = pytest.StashKey[list]()


def _module_dir(request) -> Path:
    given = request.config.getoption("lab_module")
    if given:
        return Path(given)
    here = Path(request.path).parent
    if (here / "Kbuild").is_file() or (here / "Makefile").is_file():
        return here
    raise pytest.UsageError(f"lab_module: {here} has no Kbuild or Makefile; pass --lab-module DIR")


@pytest.fixture
def lab_module(lab_config, lab_guest, request) -> LabModule:
    from ..deploy import module_remote_path
    from ..module import build_module
    module_dir = _module_dir(request)
    mod, _ = build_module(lab_config, lab_guest.target, module_dir)
    remote = module_remote_path(mod.spec.module, mod.path)
    lab_guest.put(mod.path, remote)
    return LabModule(mod.spec.module, remote, mod.path)


@pytest.fixture
def lab_soak(lab_config, lab_guest, request, tmp_path):
    """lab_soak(cycles=20, **thresholds) -> the soak's summary (a lab.results.SoakSummary;
    .to_json() is the dict of summary.json)."""
    from ..soak.run import SoakOptions, run_soak

    def soak(cycles: int = 20, **thresholds: Any) -> "SoakSummary":
        opts = SoakOptions(cycles=cycles, module_dir=_module_dir(request), out=tmp_path / "soak",
                           name=lab_guest.name, keep=True, overrides=thresholds)
        return run_soak(lab_config, lab_guest.target, opts).summary
    return soak


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed and "lab_guest" in getattr(item, "fixturenames", ()):
        params = getattr(getattr(item, "callspec", None), "params", {})
        for g in item.config.stash.get(_GUESTS, []):
            if params.get("lab_target") == g.target.name:
                tail = "\n".join(g.console().splitlines()[-60:])
                rep.sections.append((f"lab console ({g.name}, last 60 lines)", tail))

