"""`lab bisect` on a small module history: the soak judges each commit."""

import json
import subprocess
from pathlib import Path

from lab.cli import main

MODULE = """#include <linux/delay.h>
#include <linux/kthread.h>
#include <linux/module.h>

static struct task_struct *tasks[2];

static int poller(void *arg)
{
	while (!kthread_should_stop())
		msleep_interruptible(%(period)d);
	return 0;
}

static int __init poll_init(void)
{
	long i;

	for (i = 0; i < 2; i++)
		tasks[i] = kthread_run(poller, (void *)i, "poller/%%ld", i);
	return 0;
}

static void __exit poll_exit(void)
{
	int i;

	for (i = 0; i < %(stopped)s; i++)
		kthread_stop(tasks[i]);
}

module_init(poll_init);
module_exit(poll_exit);
MODULE_LICENSE("GPL");
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def commit(repo: Path, message: str, **values) -> str:
    (repo / "poll.c").write_text(MODULE % values)
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=dev", "-c", "user.email=dev@example.org", "commit", "-qm", message)
    return git(repo, "rev-parse", "HEAD")


def test_bisect_names_the_commit_that_left_a_thread_behind(built, tmp_path, capsys):
    repo = tmp_path / "poll"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "Kbuild").write_text("obj-m += poll.o\n")
    good = commit(repo, "poller: two threads", period=100, stopped="2")
    commit(repo, "poller: poll every 50 ms", period=50, stopped="2")
    culprit = commit(repo, "poller: stop what was started", period=50, stopped="2 - 1")
    bad = commit(repo, "poller: poll every 40 ms", period=40, stopped="2 - 1")

    code = main(["bisect", good, bad, "--target", "i386-up", "--cycles", "3",
                 "--module", str(repo), "--out", str(tmp_path / "bisect"), "--json"])
    assert code == 0, capsys.readouterr().err
    res = json.loads(capsys.readouterr().out)
    assert res["first_bad"] == culprit
    assert res["subject"] == "poller: stop what was started"
    assert res["verdict"] in ("fail", "crash") and "threads-left" in res["checks_failed"], res
    # the work tree is back where it was, and no bisect is left in progress
    assert git(repo, "symbolic-ref", "HEAD") == "refs/heads/main"
    assert git(repo, "rev-parse", "HEAD") == bad
    assert not (repo / ".git" / "BISECT_LOG").exists()
