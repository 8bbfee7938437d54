"""What a crash leaves behind is cleaned when the engine opens again, and bad
input stores nothing."""

from __future__ import annotations

import io
import tarfile

import pytest

from tests.helpers.requirements import require_that

from dockyard.engine import Engine
from dockyard.errors import Conflict, InvalidParameter, NotFound

pytestmark = pytest.mark.requires_root


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _open(root) -> Engine:
    return Engine.open(root, storage="vfs", network="none")


def test_orphan_layer_from_a_crash_is_removed(tmp_path):
    engine = _open(tmp_path)
    try:
        engine.storage.create_layer("f" * 64, None)  # content written, metadata never committed
        assert engine.storage.exists("f" * 64)
    finally:
        engine.close()
    engine = _open(tmp_path)
    try:
        assert not engine.storage.exists("f" * 64)
    finally:
        engine.close()


def test_bad_tar_stores_nothing(tmp_path):
    engine = _open(tmp_path)
    try:
        with pytest.raises(InvalidParameter):
            engine.images.import_tarball(io.BytesIO(b"not a tar at all" * 64), "junk", "latest")
        assert engine.storage.layers() == []
        assert engine.store.image_rows() == []
        assert [p.name for p in engine.store.blob_dir.iterdir()] == []
        with pytest.raises(NotFound):
            engine.images.resolve("junk")
    finally:
        engine.close()


def test_import_tag_and_delete_release_layers(tmp_path):
    engine = _open(tmp_path)
    try:
        image_id = engine.images.import_tarball(io.BytesIO(_tar({"hello": b"world"})), "one", "v1")
        again = engine.images.import_tarball(io.BytesIO(_tar({"hello": b"world"})), "two", "v1")
        assert engine.images.resolve("one:v1") == image_id and engine.images.resolve("two:v1") == again
        assert len(engine.storage.layers()) == 1  # one layer shared by both images
        engine.images.delete("one:v1")
        assert len(engine.storage.layers()) == 1
        engine.images.delete("two:v1")
        assert engine.storage.layers() == []
    finally:
        engine.close()


def test_data_root_keeps_its_storage_driver(tmp_path):
    _open(tmp_path).close()
    with pytest.raises(Conflict, match="holds layers of the 'vfs' storage driver"):
        Engine.open(tmp_path, storage="no-such-driver", network="none")


def test_storage_migration_moves_images_and_container_layers(tmp_path):
    import asyncio

    from dockyard.drivers import available
    from dockyard.models.container import CreateRequest

    why = available("storage").get("overlay")
    require_that(why is None, "the overlay storage driver", why or "")
    engine = _open(tmp_path)
    try:
        image_id = engine.images.import_tarball(
            io.BytesIO(_tar({"bin/tool": b"#!/bin/sh\n", "etc/conf": b"a"})), "base", "1"
        )
        created = asyncio.run(
            engine.containers.create(CreateRequest.model_validate({"Image": "base:1", "Cmd": ["/bin/tool"]}), "moved")
        )
        root = engine.storage.mount(created["Id"])
        (root / "etc" / "conf").write_text("changed in the container")
        engine.storage.unmount(created["Id"])
    finally:
        engine.close()
    with pytest.raises(Conflict, match="--storage-migrate"):
        Engine.open(tmp_path, storage="overlay", network="none")
    engine = Engine.open(tmp_path, storage="overlay", network="none", migrate_storage=True)
    try:
        assert engine.drivers.names["storage"] == "overlay"
        assert engine.images.resolve("base:1") == image_id
        root = engine.storage.mount(created["Id"])
        try:
            assert (root / "etc" / "conf").read_text() == "changed in the container"
            assert (root / "bin" / "tool").read_bytes() == b"#!/bin/sh\n"
        finally:
            engine.storage.unmount(created["Id"])
        assert not list((tmp_path / "storage" / "vfs").rglob("conf"))  # the old driver's copies are gone
    finally:
        engine.close()
