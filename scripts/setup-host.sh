#!/usr/bin/env bash
# Prepare a Debian 12 host for lab: apt packages (cross compilers, kernel build
# tools, linux-source), QEMU 10.0 from bookworm-backports, deb-src entries for the
# busybox, dropbear and qemu (PALcode) sources, and a Python virtual environment
# with lab installed in it.
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

# QEMU comes from bookworm-backports: bookworm's 7.2 misroutes MMIO accesses on
# SMP guests under multi-threaded TCG (see ArchSpec.one_tcg_thread in lab/config.py).
bpo_list=/etc/apt/sources.list.d/lab-bookworm-backports.sources
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  cat > "$bpo_list" <<'BPO'
Types: deb deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
BPO
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
xargs -a "$here/images/host-packages.txt" apt-get install -y -qq --no-install-recommends
xargs -a "$here/images/host-packages-backports.txt" \
  apt-get install -y -qq --no-install-recommends -t bookworm-backports
# Node.js and npm run scripts/gitlab-local.sh; a machine that has them (say from
# NodeSource, whose nodejs conflicts with Debian's npm) keeps its own.
command -v npm >/dev/null || apt-get install -y -qq --no-install-recommends nodejs npm

python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q -e "$here[test]"
echo "lab is installed in $venv; activate it with: . $venv/bin/activate"
