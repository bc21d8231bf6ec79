"""KTAP v1 from soak records: nesting, numbering, directives."""

import re

from lab.integrations.ktap import KtapSoak, header, replay
from lab.results import CycleStats, Failure, SoakSummary
from lab.verdict import Verdict

LINE = re.compile(r"^(    )*(KTAP version 1|1\.\.\d+|# .*|(not )?ok \d+ \S+( # .*)?)$")


def summary(verdict, reason="", failed=()):
    """A summary whose failures are ``failed``: (cycle, check) pairs."""
    checks = {}
    for _, check in failed:
        checks[check] = checks.get(check, 0) + 1
    return SoakSummary("i386-up", "i386", Verdict(verdict), reason=reason,
                       failures=tuple(Failure(n, c, "") for n, c in failed),
                       stats=CycleStats(checks_failed=checks))


def collect(fn):
    lines = []
    fn(lines.append)
    return lines


def test_streamed_soak_with_a_failed_cycle_and_an_early_end():
    out = []
    header(1, out.append)
    k = KtapSoak(1, "i386-up", 4, out.append)
    k.record({"type": "baseline"})
    k.record({"type": "cycle", "n": 1, "failures": []})
    k.record({"type": "cycle", "n": 2, "failures": ["threads-left", "kernel-log"]})
    k.finish(summary("fail", failed=[(2, "threads-left")]))
    assert out == [
        "KTAP version 1", "1..1",
        "    KTAP version 1", "    # Subtest: soak.i386-up", "    1..4",
        "    ok 1 cycle_1",
        "    not ok 2 cycle_2 # threads-left, kernel-log",
        "    ok 3 cycle_3 # SKIP not run: the soak ended (fail)",
        "    ok 4 cycle_4 # SKIP not run: the soak ended (fail)",
        "not ok 1 soak.i386-up # fail: threads-left",
    ]
    assert all(LINE.match(line) for line in out)


def test_passing_cell_replayed_and_soak_wide_failures_noted():
    recs = [{"type": "cycle", "n": n, "failures": []} for n in (1, 2)]
    ok = collect(lambda emit: replay(2, "alpha-es40", 2, recs, summary("pass"), emit))
    assert ok[-1] == "ok 2 soak.alpha-es40"
    leak = collect(lambda emit: replay(1, "i386-up", 2, recs,
                                       summary("fail", failed=[(2, "mem-growth")]), emit))
    assert "    # soak-wide check failed: mem-growth" in leak
    assert leak[-1] == "not ok 1 soak.i386-up # fail: mem-growth"
    infra = collect(lambda emit: replay(1, "i386-up", 2, [],
                                        summary("infra", "QEMU exited (status 0)\nmore detail"),
                                        emit))
    assert infra[-1] == "not ok 1 soak.i386-up # infra: QEMU exited (status 0)"
    assert all(LINE.match(line) for line in ok + leak + infra)
