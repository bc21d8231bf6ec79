"""The example in docs/pytest.md, run as written against i386-up by a real pytest."""

import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

from lab.paths import cache_dir, data_dir

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parent.parent.parent
# Taken before pytester gives each test a HOME of its own (the cache follows HOME).
LAB_DIRS = {"LAB_CACHE": str(cache_dir()), "LAB_DATA": str(data_dir())}


def test_docs_example_runs_against_i386_up(built, pytester, monkeypatch):
    for var, value in LAB_DIRS.items():
        monkeypatch.setenv(var, value)
    example = re.search(r"```python\n(.*?)```", (ROOT / "docs" / "pytest.md").read_text(),
                        re.S).group(1)
    for f in ("Kbuild", "good_selfexit.c"):
        shutil.copy(ROOT / "tests" / "good" / "selfexit" / f, pytester.path / f)
    (pytester.path / "test_mymodule.py").write_text(example)
    junit = pytester.path.parent / f"{pytester.path.name}-junit.xml"
    res = pytester.runpytest_subprocess("--lab-target", "i386-up", "-p", "no:cacheprovider",
                                        "--junitxml", str(junit), "test_mymodule.py", timeout=300)
    res.assert_outcomes(passed=3)
    props = {p.get("name"): p.get("value")
             for p in ET.parse(junit).getroot().iter("property")}
    assert props["lab_target.i386-up"] == "i386-up"
    assert props["lab_kernel_release.i386-up"].startswith("6.1.")
    assert props["lab_kernel_key.i386-up"] and props["lab_version"]
