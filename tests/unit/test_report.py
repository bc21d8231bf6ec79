"""Merging results: shards, triage, comparison with a previous night, the HTML."""

import json
import xml.etree.ElementTree as ET

import pytest

from lab.errors import LabError
from lab.junit import write_junit
from lab.matrix import parse_shard, shard_cells
from lab.report import compare, merge, up_smp_triage, write_report
from lab.results import CycleStats, Failure, Latency, Percentiles, SoakSummary
from lab.verdict import Verdict

TARGETS = {"alpha-es40": ("alpha", 4), "alpha-ds20": ("alpha", 2), "alpha-pws500au": ("alpha", 1),
           "i386-up": ("i386", 1), "i386-smp": ("i386", 4)}


def cell(root, target, verdict="pass", load_p95=10.0):
    """A result directory as an older lab wrote it (no schema, a few keys only)."""
    arch, smp = TARGETS[target]
    d = root / target
    d.mkdir(parents=True)
    s = {"target": target, "arch": arch, "smp": smp, "cpu": "x", "verdict": verdict,
         "cycles": 3, "kernel_release": "6.1.192", "module_sha256": "ab" * 32,
         "latency_ms": {"load": {"p50": 5.0, "p95": load_p95, "max": 12.0},
                        "unload": {"p50": 4.0, "p95": 6.0, "max": 7.0}},
         "period_ms": {"mean": 1000.0, "jitter": 3.0}, "reason": "" if verdict == "pass" else "x",
         "evidence": [], "failures": [] if verdict == "pass" else
         [{"cycle": 2, "check": "zombies", "message": "1 new zombie", "evidence": ["line <b>"]}]}
    (d / "summary.json").write_text(json.dumps(s))
    recs = [{"type": "baseline", "procs": 30}] + [
        {"type": "cycle", "n": n, "load_us": 5000 + n, "unload_us": 4000,
         "wake_ts": [[0, 0], [0, 1_000_000 + n]]} for n in (1, 2, 3)]
    (d / "records.jsonl").write_text("\n".join(json.dumps(r) for r in recs))
    return d


def test_shards_are_stable_disjoint_and_complete():
    names = list(TARGETS)
    parts = [shard_cells(names, (i, 3)) for i in (1, 2, 3)]
    assert sorted(sum(parts, [])) == sorted(names)
    assert shard_cells(list(reversed(names)), (2, 3)) == parts[1]
    assert parse_shard("2/3") == (2, 3) and parse_shard(None) == (1, 1)
    for bad in ("0/3", "4/3", "x", "1-3"):
        with pytest.raises(LabError):
            parse_shard(bad)


def test_two_shards_merge_to_the_same_summary_as_one_run(tmp_path):
    full = tmp_path / "full"
    for t in TARGETS:
        cell(full, t, "fail" if t == "alpha-es40" else "pass")
    s1, s2 = tmp_path / "s1", tmp_path / "s2"
    for t in shard_cells(list(TARGETS), (1, 2)):
        cell(s1, t, "fail" if t == "alpha-es40" else "pass")
    for t in shard_cells(list(TARGETS), (2, 2)):
        cell(s2, t, "fail" if t == "alpha-es40" else "pass")
    assert merge([s1, s2]) == merge([full])
    assert merge([full]).verdict == "fail"


def test_a_target_in_two_shards_is_refused(tmp_path):
    cell(tmp_path / "a", "i386-up")
    cell(tmp_path / "b", "i386-up")
    with pytest.raises(LabError, match="appears twice"):
        merge([tmp_path / "a", tmp_path / "b"])


def test_up_vs_smp_triage():
    s = {t: SoakSummary(t, a, Verdict.PASS if n == 1 else Verdict.FAIL, smp=n)
         for t, (a, n) in TARGETS.items()}
    assert up_smp_triage(s) == ["alpha: fails only on SMP: likely a race or missing locking",
                                "i386: fails only on SMP: likely a race or missing locking"]
    s["alpha-pws500au"] = SoakSummary("alpha-pws500au", "alpha", Verdict.FAIL)
    assert [x for x in up_smp_triage(s) if x.startswith("alpha")] == []


def soak(target, verdict, load_p95=None):
    stats = None if load_p95 is None else CycleStats(latency=Latency(load=Percentiles(p95=load_p95)))
    return SoakSummary(target, "i386", Verdict(verdict), stats=stats)


def test_comparison_with_previous_night():
    prev = {"a": soak("a", "pass", 10.0), "b": soak("b", "crash"), "c": soak("c", "pass", 10.0)}
    cur = {"a": soak("a", "fail", 10.0), "b": soak("b", "pass"), "c": soak("c", "pass", 13.0)}
    c = compare(cur, prev)
    assert c["new_failures"] == [{"target": "a", "was": "pass", "now": "fail"}]
    assert c["fixed"] == [{"target": "b", "was": "crash"}]
    assert [(x["target"], x["latency"]) for x in c["latency_regressions"]] == [("c", "load")]
    assert compare(cur, {"c": soak("c", "pass", 12.0)})["latency_regressions"] == []


def test_html_report_is_self_contained(tmp_path):
    res = tmp_path / "res"
    for t in TARGETS:
        cell(res, t, "fail" if t == "i386-smp" else "pass")
    prev = tmp_path / "prev"
    for t in TARGETS:
        cell(prev, t)
    merged = write_report([res], tmp_path / "out/report.html", [prev])
    page = (tmp_path / "out/report.html").read_text()
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert page.count("data-verdict=") == 5
    assert "line &lt;b&gt;" in page  # evidence is escaped
    assert page.count("<svg") == 15  # load, unload and period plot per target
    assert merged.comparison["new_failures"] == [{"target": "i386-smp", "was": "pass", "now": "fail"}]
    junit = ET.parse(tmp_path / "out/junit.xml").getroot()
    assert len(junit.findall("testsuite")) == 5
    failed = [tc.get("name") for tc in junit.iter("testcase") if tc.find("failure") is not None]
    assert failed == ["zombies"]
    # the merged summary.json: every cell as its own summary.json says, with the schema
    written = json.loads((tmp_path / "out/summary.json").read_text())
    assert written["verdict"] == "fail" and set(written["cells"]) == set(TARGETS)
    assert all(c["schema"] == 1 for c in written["cells"].values())
    assert written["cells"]["i386-smp"]["failures"][0]["check"] == "zombies"


def test_a_merged_report_inside_the_merged_directories_is_not_a_cell(tmp_path):
    for t in TARGETS:
        cell(tmp_path, t)
    write_report([tmp_path], tmp_path / "elsewhere" / "report.html")
    assert set(merge([tmp_path]).cells) == set(TARGETS)


def test_a_corrupt_cell_summary_is_a_one_line_error_naming_it(tmp_path):
    cell(tmp_path, "i386-up")
    (tmp_path / "i386-up" / "summary.json").write_text('{"target": "i386-up", "verd')
    with pytest.raises(LabError) as e:
        merge([tmp_path])
    assert str(e.value).startswith(str(tmp_path / "i386-up" / "summary.json") + ": not JSON")
    assert "\n" not in str(e.value)


def test_junit_counts_infra_and_interrupted_as_errors_and_module_failures_as_failures(tmp_path):
    def s(target, verdict, reason="", failures=()):
        return SoakSummary(target, "i386", verdict, reason=reason, cycles=3,
                           failures=tuple(failures), evidence=("QEMU exited (status 0)",))
    write_junit(tmp_path / "j.xml", [
        s("a", Verdict.INFRA, "QEMU exited"),
        s("b", Verdict.INTERRUPTED, "interrupted by SIGTERM"),
        s("c", Verdict.HANG, "cycle 4 gave no record in 60s",
          [Failure(4, "timing-unload", "blocked")]),
        s("d", Verdict.PASS),
    ])
    suites = {s.get("name"): s for s in ET.parse(tmp_path / "j.xml").getroot()}
    counts = {n: (s.get("errors"), s.get("failures")) for n, s in suites.items()}
    assert counts == {"soak.a": ("1", "0"), "soak.b": ("1", "0"), "soak.c": ("0", "2"),
                      "soak.d": ("0", "0")}
    failed = {tc.get("name") for tc in suites["soak.c"] if tc.find("failure") is not None}
    assert failed == {"timing-unload", "hang"}
