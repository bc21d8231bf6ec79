#!/usr/bin/env bash
# The nightly hardware matrix: soak every target, report against the previous
# night, keep the last N nights.
#   LAB_NIGHTS   where nights are kept          (default /var/lib/lab/nights)
#   LAB_KEEP     how many nights to keep         (default 14)
#   LAB_CYCLES   soak cycles per target          (default 1000)
# Extra arguments go to `lab matrix` (e.g. --module DIR --params "nthreads=8").
# Exit status: that of `lab report` (0 all pass, 1 a module failure, 2 infra).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
lab=${LAB_BIN:-"$here/.venv/bin/lab"}
nights=${LAB_NIGHTS:-/var/lib/lab/nights}
keep=${LAB_KEEP:-14}
cycles=${LAB_CYCLES:-1000}

mkdir -p "$nights"
tonight="$nights/$(date -u +%Y-%m-%dT%H%M)"
previous=$(find "$nights" -mindepth 1 -maxdepth 1 -type d -name '20*' | sort | tail -n 1)

"$lab" matrix --cycles "$cycles" --out "$tonight" "$@" || true
report=("$lab" report "$tonight" --out "$tonight/report.html")
[ -n "$previous" ] && report+=(--previous "$previous")
status=0
"${report[@]}" || status=$?
ln -sfn "$tonight" "$nights/latest"
find "$nights" -mindepth 1 -maxdepth 1 -type d -name '20*' | sort | head -n "-$keep" | xargs -r rm -rf
exit "$status"
