"""SIGPIPE: client commands die quietly on a closed pipe; servers keep ignoring it (issue #10)."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from dockyard.cli.main import serves


@pytest.mark.parametrize(
    "argv, server",
    [
        (["daemon"], True),
        (["daemon", "-H", "unix:///tmp/x.sock"], True),
        (["-H", "unix:///tmp/x.sock", "--log-level", "debug", "daemon"], True),
        (["--host=unix:///tmp/x.sock", "daemon"], True),
        (["registry", "serve", "--listen", "127.0.0.1:5000"], True),
        (["-l", "info", "registry", "serve"], True),
        (["logs", "-f", "daemon"], False),
        (["run", "busybox", "daemon"], False),
        (["registry", "adduser", "serve"], False),
        (["container", "ls"], False),
        ([], False),
    ],
)
def test_which_commands_are_servers(argv, server):
    assert serves(argv) is server


@pytest.mark.parametrize(
    "argv, disposition",
    [
        (["dockyard", "daemon", "--help"], signal.SIG_IGN),
        (["dockyard", "registry", "serve", "--help"], signal.SIG_IGN),
        (["dockyard", "ps"], signal.SIG_DFL),
    ],
)
def test_the_entry_point_sets_sigpipe_for_clients_only(argv, disposition):
    """What ``main()`` leaves in place when the command starts (checked in a child process)."""
    script = (
        "import signal, sys; from dockyard.cli import main as m; "
        "m.app = lambda **kw: print(signal.getsignal(signal.SIGPIPE)); "
        f"sys.argv = {argv!r}; m.main()"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert int(out) == disposition
