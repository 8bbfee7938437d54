"""The pull-through cache: another local dockyard registry is the upstream; the cache fetches,
verifies, stores and serves, refuses pushes, and keeps serving what it has when the upstream is gone.
With root: a daemon's ``registry-mirrors`` pointing at the cache."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.helpers.daemon import free_port
from tests.helpers.registry import USERS, make_users, skopeo, start_registry
from tests.helpers.images import docker_archive, layer_tar, random_layer, schema2, sha256

pytestmark = pytest.mark.requires_skopeo
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


@pytest.fixture
def upstream(tmp_path):
    """An upstream with token authentication: the cache logs in with the [proxy] credentials."""
    users = make_users(tmp_path / "htpasswd")
    server = start_registry(tmp_path / "upstream", settings={"auth": {"mode": "token", "users": str(users)}})
    yield server
    server.stop()


def cache_for(tmp_path, upstream_url: str, name: str = "cache", **proxy):
    return start_registry(tmp_path / name, settings={"proxy": {"remoteurl": upstream_url, **proxy}})


def push_to(server, tmp_path, name: str, layers: list[bytes], user: str = "root") -> str:
    archive, _ = docker_archive(layers)
    (tmp_path / "push.tar").write_bytes(archive)
    skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        f"{user}:{USERS[user]}",
        f"docker-archive:{tmp_path / 'push.tar'}",
        f"docker://{server.host}/{name}",
    )
    return json.loads(
        skopeo(
            "inspect", "--tls-verify=false", "--creds", f"{user}:{USERS[user]}", f"docker://{server.host}/{name}"
        ).stdout
    )["Digest"]


def cached_blobs(cache) -> set[str]:
    root = cache.root / "data" / "docker" / "registry" / "v2" / "blobs" / "sha256"
    return {f"sha256:{p.name}" for p in root.glob("*/*") if (p / "data").exists()} if root.exists() else set()


def test_pull_through_fetches_verifies_stores_and_serves(upstream, tmp_path):
    digest = push_to(upstream, tmp_path, "library/tool:1.0", [random_layer(300_000), layer_tar({"a": b"b"})])
    cache = cache_for(tmp_path, upstream.url, username="root", password=USERS["root"])
    try:
        assert cached_blobs(cache) == set()
        skopeo(
            "copy", "--src-tls-verify=false", f"docker://{cache.host}/library/tool:1.0", f"oci:{tmp_path / 'first'}:x"
        )
        info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{cache.host}/library/tool:1.0").stdout)
        assert info["Digest"] == digest
        assert {digest, *info["Layers"]} <= cached_blobs(cache)  # stored, under their verified digests
        assert httpx.get(f"{cache.url}/v2/_catalog").json() == {"repositories": ["library/tool"]}
        # pushes and deletions are refused
        r = httpx.post(f"{cache.url}/v2/library/tool/blobs/uploads/")
        assert r.status_code == 405 and "pull-through cache" in r.json()["errors"][0]["message"]
        assert httpx.delete(f"{cache.url}/v2/library/tool/manifests/{digest}").status_code == 405
        denied = skopeo(
            "copy",
            "--dest-tls-verify=false",
            f"oci:{tmp_path / 'first'}:x",
            f"docker://{cache.host}/library/other:1",
            check=False,
        )
        assert denied.returncode != 0
        # a tag moved upstream is seen at once
        moved = push_to(upstream, tmp_path, "library/tool:1.0", [layer_tar({"moved": b"yes"})])
        r = httpx.get(f"{cache.url}/v2/library/tool/manifests/1.0", headers={"Accept": DOCKER_MANIFEST})
        assert r.headers["Docker-Content-Digest"] == moved != digest
        # the upstream goes away: what the cache has, it still serves
        upstream.stop()
        skopeo(
            "copy",
            "--src-tls-verify=false",
            f"docker://{cache.host}/library/tool@{digest}",
            f"oci:{tmp_path / 'offline'}:x",
        )
        r = httpx.get(f"{cache.url}/v2/library/tool/manifests/1.0", headers={"Accept": DOCKER_MANIFEST})
        assert r.status_code == 200 and r.headers["Docker-Content-Digest"] == moved
        assert httpx.get(f"{cache.url}/v2/library/absent/manifests/1").status_code in (404, 500, 503)
    finally:
        cache.stop()


class TamperingUpstream(BaseHTTPRequestHandler):
    """A registry whose one blob does not match its digest."""

    blob = b"the real content"
    wrong = b"something else!!"
    manifest: bytes = b""

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/v2/":
            body, kind = b"{}", "application/json"
        elif "/manifests/" in self.path:
            body, kind = self.manifest, DOCKER_MANIFEST
        elif self.path.endswith(sha256(self.blob)):
            body, kind = self.wrong, "application/octet-stream"
        else:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        if kind == DOCKER_MANIFEST:
            self.send_header("Docker-Content-Digest", "sha256:" + hashlib.sha256(body).hexdigest())
        self.end_headers()
        self.wfile.write(body)


def test_content_that_does_not_match_its_digest_is_not_cached(tmp_path):
    manifest, _, _ = schema2([layer_tar({"x": b"y"})])
    TamperingUpstream.manifest = manifest
    port = free_port()
    fake = ThreadingHTTPServer(("127.0.0.1", port), TamperingUpstream)
    threading.Thread(target=fake.serve_forever, daemon=True).start()
    cache = cache_for(tmp_path, f"http://127.0.0.1:{port}")
    try:
        digest = sha256(TamperingUpstream.blob)
        r = httpx.get(f"{cache.url}/v2/evil/img/blobs/{digest}")
        assert r.content == TamperingUpstream.wrong  # relayed as it came: the client checks and refuses it
        assert digest not in cached_blobs(cache) and cached_blobs(cache) == set()
        r = httpx.get(f"{cache.url}/v2/evil/img/manifests/latest")
        assert r.status_code == 200 and sha256(manifest) in cached_blobs(cache)
    finally:
        cache.stop()
        fake.shutdown()


@pytest.mark.requires_root
@pytest.mark.requires_lxc
@pytest.mark.integration
def test_daemon_registry_mirror(upstream, tmp_path):
    """``dockyard daemon --registry-mirror`` pulls images of the default index through the cache.

    The default index is the upstream (``DOCKYARD_INDEX_URL``) and the pulls name images as the user types
    them (``busybox:mirrored``), through the dockyard CLI: the docker CLI would ask for docker.io/library/...,
    whose fallback, were the mirror to fail, is Docker Hub, out of this machine's reach."""
    import os

    from tests.helpers.daemon import busybox_rootfs_tar, remove_bridge, start_daemon

    push_to(upstream, tmp_path, "busybox:mirrored", [busybox_rootfs_tar()])
    cache = cache_for(tmp_path, upstream.url, username="root", password=USERS["root"])
    (tmp_path / "d").mkdir()
    os.environ["DOCKYARD_INDEX_URL"] = upstream.url  # the daemon's default index is the upstream
    try:
        daemon = start_daemon(tmp_path / "d", ("--registry-mirror", cache.url))
    finally:
        del os.environ["DOCKYARD_INDEX_URL"]
    try:
        info = daemon.dockyard("info")
        assert f"Registry Mirrors:\n  {cache.url}/\n" in info.stdout.decode(), info.stdout.decode()
        pulled = daemon.dockyard("pull", "busybox:mirrored", timeout=120)
        assert pulled.returncode == 0, pulled.stderr.decode()
        assert httpx.get(f"{cache.url}/v2/_catalog").json() == {"repositories": ["busybox"]}  # it went through
        upstream.stop()  # the mirror alone serves it now
        assert daemon.dockyard("rmi", "busybox:mirrored").returncode == 0
        again = daemon.dockyard("pull", "busybox:mirrored", timeout=120)
        assert again.returncode == 0, again.stderr.decode()
        ran = daemon.dockyard("run", "--rm", "busybox:mirrored", "echo", "mirrored")
        assert ran.returncode == 0 and ran.stdout == b"mirrored\n", ran.stderr.decode()
    finally:
        daemon.stop()
        remove_bridge(tmp_path / "d")
        cache.stop()
