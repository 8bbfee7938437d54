"""Garbage collection: what goes, what stays, and the protocol that makes it safe while replicas serve.

The store-level tests run the collector in process on both backends and act
during its two waits (``sleep`` is the hook), as a request of a replica would;
the end-to-end test runs ``dockyard registry gc`` beside a serving registry on
SeaweedFS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from dockyard.registry.errors import RegistryError
from dockyard.registry.gc import CollectionRunning, Fence, collect
from dockyard.registry.layout import GC_STATE, GC_USES
from dockyard.registry.storage import S3_MIN_PART, FilesystemBackend, make_backend
from dockyard.registry.store import RegistryStore

from tests.helpers.registry import skopeo, start_registry
from tests.helpers.images import docker_archive, layer_tar, random_layer, schema2, sha256
from tests.helpers.waiting import holds_for, wait_for

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["filesystem", "s3"])
def store(request, tmp_path):
    if request.param == "filesystem":
        backend = FilesystemBackend(tmp_path / "fs")
    else:
        server = request.getfixturevalue("seaweedfs")
        backend = make_backend(
            server.storage_settings(request.getfixturevalue("bucket"), "reg", chunk_size=S3_MIN_PART), tmp_path
        )
    store = RegistryStore(backend, Fence(backend, window=0.2))
    store.whole_seconds = request.param == "s3"
    return store


def age(store: RegistryStore) -> None:
    """With a grace of 0, content counts as old once it is older than the collection's start; S3 keeps
    modification times in whole seconds, so what was written within the same second is (safely) young."""
    if store.whole_seconds:
        time.sleep(1.05)


def upload(store: RegistryStore, name: str, data: bytes) -> str:
    session = store.start_upload(name)
    writer = store.uploads.writer(session)
    writer.write(data)
    writer.close()
    return store.finish_upload(session, sha256(data))


def push(store: RegistryStore, name: str, tag: str, layers: list[bytes]) -> tuple[str, list[str]]:
    manifest, config, blobs = schema2(layers)
    digests = [upload(store, name, blob) for blob in [config, *blobs]]
    return store.put_manifest(name, tag, manifest, DOCKER_MANIFEST), digests


def blobs_in(store: RegistryStore) -> set[str]:
    return {f"sha256:{i.key.split('/')[-2]}" for i in store.backend.walk("docker/registry/v2/blobs")}


def test_collect_deletes_only_what_nothing_references(store):
    keep, keep_blobs = push(store, "app/keep", "v1", [random_layer(10_000, "a")])
    gone, gone_blobs = push(store, "app/gone", "v1", [random_layer(10_000, "b")])
    shared, _ = push(store, "app/gone", "v2", [random_layer(10_000, "a")])  # shares nothing but the name
    store.delete_manifest("app/gone", gone)  # by digest: the revision and the tag go
    age(store)
    dry = collect(store.backend, dry_run=True, grace=0)
    assert {d for d, _ in dry.blobs} == {gone, *gone_blobs} and blobs_in(store) >= {gone, *gone_blobs}
    report = collect(store.backend, grace=0, window=0.2)
    assert {d for d, _ in report.blobs} == {gone, *gone_blobs} and report.freed > 10_000
    assert not blobs_in(store) & {gone, *gone_blobs}
    assert {keep, *keep_blobs} <= blobs_in(store)
    # every other image is whole; the links to deleted blobs went with them
    for name, ref in (("app/keep", "v1"), ("app/gone", "v2")):
        body, _, _ = store.get_manifest(name, ref)
        manifest = json.loads(body)
        for descriptor in [manifest["config"], *manifest["layers"]]:
            assert store.repo_blob_size(name, descriptor["digest"]) == descriptor["size"]
    with pytest.raises(RegistryError, match="BLOB_UNKNOWN"):
        store.repo_blob_size("app/gone", gone_blobs[1])
    assert not store.backend.exists(GC_STATE) and list(store.backend.walk(GC_USES)) == []


def test_untagged_manifests_go_only_when_asked_and_only_when_old(store):
    old, old_blobs = push(store, "un/tagged", "v1", [random_layer(5_000, "o")])
    store.delete_manifest("un/tagged", "v1")  # the tag only: the revision stays
    age(store)
    assert not collect(store.backend, grace=0, window=0).blobs
    young_grace = collect(store.backend, delete_untagged=True, grace=3600, window=0)
    assert not young_grace.blobs and not young_grace.revisions  # pushed just now: inside the grace period
    report = collect(store.backend, delete_untagged=True, grace=0, window=0)
    assert report.revisions == [f"un/tagged@{old}"]
    assert {d for d, _ in report.blobs} == {old, *old_blobs}
    with pytest.raises(RegistryError, match="MANIFEST_UNKNOWN"):
        store.get_manifest("un/tagged", old)


def test_a_blob_uploaded_during_the_collection_survives(store):
    orphan = upload(store, "up/load", os.urandom(3000))  # referenced by nothing, old enough with grace 0
    age(store)
    fresh: list[str] = []

    def during(seconds: float) -> None:
        if not fresh:
            time.sleep(1.1)  # S3 keeps modification times in whole seconds: be clearly after the start
            fresh.append(upload(store, "up/load", os.urandom(3000)))

    report = collect(store.backend, grace=0, window=0, sleep=during)
    assert [d for d, _ in report.blobs] == [orphan]
    assert store.blob_size(fresh[0]) == 3000 and store.blob_size(orphan) is None


def test_a_blob_a_push_relies_on_is_spared(store):
    """A HEAD while a collection runs writes a use record: the blob stays, though nothing references it yet
    (the same blob goes when no push relied on it: see the tests above)."""
    orphan = upload(store, "rely/on", os.urandom(3000))
    age(store)
    calls = []

    def during(seconds: float) -> None:
        calls.append(seconds)
        if len(calls) == 1:
            assert store.check_blob_for_push("rely/on", orphan) == 3000
            assert list(store.backend.walk(GC_USES))  # the record exists while the state does

    report = collect(store.backend, grace=0, window=0.2, sleep=during)
    assert report.blobs == [] and store.blob_size(orphan) == 3000
    assert collect(store.backend, grace=0, window=0).blobs == [(orphan, 3000)]  # nobody relies on it now


def test_doomed_content_is_refused_then_written_again(store):
    """During the sweep: a HEAD says 404, a manifest referencing the blob is refused, and an upload of the
    same content waits until the collection is done with it, then stores it."""
    orphan_data = layer_tar({"doomed": b"x" * 4000})
    orphan = upload(store, "doom/ed", orphan_data)
    manifest, config, blobs = schema2([orphan_data])
    upload(store, "doom/ed", config)
    age(store)
    results: dict = {}

    def reupload() -> None:
        results["digest"] = upload(store, "doom/ed", orphan_data)
        results["when"] = time.monotonic()

    calls = []
    worker = threading.Thread(target=reupload)

    def during(seconds: float) -> None:
        calls.append(seconds)
        state = json.loads(store.backend.get(GC_STATE))
        if state["phase"] != "sweep":
            return
        assert orphan in state["doomed"]
        with pytest.raises(RegistryError, match="BLOB_UNKNOWN"):
            store.check_blob_for_push("doom/ed", orphan)
        assert not store.mount_blob("doom/other", "doom/ed", orphan)
        # the gzipped layer of the manifest is another blob: refer to the doomed one directly
        raw = json.loads(manifest)
        raw["layers"][0].update(digest=orphan, size=len(orphan_data))
        body = json.dumps(raw).encode()
        with pytest.raises(RegistryError, match="MANIFEST_BLOB_UNKNOWN"):
            store.put_manifest("doom/ed", "v1", body, DOCKER_MANIFEST)
        results["body"] = body
        worker.start()
        assert holds_for(lambda: "digest" not in results, 0.3)  # still waiting for the collector
        results["released"] = time.monotonic()

    report = collect(store.backend, grace=0, window=0.2, sleep=during)
    worker.join(30)
    assert orphan in [d for d, _ in report.blobs]
    assert results["digest"] == orphan and results["when"] > results["released"]
    assert store.blob_size(orphan) == len(orphan_data)  # written again after the collection
    upload(store, "doom/ed", config)  # (the config was an orphan too, and went)
    store.put_manifest("doom/ed", "v1", results["body"], DOCKER_MANIFEST)  # and now the push completes


def test_one_collection_at_a_time(store):
    store.backend.put(GC_STATE, b'{"phase": "mark"}')
    with pytest.raises(CollectionRunning):
        collect(store.backend, grace=0, window=0)
    assert store.backend.exists(GC_STATE)  # the other one's state is left alone


def bucket_bytes(seaweedfs, bucket: str) -> int:
    client = seaweedfs.client()
    total = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        total += sum(o["Size"] for o in page.get("Contents", []))
    return total


def test_gc_command_beside_a_serving_registry(seaweedfs, bucket, tmp_path):
    """Delete a tag, run ``dockyard registry gc`` while pushes go on: the space comes back, every other
    image still pulls, and what was pushed during the collection is whole."""
    settings = {"storage": seaweedfs.storage_settings(bucket, "reg"), "gc": {"window": 1, "grace": 0}}
    registry = start_registry(tmp_path / "reg", settings=settings)
    try:
        images = {}
        for name, size in (("big", 3 << 20), ("small", 200_000)):
            archive, _ = docker_archive([random_layer(size, name), layer_tar({name: b"1"})])
            (tmp_path / f"{name}.tar").write_bytes(archive)
            skopeo(
                "copy",
                "--dest-tls-verify=false",
                f"docker-archive:{tmp_path / f'{name}.tar'}",
                f"docker://{registry.host}/gc/{name}:v1",
            )
            info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{registry.host}/gc/{name}:v1").stdout)
            images[name] = info["Digest"]
            if name == "big":
                big_layer = info["Layers"][0]
        r = httpx.delete(f"{registry.url}/v2/gc/big/manifests/v1")  # the tag
        assert r.status_code == 202
        before = bucket_bytes(seaweedfs, bucket)
        config = tmp_path / "reg" / "registry.json"
        dry = subprocess.run(
            [
                sys.executable,
                "-m",
                "dockyard.cli",
                "registry",
                "gc",
                "--config",
                str(config),
                "--dry-run",
                "--delete-untagged",
            ],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            timeout=120,
        )
        assert dry.returncode == 0, dry.stderr
        assert f"manifest gc/big@{images['big']}: would delete" in dry.stdout
        assert bucket_bytes(seaweedfs, bucket) == before
        gc = subprocess.Popen(
            [sys.executable, "-m", "dockyard.cli", "registry", "gc", "--config", str(config), "--delete-untagged"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
        )
        # push while it collects (the state object says when it runs)
        archive, _ = docker_archive([random_layer(100_000, "during")])
        (tmp_path / "during.tar").write_bytes(archive)
        client = seaweedfs.client()
        assert wait_for(
            lambda: (
                gc.poll() is not None
                or client.list_objects_v2(Bucket=bucket, Prefix="reg/_dockyard/gc/state").get("KeyCount")
            ),
            timeout=30,
            interval=0.05,
        )
        assert gc.poll() is None, gc.communicate()
        skopeo(
            "copy",
            "--dest-tls-verify=false",
            f"docker-archive:{tmp_path / 'during.tar'}",
            f"docker://{registry.host}/gc/during:v1",
        )
        out, err = gc.communicate(timeout=120)
        assert gc.returncode == 0, err
        assert f"manifest gc/big@{images['big']}: deleted" in out
        after = bucket_bytes(seaweedfs, bucket)
        assert before - after > 2 << 20  # the big layer's 3 MB are back (less the ~0.1 MB pushed meanwhile)
        keys = [
            o["Key"]
            for o in client.list_objects_v2(Bucket=bucket, Prefix="reg/docker/registry/v2/blobs/").get("Contents", [])
        ]
        assert not [k for k in keys if big_layer[7:] in k]
        for name in ("small", "during"):
            skopeo(
                "copy",
                "--src-tls-verify=false",
                f"docker://{registry.host}/gc/{name}:v1",
                f"oci:{tmp_path / ('out-' + name)}:x",
            )
        assert (
            skopeo(
                "inspect", "--tls-verify=false", f"docker://{registry.host}/gc/big@{images['big']}", check=False
            ).returncode
            != 0
        )
    finally:
        registry.stop()
