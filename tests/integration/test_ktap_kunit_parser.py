"""`lab soak --ktap` output, parsed by the kernel's own KTAP parser (tools/testing/kunit)."""

import sys

from lab.cache import Store
from lab.cli import main
from lab.images.kernel import KernelSource
from lab.paths import cache_dir


def test_soak_ktap_parses_with_kunit_parser(lab, built, tmp_path, capsys, monkeypatch):
    code = main(["soak", "--target", "i386-up", "--cycles", "4", "--accel", "tcg",
                 "--out", str(tmp_path / "out"), "--ktap"])
    out = capsys.readouterr().out
    assert code == 0, out
    src = KernelSource(lab.profiles["linux-6.1"]).artifact(Store(cache_dir())).path / "src"
    monkeypatch.syspath_prepend(str(src / "tools" / "testing" / "kunit"))
    sys.modules.pop("kunit_parser", None)
    import kunit_parser
    result = kunit_parser.parse_run_tests(kunit_parser.extract_tap_lines(out.splitlines()))
    assert result.status == kunit_parser.TestStatus.SUCCESS
    assert [t.name for t in result.subtests] == ["soak.i386-up"]
    assert [c.name for c in result.subtests[0].subtests] == [f"cycle_{n}" for n in range(1, 5)]
