"""Our own CLI against the real daemon."""

from __future__ import annotations

import json
import time

import pytest

from tests.helpers.daemon import STORAGE_DRIVER, out
from tests.helpers.waiting import wait_for

pytestmark = [pytest.mark.requires_root, pytest.mark.requires_lxc, pytest.mark.integration]


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
    assert "dy-d" in out(daemon.dockyard("ps"))
    assert out(daemon.dockyard("ps", "-q")).split()[0] == cid[:12]
    assert wait_for(lambda: out(daemon.dockyard("logs", "dy-d")) == "up\n")
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


def test_attach_live_output_and_detach_keys(daemon):
    out_ = daemon.dockyard(
        "run", "-d", "-i", "--name", "dy-att", "busybox", "sh", "-c", "while read line; do echo got $line; done"
    )
    assert out_.returncode == 0, out_.stderr
    # stdin reaches the process and output arrives live; ctrl-p ctrl-q detaches, leaving it running
    import subprocess
    import sys

    attach = subprocess.Popen(
        [sys.executable, "-m", "dockyard.cli", "attach", "dy-att"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=daemon.env(),
    )
    try:
        for word in ("one", "two"):
            attach.stdin.write(f"{word}\n".encode())
            attach.stdin.flush()
            assert attach.stdout.readline() == f"got {word}\n".encode()
        attach.stdin.write(b"\x10\x11")
        attach.stdin.flush()
        assert attach.wait(timeout=20) == 0, attach.stderr.read()
    finally:
        attach.kill()
    state = json.loads(out(daemon.dockyard("inspect", "dy-att")))[0]["State"]
    assert state["Running"] is True
    # a second attach ends with the container: EOF on stdin (not stdin_once) keeps it, kill ends it
    daemon.dockyard("kill", "dy-att")
    stopped = daemon.dockyard("attach", "dy-att")
    assert stopped.returncode != 0 and "start it first" in stopped.stderr.decode()
    daemon.dockyard("rm", "dy-att")


def test_events_since(daemon):
    started = int(time.time()) - 1
    assert daemon.dockyard("run", "--rm", "--name", "dy-ev", "busybox", "true").returncode == 0
    until = str(int(time.time()) + 1)
    lines = out(
        daemon.dockyard("events", "--since", str(started), "--until", until, "--filter", "container=dy-ev")
    ).splitlines()
    actions = [line.split()[2] for line in lines]
    assert actions[:3] == ["create", "attach", "start"] or actions[:2] == ["create", "start"]
    assert "die" in actions and "destroy" in actions
    assert all("name=dy-ev" in line for line in lines)


def test_ps_size_and_image_tree(daemon):
    assert (
        daemon.dockyard("run", "--name", "dy-size", "busybox", "sh", "-c", "head -c 100000 /dev/zero > /f").returncode
        == 0
    )
    table = out(daemon.dockyard("ps", "-a", "-s", "--filter", "name=dy-size"))
    assert table.splitlines()[0].split()[-1] == "SIZE" and "(virtual " in table and "100kB" in table
    tree = out(daemon.dockyard("images", "--tree"))
    assert "Tags: busybox:latest" in tree and "Virtual Size:" in tree
    viz = out(daemon.dockyard("images", "--viz"))
    assert viz.startswith("digraph docker {") and "busybox:latest" in viz
    daemon.dockyard("rm", "dy-size")
