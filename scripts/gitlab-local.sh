#!/usr/bin/env bash
# Run the nightly pipeline (docs/ci/gitlab-nightly.yml) on this machine with
# gitlab-ci-local, the GitLab engine's local runner: the five-way `parallel:`
# fan-out of `lab matrix --shard`, then the `report` job merging the shards.
# Jobs use the shell executor in this work tree, one at a time, with the
# machine's lab cache (LAB_CACHE, default ~/.cache/lab) so images are not rebuilt.
# Usage: scripts/gitlab-local.sh [CYCLES]   (default 1000, as the nightly)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cycles=${1:-1000}
tool="$here/scripts/ci-local/node_modules/.bin/gitlab-ci-local"
if [ ! -x "$tool" ]; then
  npm ci --prefix "$here/scripts/ci-local" --no-audit --no-fund --loglevel=error
fi
cd "$here"
exec "$tool" --file docs/ci/gitlab-nightly.yml --force-shell-executor --concurrency 1 \
  --variable "LAB_CYCLES=$cycles" --variable "LAB_CACHE=${LAB_CACHE:-$HOME/.cache/lab}"
