"""Bad input gets a clear JSON error with the right status, and nothing half-stored."""

from __future__ import annotations

import gzip
import json

import httpx
import pytest

from tests.helpers.daemon import busybox_rootfs_tar

pytestmark = [pytest.mark.requires_root, pytest.mark.requires_lxc, pytest.mark.integration]


@pytest.fixture(scope="module")
def api(daemon):
    with httpx.Client(
        transport=httpx.HTTPTransport(uds=str(daemon.socket)), base_url="http://dockyard", timeout=60
    ) as client:
        yield client


def _error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()["message"]


def _image_count(api) -> int:
    return len(api.get("/v1.41/images/json", params={"all": 1}).json())


def test_ping_headers(api):
    r = api.head("/_ping")
    assert r.status_code == 200 and r.headers["api-version"] == "1.41" and r.headers["ostype"] == "linux"
    assert api.get("/v1.41/_ping").text == "OK"


def test_too_new_version(api):
    message = _error(api.get("/v1.99/version"), 400)
    assert "too new" in message and "1.41" in message


def test_import_not_a_tar_stores_nothing(api):
    before = _image_count(api)
    r = api.post("/v1.41/images/create", params={"fromSrc": "-", "repo": "junk"}, content=b"this is not a tar" * 100)
    assert r.status_code == 200  # errors after the body is read travel in the JSON stream, as in Docker
    message = json.loads(r.text.splitlines()[-1])
    assert "not a valid tar" in message["error"]
    assert _image_count(api) == before
    assert _error(api.get("/v1.41/images/junk/json"), 404) == "No such image: junk"


def test_import_gzip(api):
    r = api.post(
        "/v1.41/images/create",
        params={"fromSrc": "-", "repo": "gz", "tag": "1"},
        content=gzip.compress(busybox_rootfs_tar()),
    )
    assert r.status_code == 200
    image_id = json.loads(r.text.splitlines()[-1])["status"]
    assert image_id.startswith("sha256:")
    inspected = api.get("/v1.41/images/gz:1/json").json()
    assert inspected["Id"] == image_id and inspected["RepoTags"] == ["gz:1"]
    # same content, same layer: the diff ID matches busybox's
    assert inspected["RootFS"]["Layers"] == api.get("/v1.41/images/busybox/json").json()["RootFS"]["Layers"]


def test_unknown_image(api):
    assert _error(api.post("/v1.41/containers/create", json={"Image": "ghost"}), 404) == "No such image: ghost"


def test_malformed_json(api):
    message = _error(
        api.post("/v1.41/containers/create", content=b"{not json", headers={"Content-Type": "application/json"}), 400
    )
    assert "invalid JSON" in message
    _error(api.post("/v1.41/containers/create", json={"Image": "busybox", "Tty": "maybe"}), 400)


def test_name_clash_and_running_removal(api):
    body = {"Image": "busybox", "Cmd": ["sleep", "30"]}
    first = api.post("/v1.41/containers/create", params={"name": "err-clash"}, json=body)
    assert first.status_code == 201
    assert "already in use" in _error(
        api.post("/v1.41/containers/create", params={"name": "err-clash"}, json=body), 409
    )
    cid = first.json()["Id"]
    assert api.post(f"/v1.41/containers/{cid}/start").status_code == 204
    assert api.post(f"/v1.41/containers/{cid}/start").status_code == 304
    assert "cannot remove a running container" in _error(api.delete(f"/v1.41/containers/{cid}"), 409)
    assert api.delete(f"/v1.41/containers/{cid}", params={"force": 1}).status_code == 204
    assert _error(api.get(f"/v1.41/containers/{cid}/json"), 404) == f"No such container: {cid}"


def test_short_id_and_name_resolution(api):
    cid = api.post(
        "/v1.41/containers/create", params={"name": "err-short"}, json={"Image": "busybox", "Cmd": ["true"]}
    ).json()["Id"]
    assert api.get(f"/v1.41/containers/{cid[:12]}/json").json()["Id"] == cid
    assert api.get("/v1.41/containers/err-short/json").json()["Id"] == cid
    image = api.get("/v1.41/images/busybox/json").json()["Id"]
    assert api.get(f"/v1.41/images/{image[7:19]}/json").json()["Id"] == image
    api.delete(f"/v1.41/containers/{cid}")


def test_list_filters(api):
    cid = api.post(
        "/v1.41/containers/create", params={"name": "err-filter"}, json={"Image": "busybox", "Cmd": ["true"]}
    ).json()["Id"]
    created = api.get("/v1.41/containers/json", params={"all": 1, "filters": json.dumps({"status": ["created"]})})
    assert cid in [c["Id"] for c in created.json()]
    exited = api.get("/v1.41/containers/json", params={"all": 1, "filters": json.dumps({"status": {"exited": True}})})
    assert cid not in [c["Id"] for c in exited.json()]
    api.delete(f"/v1.41/containers/{cid}")
