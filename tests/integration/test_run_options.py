"""run options handled by the core: restart policies, rename, cp."""

from __future__ import annotations

import json

import pytest

from tests.helpers.daemon import out
from tests.helpers.waiting import holds_for, wait_for

pytestmark = [
    pytest.mark.requires_root,
    pytest.mark.requires_lxc,
    pytest.mark.integration,
    pytest.mark.requires_docker_cli,
]


def _state(daemon, name) -> dict:
    return json.loads(out(daemon.docker("inspect", name)))[0]


def test_restart_on_failure_with_limit(daemon):
    out(
        daemon.docker(
            "run", "-d", "--name", "rp-fail", "--restart", "on-failure:2", "busybox", "sh", "-c", "echo run; exit 3"
        )
    )

    def given_up() -> dict | None:  # the second restart ran and exited, and no back-off is pending
        state = _state(daemon, "rp-fail")
        return state if state["RestartCount"] == 2 and state["State"]["Status"] == "exited" else None

    state = wait_for(given_up, timeout=15, interval=0.1)
    assert state and state["State"]["ExitCode"] == 3 and not state["State"]["Restarting"]
    assert out(daemon.docker("logs", "rp-fail")).count("run") == 3
    daemon.docker("rm", "-f", "rp-fail")


def test_restart_always_until_stopped(daemon):
    out(daemon.docker("run", "-d", "--name", "rp-always", "--restart", "always", "busybox", "sh", "-c", "sleep 0.2"))
    assert wait_for(lambda: _state(daemon, "rp-always")["RestartCount"] >= 2, timeout=10, interval=0.1)
    out(daemon.docker("stop", "rp-always"))
    count = _state(daemon, "rp-always")["RestartCount"]
    # a stop is final: no back-off restart may follow (the first back-offs are 0.1-0.8 s)
    assert holds_for(
        lambda: (
            _state(daemon, "rp-always")["RestartCount"] == count and not _state(daemon, "rp-always")["State"]["Running"]
        ),
        1.5,
    )
    daemon.docker("rm", "-f", "rp-always")


def test_restart_and_rm_conflict(dockerpy):
    import docker

    host_config = dockerpy.api.create_host_config(auto_remove=True, restart_policy={"Name": "always"})
    with pytest.raises(docker.errors.APIError) as info:
        dockerpy.api.create_container("busybox", "true", host_config=host_config)
    assert info.value.status_code == 400 and "Conflicting options" in str(info.value)


def test_rename(daemon):
    out(daemon.docker("create", "--name", "before-name", "busybox", "true"))
    out(daemon.docker("rename", "before-name", "after-name"))
    assert _state(daemon, "after-name")["Name"] == "/after-name"
    assert daemon.docker("inspect", "before-name").returncode != 0
    out(daemon.docker("create", "--name", "taken-name", "busybox", "true"))
    clash = daemon.docker("rename", "after-name", "taken-name")
    assert clash.returncode != 0 and "already in use" in clash.stderr.decode()
    daemon.docker("rm", "after-name", "taken-name")


def test_cp_both_ways_on_a_stopped_container(daemon, tmp_path):
    out(daemon.docker("run", "--name", "cp-src", "busybox", "sh", "-c", "mkdir -p /out && echo made > /out/file"))
    out(daemon.docker("cp", "cp-src:/out/file", str(tmp_path / "copied")))
    assert (tmp_path / "copied").read_text() == "made\n"
    out(daemon.docker("cp", "cp-src:/out", str(tmp_path / "dir")))
    assert (tmp_path / "dir" / "file").read_text() == "made\n"
    (tmp_path / "upload.txt").write_text("uploaded\n")
    out(daemon.docker("cp", str(tmp_path / "upload.txt"), "cp-src:/out/"))
    exported = out(daemon.docker("commit", "cp-src", "cp-check")).strip()
    assert out(daemon.docker("run", "--rm", "cp-check", "cat", "/out/upload.txt")) == "uploaded\n"
    missing = daemon.docker("cp", "cp-src:/no/such", str(tmp_path / "x"))
    assert missing.returncode != 0 and "Could not find the file" in missing.stderr.decode()
    daemon.docker("rm", "cp-src")
    daemon.docker("rmi", exported)
