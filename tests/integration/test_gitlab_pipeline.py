"""The nightly pipeline as GitLab runs it: docs/ci/gitlab-nightly.yml under
gitlab-ci-local (scripts/gitlab-local.sh), with its five-way `parallel:` fan-out
of matrix shards and the report job that merges them."""

import json
import os
import subprocess
import sys
from pathlib import Path

from lab.paths import cache_dir, project_root


def test_nightly_pipeline_runs_end_to_end_under_gitlab_ci_local(built, tmp_path):
    work = tmp_path / "checkout"
    subprocess.run(["git", "clone", "-q", str(project_root()), str(work)], check=True)
    (work / ".venv").symlink_to(Path(sys.prefix))  # lab as this test session has it
    env = {**os.environ, "LAB_CACHE": str(cache_dir())}
    run = subprocess.run([str(work / "scripts/gitlab-local.sh"), "2"], cwd=work, env=env,
                         capture_output=True, text=True, timeout=1200)
    tail = (run.stdout + run.stderr)[-3000:]
    assert run.returncode == 0, tail
    for job in ("matrix: [1/5]", "matrix: [5/5]", "report"):
        assert f"PASS  {job}" in run.stdout, tail
    # each shard soaked one target; the report job merged all five
    shards = sorted(p.name for p in (work / "results").iterdir())
    assert shards == [f"shard-{i}" for i in range(1, 6)]
    merged = json.loads((work / "report/summary.json").read_text())
    assert merged["verdict"] == "pass", tail
    assert sorted(merged["cells"]) == sorted(["alpha-ds20", "alpha-es40", "alpha-pws500au",
                                              "i386-smp", "i386-up"]), merged["cells"]
    assert (work / "report/junit.xml").is_file() and (work / "report/report.html").is_file()
