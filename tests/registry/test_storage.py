"""The storage backend interface: the same checks on the file system and on S3
(moto, in process and as a local server the registry talks to)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import httpx
import pytest

from dockyard.registry.storage import FilesystemBackend, S3Backend

from tests.helpers.registry import free_port, skopeo, start_registry
from tests.helpers.requirements import require
from tests.helpers.waiting import wait_for
from tests.helpers.images import docker_archive, layer_tar, random_layer

S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(params=["filesystem", "s3"])
def backend(request, tmp_path, monkeypatch):
    if request.param == "filesystem":
        yield FilesystemBackend(tmp_path / "fs")
        return
    require("moto")
    for key, value in S3_ENV.items():
        monkeypatch.setenv(key, value)
    from moto import mock_aws

    with mock_aws():
        yield S3Backend("registry-test", prefix="reg", create_bucket=True)


def test_backend_contract(backend, tmp_path):
    assert backend.size("a/b/c") is None and not backend.exists("a/b/c")
    with pytest.raises(KeyError):
        backend.get("a/b/c")
    backend.put("a/b/c", b"hello")
    assert backend.get("a/b/c") == b"hello" and backend.size("a/b/c") == 5
    backend.put("a/b/c", b"replaced")
    assert backend.get("a/b/c") == b"replaced"
    source = tmp_path / "src"
    data = os.urandom(3 << 20)
    source.write_bytes(data)
    backend.put_file("a/big/data", source)
    assert backend.size("a/big/data") == len(data)
    assert b"".join(backend.read_range("a/big/data")) == data
    assert b"".join(backend.read_range("a/big/data", 100, 200)) == data[100:200]
    with pytest.raises(KeyError):
        backend.read_range("nope/x")
    backend.put("a/d/e", b"1")
    assert backend.list("a") == ["b", "big", "d"]
    assert backend.list("a/b") == ["c"] and backend.list("missing") == []
    assert backend.delete("a/d/e") and not backend.delete("a/d/e")
    backend.delete_tree("a/b")
    assert not backend.exists("a/b/c") and backend.exists("a/big/data")


def test_filesystem_writes_are_atomic(tmp_path):
    backend = FilesystemBackend(tmp_path / "fs")
    backend.put("x/y", b"one")
    # no temporary files left beside the object
    assert sorted(p.name for p in (tmp_path / "fs" / "x").iterdir()) == ["y"]


@pytest.fixture
def moto_server(tmp_path):
    require("moto")
    port = free_port()
    env = dict(os.environ, **S3_ENV)
    log = open(tmp_path / "moto.log", "ab")
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=log, stderr=log, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            httpx.get(url, timeout=1)
            return True
        except httpx.HTTPError:
            return False

    if not wait_for(lambda: answers() or process.poll() is not None, timeout=30) or process.poll() is not None:
        process.kill()
        pytest.fail(f"moto server did not start: {(tmp_path / 'moto.log').read_text()}")
    yield url
    process.terminate()
    process.wait(10)


@pytest.mark.requires_moto
@pytest.mark.requires_skopeo
def test_registry_on_s3(moto_server, tmp_path, monkeypatch):
    for key, value in S3_ENV.items():
        monkeypatch.setenv(key, value)
    registry = start_registry(tmp_path / "s3reg", "--storage-driver", "s3", "--s3-bucket", "images",
                              "--s3-endpoint", moto_server, "--s3-prefix", "registry", "--s3-create-bucket")
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
            "Tags"] == ["v1"]
        assert httpx.get(f"{registry.url}/v2/_catalog").json() == {"repositories": ["s3/img"]}
        # ranges are served from S3 too
        import boto3

        s3 = boto3.client("s3", endpoint_url=moto_server)
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="images", Prefix="registry/")["Contents"]]
        assert any(k.endswith("/data") and "/blobs/sha256/" in k for k in keys)
        skopeo("delete", "--tls-verify=false", dest)
        assert skopeo("inspect", "--tls-verify=false", dest, check=False).returncode != 0
    finally:
        registry.stop()
        shutil.rmtree(tmp_path / "out", ignore_errors=True)
