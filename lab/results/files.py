"""The names of the files lab writes into a results directory, in one place.

The README documents them and users' scripts open them by name, so a name
here changes only with the README.
"""

from __future__ import annotations

# One soak (`lab soak --out DIR`, or a matrix cell's directory)
RECORDS = "records.jsonl"        # the agent's records, one JSON line per record, as judged
SUMMARY = "summary.json"         # the SoakSummary (lab.results.summary); merged by `lab report`
CONSOLE = "console.log"          # the guest's serial console during the soak
JUNIT = "junit.xml"              # one test case per check
REGISTERS = "registers.txt"      # a hang: the vCPUs' registers (QEMU `info registers -a`)
HANG_CONSOLE = "hang-console.txt"  # a hang: the console after the sysrq task dumps

# Everything a soak writes, removed before the next soak writes into the same
# directory, so no file of an earlier soak passes for this one's.
SOAK_FILES = (RECORDS, SUMMARY, CONSOLE, JUNIT, REGISTERS, HANG_CONSOLE)

# `lab matrix` and `lab report`
MATRIX = "matrix.json"           # the cells of one matrix run (shard, jobs, verdicts)
REPORT_HTML = "report.html"      # the merged report; SUMMARY and JUNIT beside it
REPORT_DIR = "report"            # `lab report DIR` writes DIR/report/ by default

# `lab bisect`
BISECT_LOG = "bisect.log"        # `git bisect run`'s output
BISECT_JUDGE = "judge.sh"        # the script git runs on each commit
