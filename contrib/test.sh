#!/usr/bin/env bash
# Set up (contrib/setup.sh) and run the whole test suite.  Fails when no test ran.
set -euo pipefail
cd "$(dirname "$0")/.."
bash contrib/setup.sh
venv=${DOCKYARD_VENV:-/opt/dockyard}
# the out-of-tree example driver, installed plainly: found only through its entry point
"$venv/bin/pip" install -q ./examples/dockyard-copy-driver
set +e
"$venv/bin/python" -m pytest -p no:cacheprovider "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then echo "no tests ran: failing" >&2; exit 1; fi
exit $rc
