#!/usr/bin/env bash
# Set up (contrib/setup.sh), lint, type-check and run the whole test suite.  Fails when no test ran.
set -euo pipefail
cd "$(dirname "$0")/.."
bash contrib/setup.sh
venv=${DOCKYARD_VENV:-/opt/dockyard}
# the out-of-tree example driver, installed plainly: found only through its entry point
"$venv/bin/pip" install -q ./examples/dockyard-copy-driver
# Lint, format and types, configured in pyproject.toml
"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
"$venv/bin/mypy" -p dockyard
set +e
"$venv/bin/python" -m pytest -p no:cacheprovider "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then echo "no tests ran: failing" >&2; exit 1; fi
# With no arguments (as CI runs it): the end-to-end tests once more on every other
# storage driver and exec driver, so each driver carries the whole engine, not only its own suite.
if [ $rc -eq 0 ] && [ $# -eq 0 ]; then
    for driver in overlay btrfs aufs; do
        echo "== end-to-end tests on the $driver storage driver"
        DOCKYARD_TEST_STORAGE_DRIVER=$driver "$venv/bin/python" -m pytest -p no:cacheprovider -q \
            tests/integration/test_docker_cli.py tests/integration/test_dockerpy.py \
            tests/integration/test_dockyard_cli.py tests/integration/test_image_commands.py \
            tests/integration/test_volumes.py tests/integration/test_daemon_restart.py || rc=1
    done
    # ... and on the other exec driver (the first pass ran on lxc): the modules whose behaviour the exec
    # driver carries (processes, stdio, tty, exec, pause/stats, mounts, netns, restart); then, on crun,
    # the two client suites (its conformance suite ran in the first pass).
    echo "== end-to-end tests on the oci exec driver (runc)"
    DOCKYARD_TEST_EXEC_DRIVER=oci DOCKYARD_TEST_RUNTIME=runc "$venv/bin/python" -m pytest -p no:cacheprovider -q \
        tests/integration/test_docker_cli.py tests/integration/test_dockerpy.py \
        tests/integration/test_dockyard_cli.py tests/integration/test_exec_pause_stats.py \
        tests/integration/test_tty.py tests/integration/test_run_options.py tests/integration/test_volumes.py \
        tests/integration/test_network.py tests/integration/test_daemon_restart.py \
        tests/integration/test_api_errors.py tests/integration/test_security.py || rc=1
    echo "== end-to-end tests on the oci exec driver (crun)"
    DOCKYARD_TEST_EXEC_DRIVER=oci DOCKYARD_TEST_RUNTIME=crun "$venv/bin/python" -m pytest -p no:cacheprovider -q \
        tests/integration/test_docker_cli.py tests/integration/test_dockerpy.py || rc=1
fi
exit $rc
