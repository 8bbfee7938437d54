#!/usr/bin/env bash
# Set up dockyard on a fresh Debian machine (as root): system packages, a venv
# at ${DOCKYARD_VENV:-/opt/dockyard}, and the project installed into it.
#
# Every tool the tests use is installed here (tests/helpers/requirements.py lists
# them); with CI=true a test whose requirement is missing fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${DOCKYARD_VENV:-/opt/dockyard}
packages=(lxc lxc-dev gcc libc6-dev runc crun conmon busybox-static iproute2 nftables iptables unionfs-fuse btrfs-progs
          skopeo docker-registry openssl git tar gzip python3-venv apache2-utils sysvinit-utils
          chromium chromium-driver docker-compose tmux)  # the web UI in a browser, Compose and lazydocker (#16)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
export DEBIAN_FRONTEND=noninteractive
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# A docker CLI for the compatibility tests, unless one is on PATH: Debian's docker-cli
# (trixie and later) or docker.io (bookworm, which also ships dockerd: keep it from starting,
# so no docker0 bridge or firewall rules of Docker's get in the way of the network tests).
if ! command -v docker >/dev/null 2>&1; then
    apt-get update -qq
    if apt-cache show docker-cli >/dev/null 2>&1; then
        apt-get install -y -qq --no-install-recommends docker-cli >/dev/null
    else
        policy=/usr/sbin/policy-rc.d
        own_policy=0
        if [ ! -e "$policy" ]; then
            printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=1
        fi
        apt-get install -y -qq --no-install-recommends docker.io >/dev/null
        if [ "$own_policy" = 1 ]; then rm -f "$policy"; fi
    fi
    command -v docker >/dev/null 2>&1 || { echo "setup: no docker CLI after installing one" >&2; exit 1; }
fi
python=${PYTHON:-python3}
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip >/dev/null
# "strict" editable mode: a link tree of the installed layout (dockyard <- core/ ...) that type
# checkers follow, unlike the default import hook; a file added later needs this line again
"$venv/bin/pip" install -q -e ".[test,lint]" --config-settings editable_mode=strict
# the web UI's JavaScript libraries (core/daemon/ui/package.json, locked), from npm, beside the venv: no build step
ui="$venv/share/dockyard/ui"
mkdir -p "$ui"
if ! cmp -s core/daemon/ui/package-lock.json "$ui/package-lock.json" || [ ! -d "$ui/node_modules" ]; then
    command -v npm >/dev/null || { apt-get install -y -qq --no-install-recommends npm >/dev/null; }
    cp core/daemon/ui/package.json core/daemon/ui/package-lock.json "$ui/"
    (cd "$ui" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
ln -sf "$venv/bin/dockyard" /usr/local/bin/dockyard
# shell completion (cli/completion.py): a wheel puts the scripts under the venv's share/, which no
# shell searches; link them where Debian's bash-completion, zsh and fish look
for pair in dockyard:/usr/share/bash-completion/completions/dockyard \
            _dockyard:/usr/share/zsh/vendor-completions/_dockyard \
            dockyard.fish:/usr/share/fish/vendor_completions.d/dockyard.fish; do
    mkdir -p "$(dirname "${pair#*:}")"
    ln -sf "$PWD/contrib/completion/${pair%%:*}" "${pair#*:}"
done
