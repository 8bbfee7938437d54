"""Registry servers for the tests: ours (``python -m dockyard.registry``) and Debian's
``docker-registry``, each on a free loopback port with its own directory; and what the
distribution driver's tests hand it (an image on disk, a progress recorder)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from dockyard.oci import DOCKER_MANIFEST
from tests.helpers.daemon import free_port
from tests.helpers.images import image_config, schema2, sha256
from tests.helpers.waiting import wait_for

SKOPEO = shutil.which("skopeo")
DOCKER_REGISTRY = shutil.which("docker-registry")


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
    def answers() -> bool:
        try:
            httpx.get(f"{server.url}/v2/", verify=verify, timeout=2)
            return True
        except httpx.HTTPError:
            return False

    if (
        not wait_for(lambda: answers() or server.process.poll() is not None, timeout=20)
        or server.process.poll() is not None
    ):
        server.stop()
        raise AssertionError(
            f"registry did not come up (exit status {server.process.returncode}):\n{server.log.read_text()}"
        )
    return server


def start_registry(root: Path, *args: str, scheme: str = "http", settings: dict | None = None) -> Server:
    """Our registry on a free loopback port; ``settings`` (the TOML sections, as a dict) go to a config file."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = root / "registry.log"
    if settings is not None:
        (root / "registry.json").write_text(json.dumps(settings))
        args = ("--config", str(root / "registry.json"), *args)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dockyard.registry",
            "--listen",
            f"127.0.0.1:{port}",
            "--root",
            str(root / "data"),
            *args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(log, "ab"),
        start_new_session=True,
    )
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
    rootdirectory: {root / "data"}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
{auth}""")
    log = root / "registry.log"
    process = subprocess.Popen(
        [DOCKER_REGISTRY, "serve", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=open(log, "ab"),
        start_new_session=True,
    )
    return _wait(Server(process, port, root, log))


USERS = {"alice": "alice-pw", "bob": "bob-pw", "root": "root-pw"}


def make_users(path: Path) -> Path:
    from dockyard.registry.auth import add_user

    for user, password in USERS.items():
        add_user(path, user, password, admin=user == "root", rounds=4)
    return path


def skopeo(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    assert SKOPEO, "skopeo is not installed"
    result = subprocess.run([SKOPEO, "--insecure-policy", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(args)} failed:\n{result.stderr}")
    return result


def image_on_disk(tmp_path: Path, layers: list[bytes]) -> dict:
    paths = []
    for i, layer in enumerate(layers):
        p = tmp_path / f"layer{i}.tar"
        p.write_bytes(layer)
        paths.append((sha256(layer), str(p)))
    return {"config": image_config([d for d, _ in paths]), "layers": paths, "work_dir": str(tmp_path)}


class Recorder:
    def __init__(self) -> None:
        self.messages: list[dict] = []

    def __call__(self, message: dict) -> None:
        self.messages.append(message)

    def statuses(self) -> list[str]:
        return [m.get("status", "") for m in self.messages]


def upload(http: httpx.Client, name: str, data: bytes) -> str:
    """A monolithic blob upload to the registry ``http`` talks to; returns the digest."""
    digest = sha256(data)
    r = http.post(f"/v2/{name}/blobs/uploads/", params={"digest": digest}, content=data)
    assert r.status_code == 201, r.text
    return digest


def push_image(
    http: httpx.Client, name: str, tag: str, layers: list[bytes], compresslevel: int = 9
) -> tuple[bytes, str]:
    """Push a schema 2 image of ``layers`` over the raw API; returns (manifest, its digest).
    (``compresslevel`` 1 for large random layers, which gzip cannot shrink anyway.)"""
    manifest, config, blobs = schema2(layers, compresslevel)
    for blob in [config, *blobs]:
        upload(http, name, blob)
    r = http.put(f"/v2/{name}/manifests/{tag}", content=manifest, headers={"Content-Type": DOCKER_MANIFEST})
    assert r.status_code == 201, r.text
    assert r.headers["Docker-Content-Digest"] == sha256(manifest)
    return manifest, sha256(manifest)
