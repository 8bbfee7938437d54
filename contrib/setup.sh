#!/usr/bin/env bash
# Set up dockyard on a fresh Debian machine (as root): system packages, a venv
# at ${DOCKYARD_VENV:-/opt/dockyard}, and the project installed into it.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${DOCKYARD_VENV:-/opt/dockyard}
packages=(lxc lxc-dev gcc libc6-dev runc crun conmon busybox-static iproute2 nftables iptables unionfs-fuse btrfs-progs skopeo docker-registry openssl git tar gzip python3-venv apache2-utils)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
python=${PYTHON:-python3}
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip >/dev/null
"$venv/bin/pip" install -q -e ".[test]"
ln -sf "$venv/bin/dockyard" /usr/local/bin/dockyard
