"""The registry server against the OCI Distribution Spec, over HTTP (no auth)."""

from __future__ import annotations

import gzip
import json
import os

import httpx
import pytest

from tests.helpers.images import layer_tar, schema2, sha256
from tests.helpers.registry import push_image, upload

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


@pytest.fixture
def http(registry):
    with httpx.Client(base_url=registry.url, timeout=30) as client:
        yield client


def codes(response: httpx.Response) -> list[str]:
    return [e["code"] for e in response.json()["errors"]]


def test_base_endpoint(http):
    r = http.get("/v2/")
    assert r.status_code == 200
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_monolithic_upload_and_blob_reads(http):
    data = os.urandom(100_000)
    digest = upload(http, "a/b", data)
    r = http.get(f"/v2/a/b/blobs/{digest}")
    assert r.status_code == 200 and r.content == data
    assert r.headers["Docker-Content-Digest"] == digest
    head = http.head(f"/v2/a/b/blobs/{digest}")
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(data)
    part = http.get(f"/v2/a/b/blobs/{digest}", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == data[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    # per-repository visibility: another repository does not see it
    r = http.get(f"/v2/other/blobs/{digest}")
    assert r.status_code == 404 and codes(r) == ["BLOB_UNKNOWN"]


def test_post_put_upload_and_status(http):
    data = b"hello registry"
    r = http.post("/v2/up/blobs/uploads/")
    assert r.status_code == 202
    location = r.headers["Location"]
    assert r.headers["Range"] == "0-0" and r.headers["Docker-Upload-UUID"]
    r = http.get(location)
    assert r.status_code == 204
    r = http.put(location, params={"digest": sha256(data)}, content=data)
    assert r.status_code == 201, r.text
    assert http.get(r.headers["Location"]).content == data


def test_chunked_upload_with_ranges(http):
    data = os.urandom(300_000)
    r = http.post("/v2/chunky/blobs/uploads/")
    location = r.headers["Location"]
    r = http.patch(
        location,
        content=data[:100_000],
        headers={"Content-Range": "0-99999", "Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 202 and r.headers["Range"] == "0-99999"
    # a chunk that does not continue where the upload is: 416, and nothing appended
    r = http.patch(location, content=data[150_000:200_000], headers={"Content-Range": "150000-199999"})
    assert r.status_code == 416
    assert http.get(location).headers["Range"] == "0-99999"
    r = http.patch(location, content=data[100_000:250_000], headers={"Content-Range": "100000-249999"})
    assert r.status_code == 202 and r.headers["Range"] == "0-249999"
    r = http.put(
        location, params={"digest": sha256(data)}, content=data[250_000:], headers={"Content-Range": "250000-299999"}
    )
    assert r.status_code == 201, r.text
    assert http.get(f"/v2/chunky/blobs/{sha256(data)}").content == data


def test_streamed_patch_without_range(http):
    data = os.urandom(3 << 20)

    def chunks():
        for i in range(0, len(data), 65536):
            yield data[i : i + 65536]

    r = http.post("/v2/stream/blobs/uploads/")
    location = r.headers["Location"]
    r = http.patch(location, content=chunks())
    assert r.status_code == 202
    r = http.put(location, params={"digest": sha256(data)})
    assert r.status_code == 201
    assert http.head(f"/v2/stream/blobs/{sha256(data)}").status_code == 200


def test_digest_mismatch_leaves_nothing(http, registry):
    data = b"real content"
    wrong = sha256(b"other content")
    r = http.post("/v2/bad/blobs/uploads/", params={"digest": wrong}, content=data)
    assert r.status_code == 400 and codes(r) == ["DIGEST_INVALID"]
    assert http.head(f"/v2/bad/blobs/{wrong}").status_code == 404
    assert http.head(f"/v2/bad/blobs/{sha256(data)}").status_code == 404
    blobs = registry.root / "data" / "docker" / "registry" / "v2" / "blobs" / "sha256"
    for digest in (wrong, sha256(data)):
        assert not (blobs / digest[7:9] / digest[7:]).exists()
    # the failed session is gone from storage too
    sessions = registry.root / "data" / "docker" / "registry" / "v2" / "repositories" / "bad" / "_uploads"
    assert not sessions.exists() or not list(sessions.iterdir())


def test_interrupted_upload_is_invisible_and_cancel(http):
    data = os.urandom(50_000)
    r = http.post("/v2/cancel/blobs/uploads/")
    location = r.headers["Location"]
    http.patch(location, content=data[:20_000])
    assert http.head(f"/v2/cancel/blobs/{sha256(data)}").status_code == 404
    assert http.delete(location).status_code == 204
    r = http.get(location)
    assert r.status_code == 404 and codes(r) == ["BLOB_UPLOAD_UNKNOWN"]
    r = http.put(location, params={"digest": sha256(data)}, content=data[20_000:])
    assert r.status_code == 404


def test_cross_repository_mount(http):
    digest = upload(http, "src/repo", b"shared layer")
    r = http.post("/v2/dst/repo/blobs/uploads/", params={"mount": digest, "from": "src/repo"})
    assert r.status_code == 201 and r.headers["Docker-Content-Digest"] == digest
    assert http.get(f"/v2/dst/repo/blobs/{digest}").content == b"shared layer"
    # the source lacks it: an upload session instead
    r = http.post("/v2/dst/repo/blobs/uploads/", params={"mount": sha256(b"nope"), "from": "src/repo"})
    assert r.status_code == 202 and "/blobs/uploads/" in r.headers["Location"]


def test_manifest_put_get_head_delete(http):
    layers = [layer_tar({"a": b"1"}), layer_tar({"b": b"2"})]
    manifest, digest = push_image(http, "img/one", "v1", layers)
    for ref in ("v1", digest):
        r = http.get(f"/v2/img/one/manifests/{ref}", headers={"Accept": DOCKER_MANIFEST})
        assert r.status_code == 200 and r.content == manifest
        assert r.headers["Content-Type"] == DOCKER_MANIFEST
        assert r.headers["Docker-Content-Digest"] == digest
    head = http.head("/v2/img/one/manifests/v1")
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(manifest)
    assert http.get("/v2/img/one/tags/list").json() == {"name": "img/one", "tags": ["v1"]}
    assert http.delete(f"/v2/img/one/manifests/{digest}").status_code == 202
    r = http.get(f"/v2/img/one/manifests/{digest}")
    assert r.status_code == 404 and codes(r) == ["MANIFEST_UNKNOWN"]
    assert http.get("/v2/img/one/manifests/v1").status_code == 404


def test_manifest_with_unknown_blobs_is_refused(http):
    manifest, config, blobs = schema2([layer_tar({"x": b"y"})])
    upload(http, "img/missing", config)
    r = http.put("/v2/img/missing/manifests/v1", content=manifest, headers={"Content-Type": DOCKER_MANIFEST})
    assert r.status_code == 400 and codes(r) == ["MANIFEST_BLOB_UNKNOWN"]
    assert http.get("/v2/img/missing/manifests/v1").status_code == 404


def test_manifest_digest_must_match(http):
    manifest, config, blobs = schema2([layer_tar({"x": b"z"})])
    for blob in [config, *blobs]:
        upload(http, "img/tamper", blob)
    tampered = manifest.replace(b'"schemaVersion": 2', b'"schemaVersion":  2')
    r = http.put(
        f"/v2/img/tamper/manifests/{sha256(manifest)}", content=tampered, headers={"Content-Type": DOCKER_MANIFEST}
    )
    assert r.status_code == 400 and codes(r) == ["DIGEST_INVALID"]
    r = http.put("/v2/img/tamper/manifests/v1", content=b"{not json", headers={"Content-Type": DOCKER_MANIFEST})
    assert r.status_code == 400 and codes(r) == ["MANIFEST_INVALID"]


def test_oci_manifest_and_indexes(http):
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    layer = gzip.compress(layer_tar({"f": b"oci"}), mtime=0)
    upload(http, "oci/img", config)
    upload(http, "oci/img", layer)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": sha256(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    r = http.put(f"/v2/oci/img/manifests/{sha256(manifest)}", content=manifest, headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 201, r.text
    for media_type in (OCI_INDEX, DOCKER_LIST):
        index = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": media_type,
                "manifests": [
                    {
                        "mediaType": OCI_MANIFEST,
                        "digest": sha256(manifest),
                        "size": len(manifest),
                        "platform": {"architecture": "amd64", "os": "linux"},
                    }
                ],
            }
        ).encode()
        r = http.put(
            f"/v2/oci/img/manifests/multi-{media_type.split('.')[-2]}",
            content=index,
            headers={"Content-Type": media_type},
        )
        assert r.status_code == 201, r.text
        r = http.get(f"/v2/oci/img/manifests/multi-{media_type.split('.')[-2]}")
        assert r.headers["Content-Type"] == media_type and r.content == index
    missing = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": sha256(b"none"), "size": 4}],
        }
    ).encode()
    r = http.put("/v2/oci/img/manifests/broken", content=missing, headers={"Content-Type": OCI_INDEX})
    assert r.status_code == 400 and codes(r) == ["MANIFEST_BLOB_UNKNOWN"]


def test_tags_and_catalog_pagination(http):
    for tag in ("c", "a", "b", "d"):
        push_image(http, "pages/repo", tag, [layer_tar({"t": tag.encode()})])
    for name in ("pages/x", "pages/y"):
        push_image(http, name, "v", [layer_tar({"n": name.encode()})])
    r = http.get("/v2/pages/repo/tags/list", params={"n": 2})
    assert r.json()["tags"] == ["a", "b"]
    assert r.headers["Link"] == '</v2/pages/repo/tags/list?last=b&n=2>; rel="next"'
    r = http.get("/v2/pages/repo/tags/list", params={"n": 2, "last": "b"})
    assert r.json()["tags"] == ["c", "d"] and "Link" not in r.headers
    r = http.get("/v2/_catalog", params={"n": 2, "last": "pages"})
    assert r.json() == {"repositories": ["pages/repo", "pages/x"]}
    assert r.headers["Link"] == '</v2/_catalog?last=pages%2Fx&n=2>; rel="next"'
    r = http.get("/v2/_catalog", params={"n": 1, "last": "pages/x"})
    assert r.json() == {"repositories": ["pages/y"]}
    assert "pages/repo" in http.get("/v2/_catalog").json()["repositories"]


def test_error_codes(http):
    r = http.get("/v2/UPPER/tags/list")
    assert r.status_code == 400 and codes(r) == ["NAME_INVALID"]
    r = http.get("/v2/never/pushed/tags/list")
    assert r.status_code == 404 and codes(r) == ["NAME_UNKNOWN"]
    r = http.get(f"/v2/never/pushed/blobs/{sha256(b'x')}")
    assert r.status_code == 404 and codes(r) == ["BLOB_UNKNOWN"]
    r = http.get("/v2/never/pushed/manifests/latest")
    assert r.status_code == 404 and codes(r) == ["MANIFEST_UNKNOWN"]
    r = http.put("/v2/x/blobs/uploads/nonexistent", params={"digest": sha256(b"")})
    assert r.status_code == 404 and codes(r) == ["BLOB_UPLOAD_UNKNOWN"]
    r = http.get("/v2/x/blobs/sha256:short")
    assert r.status_code == 400 and codes(r) == ["DIGEST_INVALID"]


def test_blob_delete(http):
    digest = upload(http, "del/me", b"to delete")
    assert http.delete(f"/v2/del/me/blobs/{digest}").status_code == 202
    assert http.head(f"/v2/del/me/blobs/{digest}").status_code == 404
