"""Mount destinations stay inside the rootfs (issue 13, hole 4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.errors import InvalidParameter
from dockyard.rootfs import clean_destination, make_mountpoint, mount_plan
from dockyard.volumes import parse_bind


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    return root


@pytest.fixture
def host_dir(tmp_path: Path) -> Path:
    """A directory outside the rootfs standing for the host's /etc."""
    victim = tmp_path / "host-etc"
    victim.mkdir()
    return victim


@pytest.mark.parametrize("dest", ["/../../etc/x", "/a/../../b", "/..", "relative/path", "/", "//", "/a\nb"])
def test_bad_destinations_are_refused(dest):
    with pytest.raises(InvalidParameter):
        clean_destination(dest)
    with pytest.raises(InvalidParameter):
        parse_bind(f"/src:{dest}")


def test_destinations_are_normalised():
    assert clean_destination("//data/./x/") == "/data/x"


def test_absolute_symlink_in_the_image_stays_inside(rootfs, host_dir):
    """An image whose /etc is a symlink to a host path: hosts/resolv.conf land in the rootfs."""
    (rootfs / "etc").rmdir()
    (rootfs / "etc").symlink_to(str(host_dir))
    target = make_mountpoint(rootfs, "/etc/hosts", directory=False)
    assert list(host_dir.iterdir()) == []
    assert target == str(host_dir) + "/hosts"  # the link's target, taken inside the rootfs
    assert (rootfs / str(host_dir).lstrip("/") / "hosts").is_file()


def test_relative_symlinks_climbing_out_stay_inside(rootfs, host_dir):
    (rootfs / "data").symlink_to("../../../../../../../../" + str(host_dir).lstrip("/"))
    target = make_mountpoint(rootfs, "/data/sub", directory=True)
    assert list(host_dir.iterdir()) == []
    assert (rootfs / target.lstrip("/")).is_dir() and target == str(host_dir) + "/sub"


def test_symlink_loops_and_wrong_kinds(rootfs):
    (rootfs / "loop").symlink_to("/loop")
    with pytest.raises(InvalidParameter, match="symbolic links"):
        make_mountpoint(rootfs, "/loop/x", directory=True)
    (rootfs / "file").write_text("x")
    with pytest.raises(InvalidParameter, match="not a directory"):
        make_mountpoint(rootfs, "/file/x", directory=True)
    with pytest.raises(InvalidParameter, match="not a directory"):
        make_mountpoint(rootfs, "/file", directory=True)
    with pytest.raises(InvalidParameter, match="is a directory"):
        make_mountpoint(rootfs, "/etc", directory=False)


def test_mount_plan_orders_parents_first_and_creates_nested_points_in_the_covering_source(tmp_path, rootfs):
    volume, inner, hosts = tmp_path / "volume", tmp_path / "inner", tmp_path / "hosts"
    volume.mkdir()
    inner.mkdir()
    hosts.write_text("")
    plan = mount_plan(rootfs, [(inner, "/data/inner/", True), (hosts, "/etc/hosts", False), (volume, "/data", False)])
    assert [(str(s), t) for s, t, _ in plan] == [
        (str(volume), "/data"),
        (str(inner), "/data/inner"),
        (str(hosts), "/etc/hosts"),
    ]
    assert (volume / "inner").is_dir() and not (rootfs / "data" / "inner").exists()
    assert (rootfs / "etc" / "hosts").is_file() and plan[1][2] is True


def test_existing_points_are_kept(rootfs):
    (rootfs / "etc" / "hosts").write_text("image's\n")
    assert make_mountpoint(rootfs, "/etc/hosts", directory=False) == "/etc/hosts"
    assert (rootfs / "etc" / "hosts").read_text() == "image's\n"
