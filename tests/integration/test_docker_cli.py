"""The real docker CLI drives dockyard: the guidebook's commands end to end."""

from __future__ import annotations

import json
import time

import pytest

from tests.helpers.daemon import STORAGE_DRIVER, out
from tests.helpers.waiting import wait_for

pytestmark = [
    pytest.mark.requires_root,
    pytest.mark.requires_lxc,
    pytest.mark.integration,
    pytest.mark.requires_docker_cli,
]


def test_version_negotiates_1_41(daemon):
    result = daemon.docker("version")
    assert result.returncode == 0, result.stderr
    text = out(result)
    assert "Server: Dockyard Engine" in text
    assert "API version:      1.41" in text.split("Server:")[1]


def test_info(daemon):
    result = daemon.docker("info")
    assert result.returncode == 0, result.stderr
    assert f"Storage Driver: {STORAGE_DRIVER}" in out(result)


def test_images_lists_busybox(daemon):
    result = daemon.docker("images")
    assert result.returncode == 0, result.stderr
    lines = out(result).splitlines()
    assert lines[0].split()[:3] == ["REPOSITORY", "TAG", "IMAGE"]
    assert any(line.split()[:2] == ["busybox", "latest"] for line in lines[1:])


def test_run_foreground_separates_streams_and_exit_code(daemon):
    result = daemon.docker("run", "--name", "cli-fg", "busybox", "sh", "-c", "echo hello; echo oops >&2; exit 3")
    assert result.returncode == 3, result.stderr
    assert result.stdout.decode() == "hello\n"
    assert result.stderr.decode() == "oops\n"
    state = json.loads(out(daemon.docker("inspect", "cli-fg")))[0]["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 3 and not state["Running"]


def test_run_rm_removes_the_container(daemon):
    result = daemon.docker("run", "--rm", "--name", "cli-rm", "busybox", "echo", "hello world")
    assert result.returncode == 0, result.stderr
    assert out(result) == "hello world\n"
    assert daemon.docker("inspect", "cli-rm").returncode != 0


def test_run_interactive_stdin(daemon):
    result = daemon.docker("run", "--rm", "-i", "busybox", "cat", input=b"data through stdin\n")
    assert result.returncode == 0, result.stderr
    assert out(result) == "data through stdin\n"


def test_run_missing_command_is_127(daemon):
    result = daemon.docker("run", "--rm", "busybox", "no-such-command")
    assert result.returncode == 127
    assert "executable file not found" in result.stderr.decode()


def test_detached_ps_logs_stop(daemon):
    cid = out(
        daemon.docker(
            "run",
            "-d",
            "--name",
            "cli-d",
            "busybox",
            "sh",
            "-c",
            "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.2; done",
        )
    ).strip()
    assert len(cid) == 64
    ps = out(daemon.docker("ps"))
    assert "cli-d" in ps and cid[:12] in ps and "Up " in ps
    logs = wait_for(lambda: (text := out(daemon.docker("logs", "cli-d"))).count("\n") >= 2 and text)
    assert logs.startswith("line 0\nline 1\n")
    tail = out(daemon.docker("logs", "--tail", "1", "cli-d")).splitlines()
    assert len(tail) == 1 and tail[0].startswith("line ")
    stamped = out(daemon.docker("logs", "-t", "cli-d")).splitlines()[0]
    assert stamped.endswith(" line 0") and stamped[4] == "-" and stamped[19] in ".Z"
    # sh as PID 1 ignores SIGTERM: stop waits the timeout, then SIGKILL -> 137
    started = time.monotonic()
    assert daemon.docker("stop", "-t", "1", "cli-d").returncode == 0
    assert time.monotonic() - started >= 0.9
    assert out(daemon.docker("wait", "cli-d")).strip() == "137"
    ps_a = out(daemon.docker("ps", "-a"))
    assert "Exited (137)" in ps_a
    assert "cli-d" not in out(daemon.docker("ps"))


def test_kill_and_signal(daemon):
    daemon.docker("run", "-d", "--name", "cli-k", "busybox", "sleep", "60")
    assert daemon.docker("kill", "cli-k").returncode == 0
    assert out(daemon.docker("wait", "cli-k")).strip() == "137"
    daemon.docker(
        "run",
        "-d",
        "--name",
        "cli-trap",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 7' USR1; echo trapping; while :; do sleep 0.1; done",
    )
    assert wait_for(lambda: out(daemon.docker("logs", "cli-trap")) == "trapping\n")
    assert daemon.docker("kill", "-s", "USR1", "cli-trap").returncode == 0
    assert out(daemon.docker("wait", "cli-trap")).strip() == "7"


def test_restart(daemon):
    daemon.docker("run", "-d", "--name", "cli-re", "busybox", "sh", "-c", "echo started; sleep 60")
    first = json.loads(out(daemon.docker("inspect", "cli-re")))[0]["State"]["Pid"]
    assert daemon.docker("restart", "-t", "0", "cli-re").returncode == 0
    state = json.loads(out(daemon.docker("inspect", "cli-re")))[0]["State"]
    assert state["Running"] and state["Pid"] != first
    assert wait_for(lambda: out(daemon.docker("logs", "cli-re")).count("started") == 2)
    daemon.docker("rm", "-f", "cli-re")


def test_create_start_attach(daemon):
    cid = out(daemon.docker("create", "--name", "cli-cs", "busybox", "echo", "created then started")).strip()
    assert "Created" in out(daemon.docker("ps", "-a", "--filter", "name=cli-cs"))
    result = daemon.docker("start", "-a", cid)
    assert result.returncode == 0 and out(result) == "created then started\n"


def test_rm_running_needs_force_and_rmi(daemon):
    daemon.docker("run", "-d", "--name", "cli-rmf", "busybox", "sleep", "60")
    refused = daemon.docker("rm", "cli-rmf")
    assert refused.returncode != 0 and "cannot remove a running container" in refused.stderr.decode()
    assert daemon.docker("rm", "-f", "cli-rmf").returncode == 0
    assert daemon.docker("inspect", "cli-rmf").returncode != 0
    # rmi: a second tag is untagged first, then the image goes
    daemon.docker("tag", "busybox", "spare:1")
    result = daemon.docker("rmi", "spare:1")
    assert result.returncode == 0 and "Untagged: spare:1" in out(result)
    missing = daemon.docker("rmi", "no-such-image")
    assert missing.returncode != 0 and "No such image: no-such-image" in missing.stderr.decode()


def test_unknown_image_and_name_clash(daemon):
    result = daemon.docker("create", "no-such-image-here")
    assert result.returncode != 0
    daemon.docker("create", "--name", "clash", "busybox", "true")
    clash = daemon.docker("create", "--name", "clash", "busybox", "true")
    assert clash.returncode != 0 and "is already in use" in clash.stderr.decode()


def test_run_tty(daemon):
    result = daemon.docker("run", "--rm", "-t", "busybox", "sh", "-c", "tty; echo done")
    assert result.returncode == 0, result.stderr
    text = out(result).replace("\r", "")
    assert "/dev/pts/" in text and "done" in text
