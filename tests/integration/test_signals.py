"""Interrupted runs keep their results: `lab soak`, `lab matrix` and `lab up` as a user
or a CI system stops them (Ctrl-C, SIGTERM on timeout, SIGHUP when the terminal
goes), run as real processes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

STOP_WITHIN_S = 10.0


def lab_process(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lab.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(predicate, seconds: float, what: str) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def cycles_in(path: Path) -> int:
    try:
        return sum(1 for line in path.read_text().splitlines() if '"type":"cycle"' in line)
    except FileNotFoundError:
        return 0


def qemus_under(run_dir: Path) -> list[int]:
    """Live (non-zombie) QEMU processes whose command line names this run directory."""
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().decode(errors="replace")
            state = (p / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if "qemu-system" in cmd and str(run_dir) in cmd and state != "Z":
            found.append(int(p.name))
    return found


def stop(proc: subprocess.Popen, sig: int) -> tuple[int, float]:
    t0 = time.monotonic()
    proc.send_signal(sig)
    try:
        code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return code, time.monotonic() - t0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_soak_stopped_by_a_signal_writes_every_file_and_leaves_no_guest(built, tmp_path, sig):
    out, run_dir = tmp_path / "out", Path(os.environ["LAB_RUN"])
    proc = lab_process("soak", "--target", "i386-up", "--cycles", "100000", "--accel", "tcg",
                       "--out", str(out))
    wait_for(lambda: cycles_in(out / "records.jsonl") >= 3 or proc.poll() is not None, 180,
             "three soak cycles")
    assert proc.poll() is None, proc.communicate()
    code, seconds = stop(proc, sig)
    err = proc.stderr.read()
    assert code == 2, err
    assert seconds < STOP_WITHIN_S, seconds
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"] == "interrupted"
    assert summary["reason"].startswith(f"interrupted by {signal.Signals(sig).name}")
    assert summary["cycles"] >= 3 and summary["cycles"] == cycles_in(out / "records.jsonl")
    assert 'errors="1"' in (out / "junit.xml").read_text()
    assert (out / "console.log").is_file() and (out / "records.jsonl").is_file()
    wait_for(lambda: not qemus_under(run_dir), 5, "QEMU to be gone")
    assert not list(run_dir.glob("*/record.json"))


def test_matrix_stopped_by_sigterm_ends_every_cell(built, tmp_path):
    out, run_dir = tmp_path / "m", Path(os.environ["LAB_RUN"])
    proc = lab_process("matrix", "--targets", "i386-up", "i386-smp", "--jobs", "1",
                       "--cycles", "100000", "--accel", "tcg", "--out", str(out))
    # cells run in name order with one job: i386-smp first, i386-up waits
    wait_for(lambda: cycles_in(out / "i386-smp" / "records.jsonl") >= 3 or proc.poll() is not None,
             240, "three cycles of the first cell")
    assert proc.poll() is None, proc.communicate()
    code, seconds = stop(proc, signal.SIGTERM)
    assert code == 2, proc.stderr.read()
    assert seconds < STOP_WITHIN_S, seconds
    for cell in ("i386-smp", "i386-up"):
        s = json.loads((out / cell / "summary.json").read_text())
        assert s["verdict"] == "interrupted", (cell, s["reason"])
    assert json.loads((out / "summary.json").read_text())["verdict"] == "interrupted"
    assert (out / "report.html").is_file() and (out / "matrix.json").is_file()
    wait_for(lambda: not qemus_under(run_dir), 5, "QEMU to be gone")


def test_up_stopped_during_boot_leaves_no_guest(built, tmp_path):
    run_dir = Path(os.environ["LAB_RUN"])
    proc = lab_process("up", "alpha-es40", "--accel", "tcg")
    wait_for(lambda: any(p.stat().st_size > 0 for p in run_dir.glob("*/console.log"))
             or proc.poll() is not None, 120, "the guest to start booting")
    assert proc.poll() is None, proc.communicate()
    code, seconds = stop(proc, signal.SIGTERM)
    assert code == 2 and seconds < STOP_WITHIN_S, (code, seconds, proc.stderr.read())
    wait_for(lambda: not qemus_under(run_dir), 5, "QEMU to be gone")
    assert not list(run_dir.glob("*/record.json"))
