#!/usr/bin/env bash
# Set up dockyard on a fresh Debian machine (as root): system packages, a venv
# at ${DOCKYARD_VENV:-/opt/dockyard}, and the project installed into it.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${DOCKYARD_VENV:-/opt/dockyard}
packages=(lxc lxc-dev gcc libc6-dev runc crun conmon busybox-static iproute2 nftables iptables unionfs-fuse btrfs-progs skopeo docker-registry openssl git tar gzip python3-venv apache2-utils
          chromium chromium-driver docker-compose tmux)  # the web UI in a browser, Compose and lazydocker (#16)
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
