"""docker-compose 1.29 (a real client, Debian's) brings a three-service busybox app up against dockyard and down
again: a build from a Dockerfile, a named volume, a user network with service-name DNS, a published port,
depends_on (with a health condition), environment, healthchecks, scale, logs -f, and down -v leaving nothing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.daemon import TcpDaemon, free_port, tcp_daemon
from tests.helpers.waiting import wait_for

pytestmark = [
    pytest.mark.requires_root,
    pytest.mark.requires_lxc,
    pytest.mark.requires_docker_compose,
    pytest.mark.integration,
]

APP = Path(__file__).parent / "app"
PROJECT = "composetest"
COMPOSE = shutil.which("docker-compose") or "docker-compose"  # requires_docker_compose


class App:
    def __init__(self, daemon: TcpDaemon) -> None:
        self.daemon = daemon
        self.port = free_port()

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [COMPOSE, "--no-ansi", "-p", PROJECT, *args],
            cwd=APP,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def env(self) -> dict[str, str]:
        return {**self.daemon.env(), "WEB_PORT": str(self.port), "COMPOSE_INTERACTIVE_NO_CLI": "1"}

    def api(self):
        import docker

        return docker.DockerClient(base_url=self.daemon.host, timeout=60)


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Iterator[App]:
    with tcp_daemon(tmp_path_factory.mktemp("dockyard-compose")) as daemon:
        project = App(daemon)
        try:
            yield project
        finally:
            project.compose("down", "-v", "--timeout", "1")


def test_up_scale_logs_down(app: App) -> None:
    up = app.compose("up", "-d", "--build")
    assert up.returncode == 0, up.stdout + up.stderr
    assert "Successfully tagged composetest/web:1" in up.stdout + up.stderr
    client = app.api()
    try:
        web = client.containers.get(f"{PROJECT}_web_1")
        # the healthcheck runs, and the client started only once web was healthy (depends_on: service_healthy)
        assert wait_for(
            lambda: client.api.inspect_container(web.id)["State"].get("Health", {}).get("Status") == "healthy",
            timeout=60,
            interval=0.2,
        ), "web to be healthy"
        ps = app.compose("ps")
        assert re.search(rf"{PROJECT}_web_1 .* Up \(healthy\) +127\.0\.0\.1:{app.port}->8080/tcp", ps.stdout), ps.stdout
        client_1 = client.containers.get(f"{PROJECT}_client_1")
        assert client_1.attrs["State"]["StartedAt"] > client.api.inspect_container(web.id)["State"]["StartedAt"]

        # the published port, and the build argument baked into the image
        with urllib.request.urlopen(f"http://127.0.0.1:{app.port}/index.html", timeout=30) as response:
            assert response.read() == b"hello from compose\n"
        # the named volume: the writer's file, served by web, fetched by the client through the name "web"
        assert wait_for(
            lambda: "the-writer" in client_1.logs().decode() and "got it" in client_1.logs().decode(),
            timeout=60,
            interval=0.2,
        ), "the client to reach web by its service name"
        web_env = web.attrs["Config"]["Env"]
        assert "TIER=front" in web_env and "SERVER=busybox-httpd" in web_env
        network = client.networks.get(f"{PROJECT}_appnet")
        assert {c.name for c in network.containers} == {
            f"{PROJECT}_web_1",
            f"{PROJECT}_writer_1",
            f"{PROJECT}_client_1",
        }
        assert "web" in web.attrs["NetworkSettings"]["Networks"][f"{PROJECT}_appnet"]["Aliases"]
        assert client.volumes.get(f"{PROJECT}_data").attrs["Labels"]["com.docker.compose.project"] == PROJECT

        # scale
        scaled = app.compose("up", "-d", "--scale", "client=3")
        assert scaled.returncode == 0, scaled.stdout + scaled.stderr
        assert wait_for(
            lambda: (
                len(
                    client.containers.list(
                        filters={
                            "label": [f"com.docker.compose.project={PROJECT}", "com.docker.compose.service=client"]
                        }
                    )
                )
                == 3
            ),
            timeout=60,
            interval=0.2,
        ), "three running clients"

        # logs -f: lines keep coming from every replica
        follow = subprocess.Popen(
            [COMPOSE, "--no-ansi", "-p", PROJECT, "logs", "-f", "--no-color", "--tail", "0", "client"],
            cwd=APP,
            env=app.env(),
            stdout=subprocess.PIPE,
            text=True,
        )
        seen: set[str] = set()
        try:
            deadline = time.monotonic() + 60
            while len(seen) < 3 and time.monotonic() < deadline:
                line = follow.stdout.readline()
                match = re.match(r"(client_\d)\s+\| .* got it", line)
                if match:
                    seen.add(match.group(1))
        finally:
            follow.terminate()
            follow.wait(10)
        assert seen == {"client_1", "client_2", "client_3"}

        # down -v: nothing of the project is left
        down = app.compose("down", "-v", "--timeout", "1")
        assert down.returncode == 0, down.stdout + down.stderr
        assert client.containers.list(all=True, filters={"label": f"com.docker.compose.project={PROJECT}"}) == []
        assert [n.name for n in client.networks.list() if n.name.startswith(PROJECT)] == []
        assert [v.name for v in client.volumes.list() if v.name.startswith(PROJECT)] == []
        assert not os.path.exists(app.daemon.root / "data" / "volumes" / f"{PROJECT}_data")
    finally:
        client.close()
