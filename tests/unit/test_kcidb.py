"""KCIDB export: valid against the kcidb-io schema, statuses as KernelCI means them."""

import json

import kcidb_io
import pytest

from lab.cli import main
from lab.integrations.kcidb import export

BASE = {"arch": "i386", "smp": 1, "cpu": "pentium3", "cpu_model": "Pentium III (Katmai)",
        "kernel_release": "6.1.192", "kernel_key": "k1", "rootfs_key": "r1",
        "kernel_profile": "linux-6.1", "module": "faulty_leak", "module_sha256": "ab" * 32,
        "requested_cycles": 40, "seconds": 12.5, "lab_version": "0.1.0",
        "started": "2026-11-29T12:00:00+00:00", "evidence": []}


def write(root, target, verdict, **extra):
    d = root / target
    d.mkdir(parents=True)
    (d / "summary.json").write_text(json.dumps({**BASE, "target": target, "verdict": verdict,
                                                "reason": "", "cycles": 40, "failures": [],
                                                **extra}))


def test_export_validates_and_maps_statuses(tmp_path):
    write(tmp_path, "i386-up", "fail", failures=[
        {"cycle": 40, "check": "mem-growth", "message": "Slab grew by 64.0 KiB per cycle",
         "evidence": ["Slab: 6400 kB after cycle 1"]}])
    write(tmp_path, "i386-smp", "pass", smp=4)
    write(tmp_path, "alpha-es40", "infra", arch="alpha", kernel_key="k2", cycles=0,
          reason="QEMU exited (status 0)")
    data = export([tmp_path])
    kcidb_io.schema.LATEST.validate(data)
    tests = {t["path"] + "@" + t["environment"]["misc"]["target"]: t for t in data["tests"]}
    assert tests["soak@i386-up"]["status"] == "FAIL"
    assert tests["soak.mem-growth@i386-up"]["status"] == "FAIL"
    assert "64.0 KiB" in tests["soak.mem-growth@i386-up"]["log_excerpt"]
    assert tests["soak.threads-left@i386-up"]["status"] == "PASS"
    assert tests["soak@i386-smp"]["status"] == "PASS"
    assert tests["soak@alpha-es40"]["status"] == "ERROR"
    assert tests["soak.threads-left@alpha-es40"]["status"] == "SKIP"
    # one checkout (one kernel source), one build per kernel image
    assert len(data["checkouts"]) == 1 and len(data["builds"]) == 2
    assert len({t["id"] for t in data["tests"]}) == len(data["tests"])


def test_export_command_writes_a_file(tmp_path, capsys):
    write(tmp_path / "r", "i386-up", "crash", reason="kernel oops: BUG: kernel NULL pointer",
          evidence=["BUG: kernel NULL pointer dereference", "EIP: faulty_init+0x5/0x10"])
    assert main(["export", "kcidb", str(tmp_path / "r"), "--out", str(tmp_path / "k.json")]) == 0
    data = json.loads((tmp_path / "k.json").read_text())
    kcidb_io.schema.LATEST.validate(data)
    crash = next(t for t in data["tests"] if t["path"] == "soak.crash")
    assert crash["status"] == "FAIL" and "faulty_init" in crash["log_excerpt"]


def test_invalid_data_is_refused_by_the_validator():
    with pytest.raises(Exception):
        kcidb_io.schema.LATEST.validate({"version": {"major": 5, "minor": 3},
                                         "tests": [{"id": "no-origin-prefix"}]})
