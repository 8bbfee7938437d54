"""Cross-checks: skopeo against our registry, our client against Debian's
docker-registry (distribution 2.8), and one storage directory served by both."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockyard.plugins.registry_http.driver import HttpDistributionDriver

from tests.helpers.registry import USERS, make_users, skopeo, start_docker_registry, start_registry
from tests.helpers.images import docker_archive, layer_tar, random_layer, sha256
from tests.helpers.registry import Recorder, image_on_disk


@pytest.fixture
def driver(tmp_path):
    d = HttpDistributionDriver(tmp_path / "driver", {})
    yield d
    d.blobsums.close()


@pytest.mark.requires_skopeo
def test_skopeo_copy_inspect_list_delete(registry, tmp_path):
    layers = [random_layer(300_000), layer_tar({"data/f": b"hi\n"})]
    archive, image_id = docker_archive(layers)
    (tmp_path / "img.tar").write_bytes(archive)
    dest = f"docker://{registry.host}/skopeo/test:v1"
    skopeo("copy", "--dest-tls-verify=false", f"docker-archive:{tmp_path / 'img.tar'}", dest)
    info = json.loads(skopeo("inspect", "--tls-verify=false", dest).stdout)
    assert info["RepoTags"] == ["v1"] and len(info["Layers"]) == 2
    config = json.loads(skopeo("inspect", "--config", "--tls-verify=false", dest).stdout)
    assert config["rootfs"]["diff_ids"] == [sha256(layer) for layer in layers]
    # copy within the registry (cross-repository), as OCI, and back out
    skopeo(
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--format",
        "oci",
        dest,
        f"docker://{registry.host}/skopeo/oci:v2",
    )
    raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{registry.host}/skopeo/oci:v2").stdout)
    assert raw["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    skopeo("copy", "--src-tls-verify=false", dest, f"oci:{tmp_path / 'layout'}:x")
    tags = json.loads(skopeo("list-tags", "--tls-verify=false", f"docker://{registry.host}/skopeo/test").stdout)
    assert tags["Tags"] == ["v1"]
    skopeo("delete", "--tls-verify=false", dest)
    result = skopeo("inspect", "--tls-verify=false", dest, check=False)
    assert result.returncode != 0 and "manifest unknown" in result.stderr


@pytest.mark.requires_skopeo
def test_skopeo_with_token_auth(token_registry, tmp_path):
    archive, _ = docker_archive([layer_tar({"a": b"b"})])
    (tmp_path / "img.tar").write_bytes(archive)
    src = f"docker-archive:{tmp_path / 'img.tar'}"
    reg = token_registry
    skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        f"alice:{USERS['alice']}",
        src,
        f"docker://{reg.host}/alice/sk:v1",
    )
    denied = skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        f"alice:{USERS['alice']}",
        src,
        f"docker://{reg.host}/bob/sk:v1",
        check=False,
    )
    assert denied.returncode != 0 and "denied" in denied.stderr
    wrong = skopeo(
        "inspect", "--tls-verify=false", "--creds", "alice:nope", f"docker://{reg.host}/alice/sk:v1", check=False
    )
    assert wrong.returncode != 0
    skopeo("inspect", "--tls-verify=false", f"docker://{reg.host}/alice/sk:v1")  # anonymous pull of public


@pytest.mark.requires_docker_registry
def test_our_client_against_docker_registry(driver, tmp_path):
    server = start_docker_registry(tmp_path / "distribution")
    try:
        layers = [random_layer(200_000), layer_tar({"x": b"y"})]
        image = image_on_disk(tmp_path, layers)
        pushed = driver.distribution_push(f"{server.host}/ref/img:v1", image, {}, Recorder())
        pulled = driver.distribution_pull(f"{server.host}/ref/img:v1", {}, Recorder(), None, str(tmp_path / "w"))
        assert pulled["digest"] == pushed["Digest"] and pulled["config"] == image["config"]
        assert [Path(p).read_bytes() for _, p in pulled["layers"]] == layers
        mounted = Recorder()
        driver.distribution_push(f"{server.host}/ref/other:v1", image, {}, mounted)
        assert mounted.statuses().count("Mounted from ref/img") == 2
    finally:
        server.stop()


@pytest.mark.requires_docker_registry
def test_our_client_against_docker_registry_with_htpasswd(driver, tmp_path):
    users = make_users(tmp_path / "htpasswd")  # the same bcrypt file format
    server = start_docker_registry(tmp_path / "distribution", htpasswd=users)
    try:
        auth = {"username": "alice", "password": USERS["alice"], "serveraddress": server.host}
        driver.distribution_login(server.host, "alice", USERS["alice"])
        from dockyard.errors import Unauthorized

        with pytest.raises(Unauthorized):
            driver.distribution_login(server.host, "alice", "wrong")
        image = image_on_disk(tmp_path, [layer_tar({"q": b"1"})])
        driver.distribution_push(f"{server.host}/alice/img:v1", image, auth, Recorder())
        driver.distribution_pull(f"{server.host}/alice/img:v1", auth, Recorder(), None, str(tmp_path / "w"))
    finally:
        server.stop()


@pytest.mark.requires_docker_registry
@pytest.mark.requires_skopeo
def test_storage_is_shared_with_docker_registry(tmp_path):
    """What our registry writes, distribution serves, and the other way round."""
    ours = start_registry(tmp_path / "ours")
    archive, _ = docker_archive([layer_tar({"shared": b"storage"})])
    (tmp_path / "img.tar").write_bytes(archive)
    try:
        skopeo(
            "copy",
            "--dest-tls-verify=false",
            f"docker-archive:{tmp_path / 'img.tar'}",
            f"docker://{ours.host}/shared/img:v1",
        )
        digest = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{ours.host}/shared/img:v1").stdout)[
            "Digest"
        ]
    finally:
        ours.stop()
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "data").symlink_to(tmp_path / "ours" / "data")
    theirs = start_docker_registry(tmp_path / "theirs")
    try:
        info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{theirs.host}/shared/img:v1").stdout)
        assert info["Digest"] == digest
        skopeo(
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            f"docker://{theirs.host}/shared/img:v1",
            f"docker://{theirs.host}/shared/copy:v2",
        )
    finally:
        theirs.stop()
    ours = start_registry(tmp_path / "ours")
    try:
        tags = json.loads(skopeo("list-tags", "--tls-verify=false", f"docker://{ours.host}/shared/copy").stdout)
        assert tags["Tags"] == ["v2"]
        skopeo("copy", "--src-tls-verify=false", f"docker://{ours.host}/shared/copy:v2", f"oci:{tmp_path / 'o'}:x")
    finally:
        ours.stop()
