"""Registry servers for the tests: ours (``python -m dockyard.registry``)
and Debian's ``docker-registry``, each on a free loopback port with its own directory."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

SKOPEO = shutil.which("skopeo")
DOCKER_REGISTRY = shutil.which("docker-registry")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    root: Path
    log: Path
    scheme: str = "http"
    extra: dict = field(default_factory=dict)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _wait(server: Server, verify=False) -> Server:
    deadline = time.monotonic() + 20
    while True:
        if server.process.poll() is not None:
            raise AssertionError(f"registry exited with {server.process.returncode}:\n{server.log.read_text()}")
        try:
            httpx.get(f"{server.url}/v2/", verify=verify, timeout=2)
            return server
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                server.stop()
                raise AssertionError(f"registry did not come up:\n{server.log.read_text()}")
            time.sleep(0.05)


def start_registry(root: Path, *args: str, scheme: str = "http", settings: dict | None = None) -> Server:
    """Our registry on a free loopback port; ``settings`` (the TOML sections, as a dict) go to a config file."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = root / "registry.log"
    if settings is not None:
        import json

        (root / "registry.json").write_text(json.dumps(settings))
        args = ("--config", str(root / "registry.json"), *args)
    process = subprocess.Popen(
        [sys.executable, "-m", "dockyard.registry", "--listen", f"127.0.0.1:{port}",
         "--root", str(root / "data"), *args],
        stdout=subprocess.DEVNULL, stderr=open(log, "ab"), start_new_session=True)
    return _wait(Server(process, port, root, log, scheme))


def start_docker_registry(root: Path, htpasswd: Path | None = None) -> Server:
    """Debian's docker-registry (distribution 2.8) with file system storage."""
    assert DOCKER_REGISTRY, "docker-registry is not installed"
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    auth = f"auth:\n  htpasswd:\n    realm: test\n    path: {htpasswd}\n" if htpasswd else ""
    config = root / "config.yml"
    config.write_text(f"""version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {root / 'data'}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
{auth}""")
    log = root / "registry.log"
    process = subprocess.Popen([DOCKER_REGISTRY, "serve", str(config)], stdout=subprocess.DEVNULL,
                               stderr=open(log, "ab"), start_new_session=True)
    return _wait(Server(process, port, root, log))


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    server = start_registry(tmp_path_factory.mktemp("registry"))
    yield server
    server.stop()


USERS = {"alice": "alice-pw", "bob": "bob-pw", "root": "root-pw"}


def make_users(path: Path) -> Path:
    from dockyard.registry.auth import add_user

    for user, password in USERS.items():
        add_user(path, user, password, admin=user == "root", rounds=4)
    return path


@pytest.fixture
def token_registry(tmp_path):
    users = make_users(tmp_path / "htpasswd")
    server = start_registry(tmp_path / "registry", "--auth", "token", "--users", str(users), "--token-ttl", "3")
    yield server
    server.stop()


@pytest.fixture
def basic_registry(tmp_path):
    users = make_users(tmp_path / "htpasswd")
    server = start_registry(tmp_path / "registry", "--auth", "basic", "--users", str(users))
    yield server
    server.stop()


def skopeo(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    assert SKOPEO, "skopeo is not installed"
    result = subprocess.run([SKOPEO, "--insecure-policy", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(args)} failed:\n{result.stderr}")
    return result


# -- a real S3 server -------------------------------------------------------------------------------

from .seaweedfs import SeaweedFS, start_seaweedfs  # noqa: E402


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory) -> SeaweedFS:
    """One SeaweedFS (master, volume server, filer, S3 gateway) for the session; tests use their own buckets."""
    server = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    yield server
    server.stop()


_buckets = iter(range(1, 1 << 30))


@pytest.fixture
def bucket(seaweedfs) -> str:
    """A new, empty bucket on the session's SeaweedFS."""
    name = f"test-{os.getpid()}-{next(_buckets)}"
    seaweedfs.client().create_bucket(Bucket=name)
    return name
