"""Several ``dockyard registry serve`` replicas over one SeaweedFS bucket behave as one registry:
sessions continue across replicas (even after one is killed), pushes are seen everywhere at once,
concurrent pushes of one tag leave it consistent, and tokens of one replica are good at the others."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from dockyard.registry.storage import S3_MIN_PART

from tests.helpers.registry import skopeo, start_registry
from tests.helpers.images import docker_archive, layer_tar, schema2, sha256
from tests.helpers.waiting import wait_for

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
USER, PASSWORD = "alice", "alice-password"


@pytest.fixture(scope="module")
def cluster(seaweedfs, tmp_path_factory):
    """Three replicas: one bucket, one token key, token authentication, accounts in the bucket.
    The tests use repositories of their own; a test that kills a replica starts one for that."""
    from dockyard.registry.accounts import Accounts
    from dockyard.registry.storage import make_backend

    base = tmp_path_factory.mktemp("replicas")
    secret = base / "token-secret"
    secret.write_text(os.urandom(32).hex())
    bucket = f"replicas-{os.getpid()}"
    seaweedfs.client().create_bucket(Bucket=bucket)
    settings = {
        "storage": seaweedfs.storage_settings(bucket, "reg", chunk_size=S3_MIN_PART),
        "auth": {"mode": "token", "secret_file": str(secret)},
        "gc": {"window": 0.5},
    }
    Accounts(make_backend(settings["storage"], base), rounds=4).add(USER, PASSWORD)

    def start(name: str):
        return start_registry(base / name, settings=settings)

    with ThreadPoolExecutor(3) as pool:
        servers = list(pool.map(start, ["a", "b", "c"]))
    extra = []
    yield servers, lambda name: extra.append(start(name)) or extra[-1]
    for server in servers + extra:
        server.stop()


@pytest.fixture
def replicas(cluster):
    return cluster[0]


def token(server, scope: str) -> dict:
    r = httpx.get(f"{server.url}/token", params={"service": "dockyard-registry", "scope": scope}, auth=(USER, PASSWORD))
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_an_upload_moves_between_replicas(replicas):
    a, b, c = replicas
    auth = token(a, "repository:alice/moving:pull,push")  # issued by A, honoured by all
    data = os.urandom(3 * S3_MIN_PART + 1234)
    r = httpx.post(f"{a.url}/v2/alice/moving/blobs/uploads/", headers=auth)
    assert r.status_code == 202, r.text
    location = r.headers["Location"]
    first = 2 * S3_MIN_PART + 10
    r = httpx.patch(f"{b.url}{location}", content=data[:first], headers={**auth, "Content-Range": f"0-{first - 1}"})
    assert r.status_code == 202 and r.headers["Range"] == f"0-{first - 1}"
    # every replica reports the same progress, and refuses a chunk that does not continue it
    for server in replicas:
        assert httpx.get(f"{server.url}{location}", headers=auth).headers["Range"] == f"0-{first - 1}"
    r = httpx.patch(f"{c.url}{location}", content=b"x" * 10, headers={**auth, "Content-Range": "5-14"})
    assert r.status_code == 416
    # C finishes what A started and B continued; C never saw the first bytes, so it reads them back to hash
    r = httpx.put(
        f"{c.url}{location}",
        params={"digest": sha256(data)},
        content=data[first:],
        headers={**auth, "Content-Range": f"{first}-{len(data) - 1}"},
    )
    assert r.status_code == 201, r.text
    for server in replicas:
        got = httpx.get(f"{server.url}/v2/alice/moving/blobs/{sha256(data)}", headers=auth, timeout=60)
        assert got.status_code == 200 and got.content == data
    assert httpx.get(f"{a.url}{location}", headers=auth).status_code == 404  # the session is gone everywhere


def test_a_killed_replicas_upload_is_resumed_elsewhere(cluster):
    (a, b, _), start = cluster
    c = start("doomed")
    auth = token(c, "repository:alice/resumed:pull,push")
    data = os.urandom(3 * S3_MIN_PART)
    location = httpx.post(f"{c.url}/v2/alice/resumed/blobs/uploads/", headers=auth).headers["Location"]
    stall = threading.Event()

    def slow_body():
        for i in range(0, 2 * S3_MIN_PART + (1 << 20), 1 << 20):  # two whole chunks and a bit, then it hangs
            yield data[i : i + (1 << 20)]
        stall.wait(60)

    def patch() -> None:
        try:
            httpx.patch(f"{c.url}{location}", content=slow_body(), headers=auth, timeout=60)
        except httpx.HTTPError:
            pass  # the replica is killed under it

    sender = threading.Thread(target=patch)
    sender.start()
    try:
        # the chunks C stored are visible from A while C still receives
        def progress() -> int:
            value = httpx.get(f"{a.url}{location}", headers=auth).headers["Range"]
            return int(value.split("-")[1]) + 1

        assert wait_for(lambda: progress() >= 2 * S3_MIN_PART, timeout=60, interval=0.05), "replica C stored no chunk"
        c.process.send_signal(signal.SIGKILL)
        c.process.wait(10)
    finally:
        stall.set()
        sender.join(60)
    done = progress()
    assert done == 2 * S3_MIN_PART  # what C had stored survives its death; the chunk in flight does not
    r = httpx.patch(
        f"{a.url}{location}", content=data[done:], headers={**auth, "Content-Range": f"{done}-{len(data) - 1}"}
    )
    assert r.status_code == 202, r.text
    r = httpx.put(f"{b.url}{location}", params={"digest": sha256(data)}, headers=auth)
    assert r.status_code == 201, r.text
    got = httpx.get(f"{a.url}/v2/alice/resumed/blobs/{sha256(data)}", headers=auth, timeout=60)
    assert got.content == data


def push_schema2(server, auth: dict, name: str, tag: str, layers: list[bytes]) -> str:
    manifest, config, blobs = schema2(layers)
    for blob in [config, *blobs]:
        r = httpx.post(
            f"{server.url}/v2/{name}/blobs/uploads/", params={"digest": sha256(blob)}, content=blob, headers=auth
        )
        assert r.status_code == 201, r.text
    r = httpx.put(
        f"{server.url}/v2/{name}/manifests/{tag}", content=manifest, headers={**auth, "Content-Type": DOCKER_MANIFEST}
    )
    assert r.status_code == 201, r.text
    return sha256(manifest)


def test_push_through_one_pull_through_another_and_concurrent_tags(replicas):
    a, b, c = replicas
    auth = token(b, "repository:alice/app:pull,push")
    digest = push_schema2(a, auth, "alice/app", "v1", [layer_tar({"app": b"one"})])
    r = httpx.get(f"{b.url}/v2/alice/app/manifests/v1", headers={**auth, "Accept": DOCKER_MANIFEST})
    assert r.status_code == 200 and r.headers["Docker-Content-Digest"] == digest
    # 12 pushes of different images to one tag, through all three replicas at once
    pushed = {}

    def push(i: int) -> None:
        server = replicas[i % 3]
        pushed[i] = push_schema2(server, auth, "alice/app", "latest", [layer_tar({"n": str(i).encode() * 1000})])

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(push, range(12)))
    answers = set()
    for server in replicas:
        r = httpx.get(f"{server.url}/v2/alice/app/manifests/latest", headers={**auth, "Accept": DOCKER_MANIFEST})
        assert r.status_code == 200
        answers.add(r.headers["Docker-Content-Digest"])
        manifest = json.loads(r.content)
        for layer in [manifest["config"], *manifest["layers"]]:  # the winner is whole: every blob is there
            blob = httpx.get(f"{server.url}/v2/alice/app/blobs/{layer['digest']}", headers=auth)
            assert blob.status_code == 200 and "sha256:" + hashlib.sha256(blob.content).hexdigest() == layer["digest"]
    assert len(answers) == 1 and answers <= set(pushed.values())  # last writer wins, everywhere alike
    assert httpx.get(f"{c.url}/v2/alice/app/tags/list", headers=auth).json()["tags"] == ["latest", "v1"]


@pytest.mark.requires_skopeo
def test_skopeo_through_replicas(replicas, tmp_path):
    a, b, _ = replicas
    archive, _ = docker_archive([layer_tar({"rep": os.urandom(200_000)}), layer_tar({"x": b"y"})])
    (tmp_path / "img.tar").write_bytes(archive)
    creds = f"{USER}:{PASSWORD}"
    skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        creds,
        f"docker-archive:{tmp_path / 'img.tar'}",
        f"docker://{a.host}/alice/sk:v1",
    )
    skopeo(
        "copy",
        "--src-tls-verify=false",
        "--src-creds",
        creds,
        f"docker://{b.host}/alice/sk:v1",
        f"oci:{tmp_path / 'out'}:x",
    )
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert len(index["manifests"]) == 1


@pytest.mark.requires_root
@pytest.mark.requires_lxc
@pytest.mark.integration
@pytest.mark.requires_skopeo
def test_skopeo_push_docker_pull_while_a_replica_dies(cluster, tmp_path):
    """skopeo pushes through A; the docker CLI, through a dockyard daemon, pulls from B and runs it; meanwhile
    replica D is killed with SIGKILL in the middle of an upload, which then finishes on A."""
    from tests.helpers.daemon import DOCKER, busybox_rootfs_tar, remove_bridge, start_daemon

    assert DOCKER, "the docker CLI is needed"
    (a, b, _), start = cluster
    d = start("killed")
    auth = token(d, "repository:alice/other:pull,push")
    data = os.urandom(2 * S3_MIN_PART + 999)
    location = httpx.post(f"{d.url}/v2/alice/other/blobs/uploads/", headers=auth).headers["Location"]
    stall = threading.Event()

    def slow_body():
        for i in range(0, S3_MIN_PART + (1 << 20), 1 << 20):
            yield data[i : i + (1 << 20)]
        stall.wait(120)

    def patch() -> None:
        try:
            httpx.patch(f"{d.url}{location}", content=slow_body(), headers=auth, timeout=120)
        except httpx.HTTPError:
            pass

    sender = threading.Thread(target=patch)
    sender.start()
    daemon = None
    try:
        archive, image_id = docker_archive([busybox_rootfs_tar()])
        (tmp_path / "bb.tar").write_bytes(archive)
        creds = f"{USER}:{PASSWORD}"
        pool = ThreadPoolExecutor(1)
        pusher = pool.submit(
            skopeo,
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            creds,
            f"docker-archive:{tmp_path / 'bb.tar'}",
            f"docker://{a.host}/alice/busybox:replicated",
        )
        assert wait_for(
            lambda: httpx.get(f"{a.url}{location}", headers=auth).headers["Range"] != "0-0", timeout=60, interval=0.05
        ), "replica D stored no chunk"
        d.process.send_signal(signal.SIGKILL)  # while skopeo pushes through A
        d.process.wait(10)
        pusher.result(120)
        pool.shutdown()
        stall.set()
        sender.join(60)
        done = int(httpx.get(f"{a.url}{location}", headers=auth).headers["Range"].split("-")[1]) + 1
        assert done == S3_MIN_PART
        r = httpx.put(f"{a.url}{location}", params={"digest": sha256(data)}, content=data[done:], headers=auth)
        assert r.status_code == 201, r.text
        (tmp_path / "d").mkdir()
        daemon = start_daemon(tmp_path / "d")
        login = daemon.docker("login", "-u", USER, "--password-stdin", b.host, input=PASSWORD.encode())
        assert login.returncode == 0, login.stderr.decode()
        pulled = daemon.docker("pull", f"{b.host}/alice/busybox:replicated", timeout=120)
        assert pulled.returncode == 0, pulled.stderr.decode()
        inspect = json.loads(daemon.docker("inspect", f"{b.host}/alice/busybox:replicated").stdout)
        assert inspect[0]["Id"] == image_id
        ran = daemon.docker("run", "--rm", f"{b.host}/alice/busybox:replicated", "echo", "replicated")
        assert ran.returncode == 0 and ran.stdout == b"replicated\n", ran.stderr.decode()
    finally:
        stall.set()
        sender.join(60)
        if daemon is not None:
            daemon.stop()
            remove_bridge(tmp_path / "d")
