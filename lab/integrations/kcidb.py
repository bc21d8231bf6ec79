"""KCIDB (KernelCI's common results database) JSON from soak results: `lab export kcidb`.

One checkout per kernel source, one build per kernel image (arch and profile),
and per soak one test at `soak` with one sub-test per check (`soak.threads-left`,
...). Statuses: pass -> PASS; fail, crash, hang -> FAIL; infra and interrupted
-> ERROR (the test did not complete; the code's status is unknown); a check
that did not run because the soak ended early -> SKIP.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..report import find_cells
from ..soak.checks import CHECKS
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


def soak_objects(summary: Mapping[str, Any], cell_dir: Path) -> dict[str, list[dict]]:
    """The checkout, build and tests of one soak summary."""
    s = summary
    verdict = Verdict(s["verdict"])
    profile = s.get("kernel_profile", "linux")
    checkout_id = _id("checkout", profile, s.get("kernel_release", "?"))
    build_id = _id("build", s.get("kernel_key", "?"), s.get("arch", "?"))
    test_root = _id("test", cell_dir.resolve(), s["target"], s.get("started", ""))
    checkout = {"id": checkout_id, "origin": ORIGIN, "tree_name": profile,
                "comment": f"Linux {s.get('kernel_release', '?')} ({profile} kernel profile)",
                "valid": True}
    build = {"id": build_id, "checkout_id": checkout_id, "origin": ORIGIN,
             "architecture": s.get("arch", ""), "config_name": s.get("kernel", profile),
             "status": "PASS",
             "comment": f"kernel image {s.get('kernel_key', '?')} for {s.get('arch')}",
             "misc": {"kernel_key": s.get("kernel_key"), "rootfs_key": s.get("rootfs_key")}}
    environment = {"comment": f"QEMU {s['target']}: -cpu {s.get('cpu')} x{s.get('smp', 1)}, "
                              f"guest reports {s.get('cpu_model') or '?'}",
                   "misc": {"target": s["target"], "cpu_model": s.get("cpu_model"),
                            "smp": s.get("smp"), "palcode": s.get("palcode")}}
    common = {"build_id": build_id, "origin": ORIGIN, "environment": environment}
    if s.get("started"):
        common["start_time"] = s["started"]
    root = {**common, "id": test_root, "path": "soak", "status": STATUS[verdict],
            "comment": f"{s.get('module', '?')}: {s.get('cycles', 0)} of "
                       f"{s.get('requested_cycles', '?')} load/unload cycles, {verdict}",
            "misc": {"module": s.get("module"), "module_sha256": s.get("module_sha256"),
                     "cycles": s.get("cycles", 0), "lab_version": s.get("lab_version"),
                     "results_dir": str(cell_dir)}}
    if s.get("seconds") is not None:
        root["duration"] = float(s["seconds"])
    if verdict != Verdict.PASS:
        root["log_excerpt"] = _excerpt([s.get("reason", ""), *s.get("evidence", [])])
    tests = [root]
    failed: dict[str, list[Mapping[str, Any]]] = {}
    for f in s.get("failures", []):
        failed.setdefault(f["check"], []).append(f)
    if verdict in (Verdict.CRASH, Verdict.HANG):
        failed.setdefault(str(verdict), []).append(
            {"cycle": s.get("cycles", 0), "message": s.get("reason", ""),
             "evidence": s.get("evidence", [])})
    ran = verdict not in (Verdict.INFRA, Verdict.INTERRUPTED) or s.get("cycles", 0) > 0
    for check in CHECKS:
        if check == "boot":
            continue
        sub = {**common, "id": f"{test_root}.{check}", "path": f"soak.{check}"}
        if check in failed:
            first = failed[check][0]
            sub.update(status="FAIL", comment=f"cycle {first['cycle']}: {first['message']}"[:1000],
                       log_excerpt=_excerpt(
                           f"cycle {f['cycle']}: {f['message']}\n" + "\n".join(f.get("evidence", []))
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
        objs = soak_objects(json.loads((cell / "summary.json").read_text()), cell)
        for kind, items in objs.items():
            for item in items:
                if item["id"] not in seen:
                    seen.add(item["id"])
                    out[kind].append(item)
    return out
