"""KCIDB (KernelCI's common results database) JSON from soak results: `lab export kcidb`.

One checkout per kernel source, one build per kernel image (arch and profile),
and per soak one test at `soak` with one sub-test per check (`soak.threads-left`,
...). Statuses: pass -> PASS; fail, crash, hang -> FAIL; infra and interrupted
-> ERROR (the test did not complete; the code's status is unknown); a check
that did not run because the soak ended early -> SKIP.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Iterable

from ..report import find_cells
from ..results import CHECKS, GuestInfo, SoakSetup, SoakSummary, read_summary
from ..results.files import SUMMARY
from ..verdict import Verdict

ORIGIN = "lab"
SCHEMA_VERSION = {"major": 5, "minor": 3}
STATUS = {Verdict.PASS: "PASS", Verdict.FAIL: "FAIL", Verdict.CRASH: "FAIL",
          Verdict.HANG: "FAIL", Verdict.INFRA: "ERROR", Verdict.INTERRUPTED: "ERROR"}
EXCERPT_MAX = 16384


def _id(*parts: Any) -> str:
    return f"{ORIGIN}:" + hashlib.sha256("\0".join(map(str, parts)).encode()).hexdigest()[:24]


def _excerpt(lines: Iterable[str]) -> str:
    text = "\n".join(lines)
    return text[:EXCERPT_MAX]


def soak_objects(s: SoakSummary, cell_dir: Path) -> dict[str, list[dict]]:
    """The checkout, build and tests of one soak summary."""
    verdict = s.verdict
    setup, guest, module = s.setup or SoakSetup(), s.guest or GuestInfo(), s.module
    profile = setup.kernel_profile or "linux"
    release = guest.kernel_release or "?"
    kernel_key = guest.kernel_key or None
    checkout_id = _id("checkout", profile, release)
    build_id = _id("build", kernel_key or "?", s.arch or "?")
    test_root = _id("test", cell_dir.resolve(), s.target, setup.started)
    checkout = {"id": checkout_id, "origin": ORIGIN, "tree_name": profile,
                "comment": f"Linux {release} ({profile} kernel profile)",
                "valid": True}
    build = {"id": build_id, "checkout_id": checkout_id, "origin": ORIGIN,
             "architecture": s.arch, "config_name": setup.kernel or profile,
             "status": "PASS",
             "comment": f"kernel image {kernel_key or '?'} for {s.arch}",
             "misc": {"kernel_key": kernel_key, "rootfs_key": guest.rootfs_key or None}}
    environment = {"comment": f"QEMU {s.target}: -cpu {s.cpu} x{s.smp}, "
                              f"guest reports {guest.cpu_model or '?'}",
                   "misc": {"target": s.target, "cpu_model": guest.cpu_model or None,
                            "smp": s.smp, "palcode": guest.palcode}}
    common = {"build_id": build_id, "origin": ORIGIN, "environment": environment}
    if setup.started:
        common["start_time"] = setup.started
    root = {**common, "id": test_root, "path": "soak", "status": STATUS[verdict],
            "comment": f"{module.name if module else '?'}: {s.cycles} of "
                       f"{setup.requested_cycles or '?'} load/unload cycles, {verdict}",
            "misc": {"module": module.name if module else None,
                     "module_sha256": module.sha256 if module else None,
                     "cycles": s.cycles, "lab_version": setup.lab_version or None,
                     "results_dir": str(cell_dir)}}
    if s.seconds is not None:
        root["duration"] = float(s.seconds)
    if verdict != Verdict.PASS:
        root["log_excerpt"] = _excerpt([s.reason, *s.evidence])
    tests = [root]
    failed = s.failures_by_check()
    ran = verdict not in (Verdict.INFRA, Verdict.INTERRUPTED) or s.cycles > 0
    for check in CHECKS:
        if check == "boot":
            continue
        sub = {**common, "id": f"{test_root}.{check}", "path": f"soak.{check}"}
        if check in failed:
            first = failed[check][0]
            sub.update(status="FAIL", comment=f"cycle {first.cycle}: {first.message}"[:1000],
                       log_excerpt=_excerpt(
                           f"cycle {f.cycle}: {f.message}\n" + "\n".join(f.evidence)
                           for f in failed[check][:5]))
        else:
            sub["status"] = "PASS" if ran and verdict in (Verdict.PASS, Verdict.FAIL) else "SKIP"
        tests.append(sub)
    return {"checkouts": [checkout], "builds": [build], "tests": tests}


def export(dirs: Iterable[Path]) -> dict[str, Any]:
    """KCIDB I/O data for every soak result under ``dirs`` (matrix runs, shards, soaks)."""
    out: dict[str, Any] = {"version": dict(SCHEMA_VERSION), "checkouts": [], "builds": [],
                           "tests": []}
    seen: set[str] = set()
    for _target, cell in sorted(find_cells(list(dirs)).items()):
        objs = soak_objects(read_summary(cell / SUMMARY), cell)
        for kind, items in objs.items():
            for item in items:
                if item["id"] not in seen:
                    seen.add(item["id"])
                    out[kind].append(item)
    return out
