"""The image data paths of ImageService and docker_archive on a real (vfs) storage driver:
import, load (plain, compressed, compressed layers, wrong diff IDs), commit's kept diff."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from dockyard import docker_archive
from dockyard.drivers import StorageDriver, load_drivers
from dockyard.errors import InvalidParameter
from dockyard.images import ImageService
from dockyard.models.container import ContainerConfig
from dockyard.store import Store
from dockyard.testing.conformance import entry, make_tar

pytestmark = pytest.mark.requires_root  # the applier sets owners


@pytest.fixture
def images(tmp_path: Path):
    loaded = load_drivers(tmp_path / "data", {"storage": "vfs"})
    store = Store(tmp_path / "data")
    service = ImageService(store, StorageDriver(loaded.pm), "vfs")
    yield service
    store.close()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer(name: str, content: bytes) -> bytes:
    return make_tar([(entry("etc", tarfile.DIRTYPE, 0o755), None), (entry(f"etc/{name}"), content)])


def docker_archive_bytes(layers: list[bytes], diff_ids: list[str] | None = None, tag: str = "t/img:1") -> bytes:
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": diff_ids or [sha(x) for x in layers]},
        }
    ).encode()
    image_id = hashlib.sha256(config).hexdigest()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        names = []
        for i, data in enumerate(layers):  # layers first, config and manifest last, as docker save writes them
            add(f"l{i}/layer.tar", data)
            names.append(f"l{i}/layer.tar")
        add(f"{image_id}.json", config)
        add("manifest.json", json.dumps([{"Config": f"{image_id}.json", "RepoTags": [tag], "Layers": names}]).encode())
    return out.getvalue()


def load(images: ImageService, tmp_path: Path, data: bytes) -> list[str]:
    path = tmp_path / "archive.tar"
    path.write_bytes(data)
    with open(path, "rb") as f:
        return docker_archive.load(images, f)


def blobs(images: ImageService) -> set[str]:
    return {p.name for p in images.store.blob_dir.iterdir() if len(p.name) == 64}


def test_load_plain_and_compressed(images, tmp_path) -> None:
    layers = [layer("a", b"1" * 5000), layer("b", b"2")]
    assert load(images, tmp_path, docker_archive_bytes(layers)) == ["Loaded image: t/img:1"]
    image_id = images.resolve("t/img:1")
    chain = list(reversed(images.layer_chain(images.top_layer(image_id))))
    assert [images.layer_tar(x).read_bytes() for x in chain] == layers  # kept byte for byte
    root = images.storage.mount(chain[-1])
    try:
        assert (root / "etc/a").read_bytes() == b"1" * 5000 and (root / "etc/b").read_bytes() == b"2"
    finally:
        images.storage.unmount(chain[-1])
    # docker save | gzip, and an archive whose layer.tar is itself compressed
    assert load(images, tmp_path, gzip.compress(docker_archive_bytes(layers, tag="t/gz:1"))) == ["Loaded image: t/gz:1"]
    assert images.resolve("t/gz:1") == image_id
    third = layer("c", b"3" * 70_000)
    archive = docker_archive_bytes([layers[0], gzip.compress(third)], [sha(layers[0]), sha(third)], tag="t/c:1")
    load(images, tmp_path, archive)
    top = images.top_layer(images.resolve("t/c:1"))
    assert images.layer_tar(top).read_bytes() == third


def test_load_with_a_wrong_diff_id_stores_nothing(images, tmp_path) -> None:
    layers = [layer("a", b"1"), layer("b", b"2")]
    bad = docker_archive_bytes(layers, [sha(layers[0]), sha(b"something else")])
    with pytest.raises(InvalidParameter, match="invalid archive: layer l1/layer.tar: layer content has diff ID"):
        load(images, tmp_path, bad)
    assert images.store.image_rows() == [] and images.storage.layers() == [] and blobs(images) == set()
    with pytest.raises(InvalidParameter, match="invalid archive"):
        load(images, tmp_path, docker_archive_bytes(layers)[:3000])


def test_import_decompresses_and_refuses_non_tars(images, tmp_path) -> None:
    data = layer("x", b"imported")
    image_id = images.import_tarball(io.BytesIO(gzip.compress(data)), "t/imp", "1")
    assert images.config(image_id).rootfs.diff_ids == [sha(data)]
    assert images.layer_tar(images.top_layer(image_id)).read_bytes() == data
    before = blobs(images)
    with pytest.raises(InvalidParameter, match="not a valid tar"):
        images.import_tarball(io.BytesIO(b"not a tar" * 100), "t/junk", "1")
    with pytest.raises(InvalidParameter, match="not a valid tar"):
        images.import_tarball(io.BytesIO(gzip.compress(b"x" * 10_000)[:-20]), "t/junk", "1")
    assert blobs(images) == before and len(images.storage.layers()) == 1


def test_commit_keeps_the_drivers_diff(images, tmp_path) -> None:
    base = images.import_tarball(io.BytesIO(layer("base", b"b")), "t/base", "1")
    box = "c" * 64
    images.storage.create_layer(box, images.top_layer(base))
    empty = images.child_image(base, ContainerConfig(), "nothing", box, skip_empty_diff=True)
    assert images.top_layer(empty) == images.top_layer(base)  # an empty diff adds no layer
    root = images.storage.mount(box)
    try:
        (root / "etc/new").write_bytes(b"n" * 3000)
    finally:
        images.storage.unmount(box)
    diff = images.storage.diff(box)
    try:
        expected = diff.read()
    finally:
        diff.close()
    committed = images.child_image(base, ContainerConfig(), "commit", box)
    top = images.top_layer(committed)
    assert images.layer_tar(top).read_bytes() == expected
    assert images.config(committed).rootfs.diff_ids[-1] == sha(expected)
