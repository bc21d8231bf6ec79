"""JUnit XML: one test case per target x check, so CI systems show soak results natively.

A check that failed is a <failure>; a soak the lab could not run (infra) or that
was stopped (interrupted) is an <error> on the "boot" case, counted in errors=.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterable

from .results import CHECKS, SoakSummary
from .verdict import Verdict


def write_junit(path: Path, summaries: Iterable[SoakSummary]) -> None:
    root = ET.Element("testsuites", name="lab soak")
    for s in summaries:
        suite = ET.SubElement(root, "testsuite", name=f"soak.{s.target}")
        by_check = s.failures_by_check()
        tests = fails = errors = 0
        for check in CHECKS:
            tc = ET.SubElement(suite, "testcase", classname=f"soak.{s.target}", name=check)
            tests += 1
            if check == "boot" and s.verdict in (Verdict.INFRA, Verdict.INTERRUPTED):
                el = ET.SubElement(tc, "error", message=f"{s.verdict}: {s.reason}")
                el.text = "\n".join(s.evidence)
                errors += 1
                continue
            found = by_check.get(check, [])
            if found:
                fails += 1
                first = found[0]
                el = ET.SubElement(tc, "failure",
                                   message=f"cycle {first.cycle}: {first.message}")
                el.text = "\n".join(f"cycle {f.cycle}: {f.message}\n" + "\n".join(f.evidence)
                                    for f in found[:10])
        suite.set("tests", str(tests))
        suite.set("failures", str(fails))
        suite.set("errors", str(errors))
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
