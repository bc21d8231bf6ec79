"""JUnit XML: one test case per target x check, so CI systems show soak results natively."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Iterable, Mapping

CHECKS = ("boot", "syscall", "threads-missing", "threads-left", "module-listed", "zombies",
          "start-messages", "kernel-log", "timing-load", "timing-threads", "timing-unload",
          "period", "jitter", "crash", "hang")


def write_junit(path: Path, summaries: Iterable[Mapping[str, Any]]) -> None:
    """``summaries``: soak summaries, each with 'target' and 'verdict'."""
    root = ET.Element("testsuites", name="lab soak")
    for s in summaries:
        suite = ET.SubElement(root, "testsuite", name=f"soak.{s['target']}")
        by_check: dict[str, list[Mapping[str, Any]]] = {}
        for f in s.get("failures", []):
            by_check.setdefault(f["check"], []).append(f)
        tests = fails = 0
        for check in CHECKS:
            tc = ET.SubElement(suite, "testcase", classname=f"soak.{s['target']}", name=check)
            tests += 1
            found = by_check.get(check, [])
            if check == "crash" and s["verdict"] == "crash" or check == "hang" and s["verdict"] == "hang":
                found = found or [{"cycle": s.get("cycles", 0), "message": s.get("reason", s["verdict"]),
                                   "evidence": s.get("evidence", [])}]
            if check == "boot" and s["verdict"] == "infra":
                ET.SubElement(tc, "error", message=str(s.get("reason", "infra")))
                fails += 1
                continue
            if found:
                fails += 1
                first = found[0]
                el = ET.SubElement(tc, "failure",
                                   message=f"cycle {first['cycle']}: {first['message']}")
                el.text = "\n".join(f"cycle {f['cycle']}: {f['message']}\n" +
                                    "\n".join(f.get("evidence", [])) for f in found[:10])
        suite.set("tests", str(tests))
        suite.set("failures", str(fails))
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
