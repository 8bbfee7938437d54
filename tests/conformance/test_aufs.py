"""The storage conformance suite against aufs (kernel aufs where present, else unionfs-fuse),
plus the regressions specific to branch stacks and unionfs-fuse markers."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

pytest.register_assert_rewrite("dockyard.testing.conformance")

from dockyard.drivers import available  # noqa: E402
from dockyard.errors import InvalidParameter  # noqa: E402
from dockyard.testing.conformance import (  # noqa: E402
    StorageDriverSuite,
    entry,
    layer_id,
    make_tar,
    mounted,
    read_all,
    snapshot,
)

pytest_plugins = ["dockyard.testing.conformance"]

_why = available("storage").get("aufs", "not installed (pip install -e . registers the entry point)")
pytestmark = [pytest.mark.requires_root,
              pytest.mark.skipif(_why is not None, reason=f"aufs storage driver unusable here: {_why}")]


def _fuse_mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mounts") as f:
        return [line.split()[1] for line in f if line.split()[1].startswith(str(path))]


class TestAufs(StorageDriverSuite):
    driver_name = "aufs"

    @pytest.fixture(autouse=True)
    def _no_leftover_mounts(self, storage_root: Path):
        """Every union a test mounts is gone once the driver is cleaned up."""
        yield
        assert _fuse_mounts_under(storage_root) == []

    # -- aufs-specific regressions (scenarios drawn as trees) -----------------

    def test_deleting_in_uncopied_dir_emits_parent_header(self, storage) -> None:
        """
        parent: /etc/{keep,gone} (etc 0750, uid 7)     child: rm /etc/gone (only a marker, no /etc in the branch)
        -> diff: etc (with the parent's metadata), etc/.wh.gone
        """
        parent, child = layer_id("hp"), layer_id("hc")
        self.layer_from_tar(storage, parent, make_tar([(entry("etc", tarfile.DIRTYPE, 0o750, uid=7), None),
                                                       (entry("etc/keep"), b"k"), (entry("etc/gone"), b"g")]))
        storage.create_layer(child, parent)
        with mounted(storage, child) as root:
            (root / "etc/gone").unlink()
        members = list(tarfile.open(fileobj=io.BytesIO(read_all(storage.diff(child)))))
        assert [m.name for m in members] == ["etc", "etc/.wh.gone"]
        assert (members[0].mode, members[0].uid) == (0o750, 7)
        assert [(c.path, c.kind) for c in storage.changes(child)] == [("/etc", 0), ("/etc/gone", 2)]

    def test_rm_rf_and_mkdir_is_opaque(self, storage) -> None:
        """
        parent: /d/{a,b/c}      child: rm -rf /d; mkdir /d; echo n > /d/n
        -> union shows d/n only; changes: C /d, D /d/a, D /d/b, A /d/n; a replay matches.
        """
        parent, child, replay = layer_id("op-p"), layer_id("op-c"), layer_id("op-r")
        d = lambda n: (entry(n, tarfile.DIRTYPE, 0o755), None)  # noqa: E731
        self.layer_from_tar(storage, parent, make_tar([d("d"), (entry("d/a"), b"a"), d("d/b"),
                                                       (entry("d/b/c"), b"c")]))
        storage.create_layer(child, parent)
        with mounted(storage, child) as root:
            for p in ("d/b/c", "d/a"):
                (root / p).unlink()
            (root / "d/b").rmdir()
            (root / "d").rmdir()
            (root / "d").mkdir()
            (root / "d/n").write_text("n")
            assert os.listdir(root / "d") == ["n"]
        assert sorted((c.path, c.kind) for c in storage.changes(child)) == [
            ("/d", 0), ("/d/a", 2), ("/d/b", 2), ("/d/n", 1)]
        diff = read_all(storage.diff(child))
        self.layer_from_tar(storage, replay, diff, parent)
        with mounted(storage, child) as c, mounted(storage, replay) as r:
            assert snapshot(c) == snapshot(r)
            assert os.listdir(r / "d") == ["n"]

    def test_opaque_root_is_expanded(self, storage) -> None:
        """A tar with ./.wh..wh..opq hides every lower name (unionfs-fuse has no opaque root)."""
        parent, child = layer_id("or-p"), layer_id("or-c")
        self.layer_from_tar(storage, parent, make_tar([(entry("a"), b"a"), (entry("b"), b"b")]))
        self.layer_from_tar(storage, child, make_tar([(entry(".wh..wh..opq"), b""), (entry("c"), b"c")]), parent)
        with mounted(storage, child) as root:
            assert sorted(os.listdir(root)) == ["c"]

    def test_reserved_marker_tree_refused(self, storage) -> None:
        if storage.status() and dict(storage.status()).get("Backend") == "aufs":
            pytest.skip("kernel aufs: .unionfs-fuse is an ordinary name")
        lid = layer_id("reserved")
        storage.create_layer(lid, None)
        with pytest.raises(InvalidParameter, match="unionfs-fuse"):
            storage.apply_diff(lid, io.BytesIO(make_tar([(entry(".unionfs-fuse/etc/passwd_HIDDEN~"), b"")])))
        assert not storage.exists(lid)
        storage.remove_layer(lid)

    def test_dead_server_is_remounted(self, storage, driver) -> None:
        """A killed unionfs-fuse (ENOTCONN) is detached and mounted again on the next mount."""
        if driver.backend != "unionfs-fuse":
            pytest.skip("only the unionfs-fuse backend has a server process")
        parent, child = layer_id("ds-p"), layer_id("ds-c")
        self.layer_from_tar(storage, parent, make_tar([(entry("f"), b"f")]))
        storage.create_layer(child, parent)
        root = storage.mount(child)
        driver._mounts[child].server.kill()
        driver._mounts[child].server.wait()
        with pytest.raises(OSError):
            os.listdir(root)
        assert storage.mount(child) == root
        assert (root / "f").read_bytes() == b"f"
        storage.unmount(child)
        storage.unmount(child)
        assert storage.path(child) is None

    def test_restart_adopts_live_union(self, request, storage, driver, storage_root: Path) -> None:
        parent, child = layer_id("ad-p"), layer_id("ad-c")
        self.layer_from_tar(storage, parent, make_tar([(entry("f"), b"f")]))
        storage.create_layer(child, parent)
        root = storage.mount(child)
        driver._mounts.clear()  # as if the daemon had died with the union mounted
        reopened = self.reopen(request.config, driver, storage_root)
        try:
            assert reopened.storage_path(child) is None
            assert reopened.storage_mount(child) == root
            assert (root / "f").read_bytes() == b"f"
            reopened.storage_unmount(child)
            assert _fuse_mounts_under(storage_root) == []
        finally:
            reopened.storage_cleanup()
