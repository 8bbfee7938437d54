"""-v binds, named and anonymous volumes, --volumes-from, and the volume commands."""

from __future__ import annotations

import json

import pytest

from tests.helpers.daemon import out

pytestmark = [
    pytest.mark.requires_root,
    pytest.mark.requires_lxc,
    pytest.mark.integration,
    pytest.mark.requires_docker_cli,
]


def test_bind_mount_rw_and_ro(daemon, tmp_path):
    host = tmp_path / "shared"
    host.mkdir()
    (host / "in.txt").write_text("from host\n")
    assert (
        out(
            daemon.docker(
                "run",
                "--rm",
                "-v",
                f"{host}:/mnt",
                "busybox",
                "sh",
                "-c",
                "cat /mnt/in.txt; echo from container > /mnt/out.txt",
            )
        )
        == "from host\n"
    )
    assert (host / "out.txt").read_text() == "from container\n"
    result = daemon.docker("run", "--rm", "-v", f"{host}:/mnt:ro", "busybox", "sh", "-c", "echo x > /mnt/nope")
    assert result.returncode != 0 and "Read-only file system" in result.stderr.decode()
    assert not (host / "nope").exists()


def test_named_volume_outlives_containers(daemon):
    out(daemon.docker("run", "--rm", "-v", "vol-data:/data", "busybox", "sh", "-c", "echo kept > /data/f"))
    assert out(daemon.docker("run", "--rm", "-v", "vol-data:/data", "busybox", "cat", "/data/f")) == "kept\n"
    listed = out(daemon.docker("volume", "ls"))
    assert "vol-data" in listed
    info = json.loads(out(daemon.docker("volume", "inspect", "vol-data")))[0]
    assert info["Driver"] == "local" and info["Mountpoint"].endswith("/vol-data/_data")
    out(daemon.docker("volume", "rm", "vol-data"))
    assert "vol-data" not in out(daemon.docker("volume", "ls"))


def test_volume_in_use_cannot_be_removed(daemon):
    out(daemon.docker("volume", "create", "vol-busy"))
    out(daemon.docker("create", "--name", "vol-user", "-v", "vol-busy:/x", "busybox", "true"))
    refused = daemon.docker("volume", "rm", "vol-busy")
    assert refused.returncode != 0 and "in use" in refused.stderr.decode()
    out(daemon.docker("rm", "vol-user"))
    out(daemon.docker("volume", "rm", "vol-busy"))


def test_anonymous_volume_is_initialised_from_the_image_and_removed_with_rm_v(daemon):
    cid = out(daemon.docker("run", "-v", "/etc", "--name", "vol-anon", "busybox", "cat", "/etc/passwd")).strip()
    assert "root:x:0:0" in cid
    mounts = json.loads(out(daemon.docker("inspect", "vol-anon")))[0]["Mounts"]
    assert len(mounts) == 1 and mounts[0]["Type"] == "volume" and mounts[0]["Destination"] == "/etc"
    name = mounts[0]["Name"]
    assert name in out(daemon.docker("volume", "ls", "-q"))
    out(daemon.docker("rm", "-v", "vol-anon"))
    assert name not in out(daemon.docker("volume", "ls", "-q"))


def test_volumes_from(daemon):
    out(daemon.docker("create", "--name", "vol-src", "-v", "/shared", "busybox", "true"))
    out(daemon.docker("run", "--rm", "--volumes-from", "vol-src", "busybox", "sh", "-c", "echo hi > /shared/f"))
    assert out(daemon.docker("run", "--rm", "--volumes-from", "vol-src", "busybox", "cat", "/shared/f")) == "hi\n"
    ro = daemon.docker("run", "--rm", "--volumes-from", "vol-src:ro", "busybox", "sh", "-c", "echo x > /shared/g")
    assert ro.returncode != 0
    out(daemon.docker("rm", "-v", "vol-src"))


def test_bad_volume_spec(daemon):
    result = daemon.docker("run", "--rm", "-v", "relative:dir", "busybox", "true")
    assert result.returncode != 0 and "absolute" in result.stderr.decode()
