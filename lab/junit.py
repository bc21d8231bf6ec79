"""JUnit XML: one test case per target x check, so CI systems show soak results natively.

A check that failed is a <failure>; a soak the lab could not run (infra) or that
was stopped (interrupted) is an <error> on the "boot" case, counted in errors=.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Iterable, Mapping

from .soak.checks import CHECKS
from .verdict import Verdict


def write_junit(path: Path, summaries: Iterable[Mapping[str, Any]]) -> None:
    """``summaries``: soak summaries, each with 'target' and 'verdict'."""
    root = ET.Element("testsuites", name="lab soak")
    for s in summaries:
        verdict = Verdict(s["verdict"])
        suite = ET.SubElement(root, "testsuite", name=f"soak.{s['target']}")
        by_check: dict[str, list[Mapping[str, Any]]] = {}
        for f in s.get("failures", []):
            by_check.setdefault(f["check"], []).append(f)
        if verdict in (Verdict.CRASH, Verdict.HANG):
            by_check.setdefault(str(verdict), []).append(
                {"cycle": s.get("cycles", 0), "message": s.get("reason", str(verdict)),
                 "evidence": s.get("evidence", [])})
        tests = fails = errors = 0
        for check in CHECKS:
            tc = ET.SubElement(suite, "testcase", classname=f"soak.{s['target']}", name=check)
            tests += 1
            if check == "boot" and verdict in (Verdict.INFRA, Verdict.INTERRUPTED):
                el = ET.SubElement(tc, "error", message=f"{verdict}: {s.get('reason', '')}")
                el.text = "\n".join(s.get("evidence", []))
                errors += 1
                continue
            found = by_check.get(check, [])
            if found:
                fails += 1
                first = found[0]
                el = ET.SubElement(tc, "failure",
                                   message=f"cycle {first['cycle']}: {first['message']}")
                el.text = "\n".join(f"cycle {f['cycle']}: {f['message']}\n" +
                                    "\n".join(f.get("evidence", [])) for f in found[:10])
        suite.set("tests", str(tests))
        suite.set("failures", str(fails))
        suite.set("errors", str(errors))
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
