#!/usr/bin/env bash
# The README's first command: set up, start the daemon, make a busybox image
# without network, and run a container.  The daemon keeps running afterwards
# (stop it with: kill $(cat /var/lib/dockyard/dockyard.pid)).
set -euo pipefail
cd "$(dirname "$0")/.."
bash contrib/setup.sh
if ! dockyard version >/dev/null 2>&1; then
    nohup dockyard daemon >/var/log/dockyard.log 2>&1 &
    for _ in $(seq 100); do dockyard version >/dev/null 2>&1 && break; sleep 0.1; done
fi
dockyard images -q busybox | grep -q . || contrib/mkimage-busybox.sh busybox:latest
dockyard run --rm busybox echo hello world
