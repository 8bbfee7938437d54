"""diff, commit, export, history, tag, save and load through the docker CLI and ours."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile

import pytest

from tests.helpers.daemon import out

pytestmark = [
    pytest.mark.requires_root,
    pytest.mark.requires_lxc,
    pytest.mark.integration,
    pytest.mark.requires_docker_cli,
]


@pytest.fixture(scope="module")
def changed(daemon):
    """A stopped container that added, changed and deleted files."""
    out(
        daemon.docker(
            "run",
            "--name",
            "img-chg",
            "busybox",
            "sh",
            "-c",
            "mkdir /data && echo hi > /data/f && rm /etc/group && echo x >> /etc/passwd",
        )
    )
    yield "img-chg"
    daemon.docker("rm", "-f", "img-chg")


def test_diff_like_docker(daemon, changed):
    lines = set(out(daemon.docker("diff", changed)).splitlines())
    assert {"A /data", "A /data/f", "D /etc/group", "C /etc/passwd", "C /etc"} <= lines
    assert set(out(daemon.dockyard("diff", changed)).splitlines()) == lines


def test_commit_with_changes_then_run(daemon, changed):
    image_id = out(
        daemon.docker("commit", "-m", "a commit", "-a", "me", "-c", 'CMD ["cat", "/data/f"]', changed, "committed:v1")
    ).strip()
    assert image_id.startswith("sha256:")
    assert out(daemon.docker("run", "--rm", "committed:v1")) == "hi\n"
    assert "No such file" in daemon.docker("run", "--rm", "committed:v1", "cat", "/etc/group").stderr.decode()
    inspected = json.loads(out(daemon.docker("inspect", "committed:v1")))[0]
    assert inspected["Author"] == "me" and inspected["Comment"] == "a commit"
    assert inspected["Config"]["Cmd"] == ["cat", "/data/f"]
    assert len(inspected["RootFS"]["Layers"]) == 2
    # history: newest first, the commit on top of the import
    rows = out(daemon.docker("history", "--no-trunc", "committed:v1")).splitlines()[1:]
    assert len(rows) == 2 and image_id in rows[0] and "a commit" in rows[0] and "Imported from -" in rows[1]
    ours = out(daemon.dockyard("history", "committed:v1")).splitlines()
    assert ours[0].split()[:4] == ["IMAGE", "CREATED", "CREATED", "BY"] and len(ours) == 3
    # the image is in use: rmi of its only tag is refused, then forced
    out(daemon.docker("run", "--name", "img-user", "committed:v1"))
    refused = daemon.docker("rmi", "committed:v1")
    assert refused.returncode != 0 and "must force" in refused.stderr.decode()
    daemon.docker("rm", "img-user")
    assert "Deleted: " + image_id in out(daemon.docker("rmi", "committed:v1"))


def test_export_is_the_whole_filesystem(daemon, changed, tmp_path):
    target = tmp_path / "fs.tar"
    out(daemon.docker("export", "-o", str(target), changed))
    with tarfile.open(target) as tar:
        names = set(tar.getnames())
        assert {"bin/busybox", "data/f", "etc/passwd"} <= names and "etc/group" not in names
        assert tar.extractfile("data/f").read() == b"hi\n"
    piped = daemon.dockyard("export", changed)
    assert piped.returncode == 0 and tarfile.open(fileobj=io.BytesIO(piped.stdout)).getmember("data/f")


def test_tag_save_load_round_trip(daemon, tmp_path):
    out(daemon.docker("tag", "busybox", "saved:1"))
    archive = tmp_path / "saved.tar"
    out(daemon.docker("save", "-o", str(archive), "saved:1"))
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert manifest[0]["RepoTags"] == ["saved:1"] and len(manifest[0]["Layers"]) == 1
    original = json.loads(out(daemon.docker("inspect", "saved:1")))[0]["Id"]
    out(daemon.docker("rmi", "saved:1"))
    loaded = out(daemon.docker("load", "-i", str(archive)))
    assert "Loaded image: saved:1" in loaded
    assert json.loads(out(daemon.docker("inspect", "saved:1")))[0]["Id"] == original
    assert out(daemon.docker("run", "--rm", "saved:1", "echo", "loaded")) == "loaded\n"


@pytest.mark.requires_skopeo
def test_skopeo_reads_our_archive(daemon, tmp_path):
    archive = tmp_path / "bb.tar"
    out(daemon.docker("save", "-o", str(archive), "busybox"))
    result = subprocess.run(["skopeo", "inspect", "--config", f"docker-archive:{archive}"], capture_output=True)
    assert result.returncode == 0, result.stderr.decode()
    config = json.loads(result.stdout)
    assert config["rootfs"]["type"] == "layers" and config["os"] == "linux"


def test_load_rejects_garbage_and_keeps_nothing(daemon, tmp_path):
    before = out(daemon.docker("images", "-a", "-q"))
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"definitely not an archive" * 50)
    result = daemon.docker("load", "-i", str(bad))
    assert result.returncode != 0 and "invalid archive" in (result.stderr + result.stdout).decode()
    assert out(daemon.docker("images", "-a", "-q")) == before


def test_rmi_prunes_untagged_parents_unless_no_prune(daemon):
    def chain() -> tuple[str, str]:
        out(daemon.docker("run", "--name", "prune-1", "busybox", "touch", "/one"))
        middle = out(daemon.docker("commit", "prune-1")).strip()  # untagged, like a build's intermediate
        out(daemon.docker("run", "--name", "prune-2", middle, "touch", "/two"))
        top = out(daemon.docker("commit", "prune-2", "pruned:1")).strip()
        daemon.docker("rm", "prune-1", "prune-2")
        return middle, top

    middle, top = chain()
    removed = out(daemon.docker("rmi", "pruned:1"))
    assert f"Deleted: {top}" in removed and f"Deleted: {middle}" in removed
    assert daemon.docker("inspect", middle).returncode != 0
    middle, top = chain()
    kept = out(daemon.docker("rmi", "--no-prune", "pruned:1"))
    assert f"Deleted: {top}" in kept and middle not in kept
    assert json.loads(out(daemon.docker("inspect", middle)))[0]["Id"] == middle
    out(daemon.docker("rmi", middle))
