"""The ``http`` distribution driver against our registry (no daemon): push, pull,
skipping and mounting, resumption, verification, platform selection."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import httpx
import pytest

from dockyard.errors import InvalidParameter, NotFound
from dockyard.plugins.registry_http.driver import HttpDistributionDriver, choose_platform

from tests.helpers.images import layer_tar, random_layer, schema2, sha256
from tests.helpers.registry import Recorder, image_on_disk


@pytest.fixture
def driver(tmp_path):
    d = HttpDistributionDriver(tmp_path / "driver", {})
    yield d
    d.blobsums.close()


def test_push_then_pull_round_trip(driver, registry, tmp_path):
    layers = [random_layer(200_000), layer_tar({"etc/hello": b"world"})]
    image = image_on_disk(tmp_path, layers)
    progress = Recorder()
    result = driver.distribution_push(f"{registry.host}/rt/image:v1", image, {}, progress)
    assert progress.messages[0]["status"] == f"The push refers to repository [{registry.host}/rt/image]"
    assert progress.messages[-1]["aux"] == {"Tag": "v1", "Digest": result["Digest"], "Size": result["Size"]}
    assert progress.statuses().count("Pushed") == 2
    assert any(s.startswith("v1: digest: sha256:") for s in progress.statuses())

    work = tmp_path / "work"
    pulled = driver.distribution_pull(f"{registry.host}/rt/image:v1", {}, Recorder(), None, str(work))
    assert pulled["config"] == image["config"]
    assert pulled["digest"] == result["Digest"]
    assert pulled["repository"] == f"{registry.host}/rt/image" and pulled["tag"] == "v1"
    for (diff_id, path), layer in zip(pulled["layers"], layers, strict=True):
        assert diff_id == sha256(layer)
        assert Path(path).read_bytes() == layer
    # pushing again: every layer is already there; the manifest digest is the same (deterministic gzip)
    again = Recorder()
    assert driver.distribution_push(f"{registry.host}/rt/image:v1", image, {}, again)["Digest"] == result["Digest"]
    assert again.statuses().count("Layer already exists") == 2
    # pushing to another repository mounts the layers
    other = Recorder()
    driver.distribution_push(f"{registry.host}/rt/copy:v1", image, {}, other)
    assert other.statuses().count("Mounted from rt/image") == 2


def test_pull_by_digest_and_present_layers_are_skipped(driver, registry, tmp_path):
    layers = [layer_tar({"a": b"1"}), layer_tar({"b": b"2"})]
    result = driver.distribution_push(f"{registry.host}/rt/skip:v1", image_on_disk(tmp_path, layers), {}, Recorder())
    asked = []

    def layer_exists(parent, diff_id):
        asked.append(diff_id)
        return "chain-of-first" if diff_id == sha256(layers[0]) else None

    progress = Recorder()
    pulled = driver.distribution_pull(
        f"{registry.host}/rt/skip@{result['Digest']}", {}, progress, layer_exists, str(tmp_path / "w")
    )
    assert pulled["layers"][0][1] is None and pulled["layers"][1][1] is not None
    assert pulled["tag"] is None
    assert "Already exists" in progress.statuses()


def test_unknown_manifest(driver, registry, tmp_path):
    with pytest.raises(NotFound) as info:
        driver.distribution_pull(f"{registry.host}/rt/nope:v1", {}, Recorder(), None, str(tmp_path))
    assert "manifest unknown" in str(info.value)


def _registry_blob(registry, digest: str) -> Path:
    blobs = registry.root / "data" / "docker" / "registry" / "v2" / "blobs"
    return blobs / "sha256" / digest[7:9] / digest[7:] / "data"


def test_tampered_blob_is_refused(driver, registry, tmp_path):
    layer = random_layer(50_000)
    driver.distribution_push(f"{registry.host}/rt/tamper:v1", image_on_disk(tmp_path, [layer]), {}, Recorder())
    digest = driver.blobsums.lookup(sha256(layer), registry.host)[0][0]
    blob = _registry_blob(registry, digest)
    data = bytearray(blob.read_bytes())
    data[100] ^= 0xFF
    blob.write_bytes(bytes(data))
    work = tmp_path / "w"
    with pytest.raises(InvalidParameter, match="verification failed"):
        driver.distribution_pull(f"{registry.host}/rt/tamper:v1", {}, Recorder(), None, str(work))
    assert not list(work.iterdir()) and not list(driver.partial.iterdir())


def test_tampered_manifest_by_digest_is_refused(driver, registry, tmp_path):
    result = driver.distribution_push(
        f"{registry.host}/rt/mtamper:v1", image_on_disk(tmp_path, [layer_tar({"m": b"1"})]), {}, Recorder()
    )
    blob = _registry_blob(registry, result["Digest"])
    blob.write_bytes(blob.read_bytes().replace(b'"schemaVersion": 2', b'"schemaVersion":2 '))
    with pytest.raises(InvalidParameter, match="verification failed"):
        driver.distribution_pull(
            f"{registry.host}/rt/mtamper@{result['Digest']}", {}, Recorder(), None, str(tmp_path / "w")
        )


def test_interrupted_download_resumes(driver, registry, tmp_path):
    layer = random_layer(400_000)
    driver.distribution_push(f"{registry.host}/rt/resume:v1", image_on_disk(tmp_path, [layer]), {}, Recorder())
    digest = driver.blobsums.lookup(sha256(layer), registry.host)[0][0]
    full = _registry_blob(registry, digest).read_bytes()
    partial = driver.partial / digest.replace(":", "-")
    partial.write_bytes(full[:150_000])  # what an interrupted pull left
    pulled = driver.distribution_pull(f"{registry.host}/rt/resume:v1", {}, Recorder(), None, str(tmp_path / "w"))
    assert Path(pulled["layers"][0][1]).read_bytes() == layer
    assert not partial.exists()


def test_manifest_list_resolves_to_host_platform(driver, registry, tmp_path):
    http = httpx.Client(base_url=registry.url)
    manifests = []
    for arch in ("arm64", "amd64"):
        manifest, config, blobs = schema2([layer_tar({"arch": arch.encode()})])
        config = json.dumps({**json.loads(config), "architecture": arch}).encode()
        m = json.loads(manifest)
        m["config"].update(digest=sha256(config), size=len(config))
        manifest = json.dumps(m).encode()
        for blob in [config, *blobs]:
            http.post("/v2/rt/multi/blobs/uploads/", params={"digest": sha256(blob)}, content=blob)
        r = http.put(
            f"/v2/rt/multi/manifests/{sha256(manifest)}", content=manifest, headers={"Content-Type": m["mediaType"]}
        )
        assert r.status_code == 201
        manifests.append(
            {
                "mediaType": m["mediaType"],
                "digest": sha256(manifest),
                "size": len(manifest),
                "platform": {"architecture": arch, "os": "linux"},
            }
        )
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
            "manifests": manifests,
        }
    ).encode()
    assert (
        http.put(
            "/v2/rt/multi/manifests/latest",
            content=index,
            headers={"Content-Type": "application/vnd.docker.distribution.manifest.list.v2+json"},
        ).status_code
        == 201
    )
    pulled = driver.distribution_pull(f"{registry.host}/rt/multi", {}, Recorder(), None, str(tmp_path / "w"))
    from dockyard.plugins.registry_http.driver import host_platform

    assert json.loads(pulled["config"])["architecture"] == host_platform()[1]
    assert choose_platform(json.loads(index), ("linux", "arm64", "v8"))["digest"] == manifests[0]["digest"]
    with pytest.raises(NotFound):
        choose_platform(json.loads(index), ("linux", "s390x", None))


def test_gzip_is_deterministic(driver, tmp_path):
    tar = tmp_path / "l.tar"
    tar.write_bytes(random_layer(10_000))
    a = driver._compress(tar, tmp_path / "a.gz")
    b = driver._compress(tar, tmp_path / "b.gz")
    assert a == b
    assert gzip.decompress((tmp_path / "a.gz").read_bytes()) == tar.read_bytes()
    assert a[0] == "sha256:" + hashlib.sha256((tmp_path / "a.gz").read_bytes()).hexdigest()


def test_layers_are_handed_over_as_they_are_verified(driver, registry, tmp_path):
    layers = [random_layer(300_000), layer_tar({"b": b"2"}), layer_tar({"c": b"3"})]
    driver.distribution_push(f"{registry.host}/rt/ready:v1", image_on_disk(tmp_path, layers), {}, Recorder())
    handed: dict[int, tuple[list[str], bytes, str]] = {}

    def layer_ready(index, diff_ids, path, progress_id):
        handed[index] = (diff_ids, Path(path).read_bytes(), progress_id)

    pulled = driver.distribution_pull(
        f"{registry.host}/rt/ready:v1", {}, Recorder(), None, str(tmp_path / "w"), layer_ready
    )
    assert sorted(handed) == [0, 1, 2]
    for index, layer in enumerate(layers):
        diff_ids, content, progress_id = handed[index]
        assert diff_ids == [sha256(x) for x in layers] and content == layer
        assert pulled["layer_ids"][index] == progress_id


def test_zstd_push_is_an_oci_image_and_pulls_back(tmp_path, registry):
    zstd_driver = HttpDistributionDriver(tmp_path / "zd", {"compression": "zstd"})
    try:
        layers = [random_layer(100_000), layer_tar({"etc/z": b"zstd"})]
        result = zstd_driver.distribution_push(
            f"{registry.host}/rt/zstd:v1", image_on_disk(tmp_path, layers), {}, Recorder()
        )
        manifest = httpx.get(
            f"{registry.url}/v2/rt/zstd/manifests/v1", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}
        ).json()
        assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
        assert {layer["mediaType"] for layer in manifest["layers"]} == {"application/vnd.oci.image.layer.v1.tar+zstd"}
        blob = httpx.get(f"{registry.url}/v2/rt/zstd/blobs/{manifest['layers'][0]['digest']}").content
        assert blob[:4] == b"\x28\xb5\x2f\xfd"
        pulled = zstd_driver.distribution_pull(f"{registry.host}/rt/zstd:v1", {}, Recorder(), None, str(tmp_path / "w"))
        assert pulled["digest"] == result["Digest"]
        assert [Path(p).read_bytes() for _, p in pulled["layers"]] == layers
    finally:
        zstd_driver.blobsums.close()


def test_concurrency_options_are_checked(tmp_path):
    d = HttpDistributionDriver(tmp_path / "c", {"max-concurrent-downloads": "1", "max-concurrent-uploads": "2"})
    assert (d.max_downloads, d.max_uploads) == (1, 2)
    d.blobsums.close()
    for bad in (
        {"max-concurrent-downloads": "0"},
        {"max-concurrent-uploads": "x"},
        {"compression": "lz4"},
        {"compression-level": "fast"},
        {"compression-level": "12"},
    ):
        with pytest.raises(InvalidParameter):
            HttpDistributionDriver(tmp_path / "bad", bad)
