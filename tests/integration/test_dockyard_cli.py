"""Our own CLI against the real daemon."""

from __future__ import annotations

import json
import time

import pytest

from .conftest import STORAGE_DRIVER

pytestmark = [pytest.mark.requires_root, pytest.mark.requires_lxc, pytest.mark.integration]


def out(result) -> str:
    return result.stdout.decode()


def test_hello_world(daemon):
    result = daemon.dockyard("run", "--rm", "busybox", "echo", "hello world")
    assert result.returncode == 0, result.stderr
    assert out(result) == "hello world\n"


def test_version_info_images(daemon):
    assert "1.41" in out(daemon.dockyard("version"))
    info = out(daemon.dockyard("info"))
    assert "Containers:" in info and STORAGE_DRIVER in info
    images = out(daemon.dockyard("images"))
    assert "busybox" in images and "latest" in images
    quiet = out(daemon.dockyard("images", "-q")).split()
    assert quiet and all(len(i) == 12 for i in quiet)


def test_run_detached_ps_logs_stop_rm(daemon):
    cid = out(daemon.dockyard("run", "-d", "--name", "dy-d", "busybox", "sh", "-c", "echo up; sleep 60")).strip()
    assert len(cid) == 64
    time.sleep(0.3)
    assert "dy-d" in out(daemon.dockyard("ps"))
    assert out(daemon.dockyard("ps", "-q")).split()[0] == cid[:12]
    assert out(daemon.dockyard("logs", "dy-d")) == "up\n"
    assert daemon.dockyard("stop", "-t", "1", "dy-d").returncode == 0
    assert out(daemon.dockyard("wait", "dy-d")).strip() == "137"
    inspected = json.loads(out(daemon.dockyard("inspect", "dy-d", "busybox")))
    assert inspected[0]["State"]["ExitCode"] == 137 and inspected[1]["Id"].startswith("sha256:")
    assert daemon.dockyard("rm", "dy-d").returncode == 0
    gone = daemon.dockyard("inspect", "dy-d")
    assert gone.returncode == 1 and "No such" in gone.stderr.decode()


def test_exit_code_and_stderr(daemon):
    result = daemon.dockyard("run", "--rm", "busybox", "sh", "-c", "echo err >&2; exit 5")
    assert result.returncode == 5 and result.stderr.decode() == "err\n"


def test_stdin(daemon):
    result = daemon.dockyard("run", "--rm", "-i", "busybox", "cat", input=b"data\n")
    assert result.returncode == 0 and out(result) == "data\n"


def test_daemon_not_running_is_one_sentence(daemon, tmp_path):
    import subprocess
    import sys

    env = daemon.env()
    env["DOCKYARD_HOST"] = f"unix://{tmp_path}/nothing.sock"
    result = subprocess.run([sys.executable, "-m", "dockyard.cli", "ps"], capture_output=True, env=env)
    assert result.returncode != 0
    err = result.stderr.decode()
    assert "Traceback" not in err and "daemon" in err.lower()
