"""The services under the routes: who emits which event, and who asks whom before removing anything.

An engine on the vfs storage driver and stub exec and network drivers (nothing runs);
the routes over these services are tested end to end in tests/integration.
"""

from __future__ import annotations

import asyncio
import io
import tarfile

import pytest

from dockyard.engine import Engine
from dockyard.errors import Conflict, InvalidParameter, NotFound
from dockyard.filters import Filters
from dockyard.models.container import CreateRequest
from tests.helpers.drivers import StubExec, StubNetwork, use_drivers

pytestmark = pytest.mark.requires_root  # vfs keeps owners and modes


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def engine(tmp_path, monkeypatch):
    use_drivers(monkeypatch, exec={"stub": StubExec}, network={"stub": StubNetwork})
    engine = Engine.open(tmp_path, storage="vfs", execution="stub", network="stub")
    yield engine
    engine.close()


def _events(engine: Engine) -> list[tuple[str, str, str]]:
    return [(e["Type"], e["Action"], e["Actor"]["Attributes"].get("name", "")) for e in engine.events.history]


def test_image_events_come_from_the_image_service(engine):
    image_id = engine.images.import_tarball(io.BytesIO(_tar({"bin/tool": b"x"})), "docker.io/library/base", "1")
    engine.images.tag(image_id, "localhost:5000/base", "2")
    assert engine.images.resolve("base:1") == image_id  # one reference parser: the familiar name is stored
    engine.images.delete("localhost:5000/base:2")
    engine.images.delete("base:1")
    # Docker's actions (untag, delete), each named after what the user removed
    assert _events(engine) == [
        ("image", "import", "base:1"),
        ("image", "tag", "localhost:5000/base:2"),
        ("image", "untag", "localhost:5000/base:2"),
        ("image", "untag", "base:1"),
        ("image", "delete", "base:1"),
    ]


def test_images_and_volumes_ask_the_containers_before_going(engine):
    engine.images.import_tarball(io.BytesIO(_tar({"bin/tool": b"x"})), "base", "1")
    request = CreateRequest.model_validate(
        {"Image": "base:1", "Cmd": ["/bin/tool"], "HostConfig": {"Binds": ["data:/data"]}}
    )
    created = asyncio.run(engine.containers.create(request, "user"))
    engine.volumes.create("spare")
    with pytest.raises(Conflict, match="image is being used by stopped container"):
        engine.images.delete(engine.images.resolve("base:1"))  # by ID: the container's image stays
    with pytest.raises(Conflict, match="volume is in use"):
        engine.volumes.remove("data")
    assert engine.volumes.prune() == (["spare"], 0)
    assert [v["Name"] for v in engine.volumes.list()] == ["data"]
    assert ("container", "create", "user") in _events(engine)
    asyncio.run(engine.containers.remove(created["Id"]))
    assert engine.volumes.prune() == (["data"], 0)


def test_push_tags_and_search_filters(engine):
    image_id = engine.images.import_tarball(io.BytesIO(_tar({"a": b"1"})), "localhost:5000/app", "v1")
    engine.images.tag(image_id, "localhost:5000/app", "v2")
    assert engine.images.push_tags("localhost:5000/app") == ["v1", "v2"]
    assert engine.images.push_tags("localhost:5000/app", "v2") == ["v2"]
    with pytest.raises(NotFound, match="tag does not exist: localhost:5000/app:v3"):
        engine.images.push_tags("localhost:5000/app", "v3")
    with pytest.raises(NotFound, match="An image does not exist locally with the tag: localhost:5000/other"):
        engine.images.push_tags("localhost:5000/other")
    from dockyard.transfer import search_images

    with pytest.raises(InvalidParameter, match="Invalid filter 'is-great'"):
        search_images(engine, "x", 10, {}, Filters({"is-great": ["true"]}))
    with pytest.raises(InvalidParameter, match="Invalid filter 'stars=many'"):
        search_images(engine, "x", 10, {}, Filters({"stars": ["many"]}))
    with pytest.raises(InvalidParameter, match="outside the range"):
        search_images(engine, "x", 0, {}, Filters())
