"""The storage backend interface: the same checks on the file system and on a real S3
server (SeaweedFS), then the registry over S3 end to end."""

from __future__ import annotations

import json
import os
import shutil

import httpx
import pytest

from dockyard.registry.storage import S3_MIN_PART, FilesystemBackend, S3Backend, make_backend

from tests.helpers.registry import skopeo, start_registry
from tests.helpers.images import docker_archive, layer_tar, random_layer


@pytest.fixture(params=["filesystem", "s3"])
def backend(request, tmp_path):
    if request.param == "filesystem":
        yield FilesystemBackend(tmp_path / "fs")
        return
    server = request.getfixturevalue("seaweedfs")
    bucket = request.getfixturevalue("bucket")
    yield make_backend(server.storage_settings(bucket, prefix="reg", chunk_size=S3_MIN_PART), tmp_path)


def test_backend_contract(backend):
    assert backend.size("a/b/c") is None and not backend.exists("a/b/c") and backend.stat("a/b/c") is None
    with pytest.raises(KeyError):
        backend.get("a/b/c")
    backend.put("a/b/c", b"hello")
    assert backend.get("a/b/c") == b"hello" and backend.size("a/b/c") == 5
    backend.put("a/b/c", b"replaced")
    assert backend.get("a/b/c") == b"replaced"
    assert b"".join(backend.read_range("a/b/c", 2, 5)) == b"pla"
    with pytest.raises(KeyError):
        backend.read_range("nope/x")
    backend.put("a/d/e", b"1")
    assert backend.list("a") == ["b", "d"]
    assert backend.list("a/b") == ["c"] and backend.list("missing") == []
    assert [(i.key, i.size) for i in backend.walk("a")] == [("a/b/c", 8), ("a/d/e", 1)]
    assert backend.delete("a/d/e") and not backend.delete("a/d/e")
    backend.delete_tree("a")
    assert not backend.exists("a/b/c") and list(backend.walk("a")) == []


def test_create_if_absent_has_one_winner(backend):
    assert backend.put_if_absent("x/acct", b"first")
    assert not backend.put_if_absent("x/acct", b"second")
    assert backend.get("x/acct") == b"first"


def test_writer_is_invisible_until_commit(backend):
    data = os.urandom(2 * S3_MIN_PART + 12345)  # several S3 parts
    writer = backend.writer("w/big")
    for i in range(0, len(data), 1 << 20):
        writer.write(data[i : i + (1 << 20)])
    assert not backend.exists("w/big")
    writer.commit()
    assert backend.size("w/big") == len(data)
    assert b"".join(backend.read_range("w/big")) == data
    assert b"".join(backend.read_range("w/big", 100, 200)) == data[100:200]
    aborted = backend.writer("w/aborted")
    aborted.write(os.urandom(S3_MIN_PART + 1))
    aborted.abort()
    assert not backend.exists("w/aborted") and backend.list("w") == ["big"]


@pytest.mark.parametrize(
    "sizes", [[300], [S3_MIN_PART, S3_MIN_PART, 77], [1000, 2000, 3000]], ids=["one", "large-pieces", "small-pieces"]
)
def test_compose(backend, sizes):
    """Server-side assembly when the pieces may be S3 parts, a copy through otherwise; sources stay."""
    pieces = [os.urandom(n) for n in sizes]
    for i, piece in enumerate(pieces):
        backend.put(f"p/{i:04d}", piece)
    backend.compose("joined/data", [f"p/{i:04d}" for i in range(len(pieces))])
    assert b"".join(backend.read_range("joined/data")) == b"".join(pieces)
    assert len(list(backend.walk("p"))) == len(pieces)
    with pytest.raises(KeyError):
        backend.compose("joined/other", ["p/missing"])


def test_incomplete_writes_are_purged(backend):
    import time

    writer = backend.writer("left/behind")
    writer.write(os.urandom(2 * S3_MIN_PART))  # on S3 a multipart upload is now open
    assert backend.purge_incomplete(time.time() - 3600) == 0  # younger than that: kept
    assert backend.purge_incomplete(time.time() + 3600) >= 1
    assert not backend.exists("left/behind")


def test_filesystem_writes_are_atomic(tmp_path):
    backend = FilesystemBackend(tmp_path / "fs")
    backend.put("x/y", b"one")
    # no temporary files left beside the object
    assert sorted(p.name for p in (tmp_path / "fs" / "x").iterdir()) == ["y"]
    with pytest.raises(ValueError):
        backend.put("x/../../escape", b"no")
    with pytest.raises(ValueError):
        backend.put("x/.hidden", b"no")


def test_s3_settings_are_checked(tmp_path):
    with pytest.raises(ValueError, match="unknown s3 storage settings: colour"):
        make_backend({"driver": "s3", "bucket": "b", "colour": "red"}, tmp_path)
    with pytest.raises(ValueError, match="at least"):
        make_backend({"driver": "s3", "bucket": "b", "chunksize": 1024}, tmp_path)
    with pytest.raises(ValueError, match="needs a bucket"):
        make_backend({"driver": "s3"}, tmp_path)
    backend = make_backend(
        {
            "driver": "s3",
            "bucket": "b",
            "regionendpoint": "http://127.0.0.1:1",
            "accesskey": "a",
            "secretkey": "s",
            "chunksize": str(8 << 20),
            "rootdirectory": "/reg/",
        },
        tmp_path,
    )
    assert isinstance(backend, S3Backend)
    assert (backend.bucket, backend.prefix, backend.chunk_size) == ("b", "reg", 8 << 20)


def test_registry_on_seaweedfs(seaweedfs, bucket, tmp_path):
    registry = start_registry(tmp_path / "s3reg", settings={"storage": seaweedfs.storage_settings(bucket, "registry")})
    try:
        layers = [random_layer(2 << 20), layer_tar({"s3": b"yes"})]
        archive, _ = docker_archive(layers)
        (tmp_path / "img.tar").write_bytes(archive)
        dest = f"docker://{registry.host}/s3/img:v1"
        skopeo("copy", "--dest-tls-verify=false", f"docker-archive:{tmp_path / 'img.tar'}", dest)
        info = json.loads(skopeo("inspect", "--tls-verify=false", dest).stdout)
        assert len(info["Layers"]) == 2
        skopeo("copy", "--src-tls-verify=false", dest, f"oci:{tmp_path / 'out'}:x")
        assert json.loads(skopeo("list-tags", "--tls-verify=false", f"docker://{registry.host}/s3/img").stdout)[
            "Tags"
        ] == ["v1"]
        assert httpx.get(f"{registry.url}/v2/_catalog").json() == {"repositories": ["s3/img"]}
        # the content is in the bucket, in distribution's layout, and nothing local
        s3 = seaweedfs.client()
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="registry/")["Contents"]]
        assert any(k.endswith("/data") and "/blobs/sha256/" in k for k in keys)
        assert not any("/_uploads/" in k for k in keys)  # finished sessions leave nothing
        assert sorted(p.name for p in (tmp_path / "s3reg" / "data").iterdir()) == ["token-secret"]
        # ranges are served from S3 too
        digest = info["Layers"][0]
        part = httpx.get(f"{registry.url}/v2/s3/img/blobs/{digest}", headers={"Range": "bytes=0-9"})
        assert part.status_code == 206 and len(part.content) == 10
        skopeo("delete", "--tls-verify=false", dest)
        assert skopeo("inspect", "--tls-verify=false", dest, check=False).returncode != 0
    finally:
        registry.stop()
        shutil.rmtree(tmp_path / "out", ignore_errors=True)
