#!/usr/bin/env bash
# Prepare a Debian 12 host for lab: apt packages (QEMU, cross compilers, kernel
# build tools, linux-source), a deb-src entry for busybox/dropbear sources, and a
# Python virtual environment with lab installed in it.
# Usage: scripts/setup-host.sh [VENV_DIR]   (run as root; default venv: .venv)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:-"$here/.venv"}

src_list=/etc/apt/sources.list.d/lab-deb-src.sources
if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
  cat > "$src_list" <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
xargs -a "$here/images/host-packages.txt" apt-get install -y -qq --no-install-recommends
# Node.js and npm run scripts/gitlab-local.sh; a machine that has them (say from
# NodeSource, whose nodejs conflicts with Debian's npm) keeps its own.
command -v npm >/dev/null || apt-get install -y -qq --no-install-recommends nodejs npm

python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q -e "$here[test]"
echo "lab is installed in $venv; activate it with: . $venv/bin/activate"
