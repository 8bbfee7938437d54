"""The storage conformance suite against the overlay driver (both mount methods), plus
overlay-specific checks: deep stacks, the native diff against the naive one, adoption of
unions left mounted by a killed daemon."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from pathlib import Path
from typing import ClassVar

import pytest

pytest.register_assert_rewrite("dockyard.testing.conformance")

from dockyard import archive
from dockyard.errors import InvalidParameter
from dockyard.plugins.storage_overlay import driver as overlay_driver
from dockyard.plugins.storage_overlay import kernel
from dockyard.testing.conformance import (
    StorageDriverSuite,
    entry,
    layer_id,
    make_tar,
    mounted,
    read_all,
    write_tree,
)

pytest_plugins = ["dockyard.testing.conformance"]

pytestmark = pytest.mark.requires_root


def _union_mounts(root: Path) -> list[str]:
    return [p for p, fstype in kernel.mounts_under(str(root)) if fstype == "overlay"]


class OverlayExtras:
    """Driver-specific checks, run for each mount method."""

    def test_status_lines(self, storage) -> None:
        status = dict(storage.status())
        assert status["Backing Filesystem"] and status["Supports d_type"] == "true"
        assert status["Native Overlay Diff"] == "true"

    def test_128_layer_stack(self, storage, storage_root: Path) -> None:
        """Each layer adds /stack/<i>; the top one sees all 128 and so does a container on it."""
        parent = None
        for i in range(128):
            lid = layer_id(f"stack{i}")
            self.layer_from_tar(storage, lid, make_tar([(entry("stack", tarfile.DIRTYPE, 0o755), None),
                                                        (entry(f"stack/{i}"), str(i).encode())]), parent)
            parent = lid
        container = layer_id("stack-container")
        storage.create_layer(container, parent)
        with mounted(storage, container) as root:
            assert len(os.listdir(root / "stack")) == 128
            assert (root / "stack/0").read_text() == "0"
            (root / "stack/0").write_text("changed")
        assert [(c.path, c.kind) for c in storage.changes(container)] == [("/stack", 0), ("/stack/0", 0)]
        assert _union_mounts(storage_root) == []

    def test_too_deep_is_refused_at_create(self, storage, monkeypatch) -> None:
        monkeypatch.setattr(overlay_driver, "MAX_LOWERS", 3)
        parent = None
        for i in range(4):
            storage.create_layer(layer_id(f"deep{i}"), parent)
            parent = layer_id(f"deep{i}")
        with pytest.raises(InvalidParameter):
            storage.create_layer(layer_id("deep4"), parent)
        assert not storage.exists(layer_id("deep4"))

    def test_native_diff_equals_naive_diff(self, storage, caps, work: Path) -> None:
        """A container's upper-dir diff gives the very changes and bytes of a walk of both views.

        parent: a seeded tree plus /ren/{a,b/c}, /opq/{x,y/z}, /f2d, /d2f/inner, /lnk, /hl{1,2}
        child:  renames a lower dir (EXDEV: copied), rm -rf + mkdir (opaque), file <-> dir,
                chmod/chown/xattr/utime, truncate, unlink, a link to a lower file, new dirs
        """
        src = work / "src"
        src.mkdir()
        write_tree(src, seed=21, files=150, caps=caps)
        for d in ("ren/b", "opq/y", "d2f"):
            (src / d).mkdir(parents=True)
        for f in ("ren/a", "ren/b/c", "opq/x", "opq/y/z", "f2d", "d2f/inner", "hl1"):
            (src / f).write_text(f)
        os.link(src / "hl1", src / "hl2")
        os.symlink("ren/a", src / "lnk")
        parent, child = layer_id("n-parent"), layer_id("n-child")
        self.layer_from_tar(storage, parent, read_all(archive.export_tree(src)))
        mid = layer_id("n-mid")  # a middle layer so the parent view is itself a union
        self.layer_from_tar(storage, mid, make_tar([(entry("mid"), b"m"), (entry(".wh.f2d"), b""),
                                                    (entry("f2d", tarfile.DIRTYPE, 0o700), None)]), parent)
        storage.create_layer(child, mid)
        with mounted(storage, child) as root:
            shutil.move(root / "ren", root / "renamed")  # rename(2) of a lower dir: EXDEV, so copy + delete
            shutil.rmtree(root / "opq")
            (root / "opq").mkdir()
            (root / "opq/y").mkdir()
            (root / "opq/y/new").write_text("n")
            shutil.rmtree(root / "f2d")
            (root / "f2d").write_text("now a file")
            shutil.rmtree(root / "d2f")
            (root / "d2f").write_text("was a dir")
            os.unlink(root / "lnk")
            os.symlink("renamed/a", root / "lnk")
            os.link(root / "hl1", root / "hl3")
            os.chmod(root / "hl2", 0o600)
            for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())[:40:3]:
                os.truncate(path, 3)
            for path in sorted(p for p in root.rglob("f*") if p.is_file() and not p.is_symlink())[1:30:4]:
                if caps.ownership:
                    os.chown(path, 4242, 4242)
                os.setxattr(path, "user.native", b"1")
            for path in sorted(p for p in root.rglob("f*") if p.is_file() and not p.is_symlink())[2:30:5]:
                path.unlink()
            (root / "brand/new/dir").mkdir(parents=True)
            (root / "brand/new/dir/file").write_bytes(os.urandom(5000))
        with mounted(storage, child) as root, mounted(storage, mid) as lower:
            naive = archive.changes(root, lower)
            naive_tar = read_all(archive.export_changes(root, naive))
        native = storage.changes(child)
        assert [(c.path, c.kind) for c in native] == [(c.path, c.kind) for c in naive]
        assert read_all(storage.diff(child)) == naive_tar
        with mounted(storage, child) as root:
            assert storage.diff_size(child) == archive.changes_size(root, naive)
        # the middle layer's own diff: a whiteout and a directory replacing a file
        with tarfile.open(fileobj=io.BytesIO(read_all(storage.diff(mid)))) as tf:
            assert [(m.name, m.type) for m in tf] == [("f2d", tarfile.DIRTYPE), ("mid", tarfile.REGTYPE)]

    def test_opaque_root_marker(self, storage) -> None:
        """``./.wh..wh..opq`` on a child: whatever the kernel shows, changes() says the same."""
        parent, child = layer_id("r-parent"), layer_id("r-child")
        self.layer_from_tar(storage, parent, make_tar([(entry("old"), b"o")]))
        self.layer_from_tar(storage, child, make_tar([(entry("new"), b"n"), (entry(".wh..wh..opq"), b"")]), parent)
        with mounted(storage, child) as root, mounted(storage, parent) as lower:
            naive = archive.changes(root, lower)
        assert [(c.path, c.kind) for c in storage.changes(child)] == [(c.path, c.kind) for c in naive]

    def test_adopts_unions_left_by_a_killed_daemon(self, request, storage, driver, storage_root: Path) -> None:
        base, running, exited = layer_id("a-base"), layer_id("a-running"), layer_id("a-exited")
        self.layer_from_tar(storage, base, make_tar([(entry("f"), b"f")]))
        storage.create_layer(running, base)
        storage.create_layer(exited, base)
        path = storage.mount(running)
        storage.mount(exited)
        (path / "written").write_text("w")
        # the daemon dies here: no unmount; a new one starts on the same root
        again = self.reopen(request.config, driver, storage_root)
        try:
            assert again.storage_mount(running) == path  # the running container re-takes its reference
            assert (path / "written").read_text() == "w"
            assert len(_union_mounts(storage_root)) == 2, "the union is reused, not mounted twice"
            again.storage_unmount(exited)  # the exited one's reference is dropped: its stale union goes
            assert len(_union_mounts(storage_root)) == 1
            again.storage_unmount(running)
            assert _union_mounts(storage_root) == []
        finally:
            again.storage_cleanup()
            driver._mounts.clear()  # the "dead" instance must not unmount anything now

    def test_cleanup_leaves_no_mounts(self, storage, storage_root: Path) -> None:
        base, child = layer_id("c-base"), layer_id("c-child")
        storage.create_layer(base, None)
        storage.create_layer(child, base)
        storage.mount(child)
        storage.mount(child)
        assert len(_union_mounts(storage_root)) == 1
        storage.cleanup()
        assert _union_mounts(storage_root) == []

    @pytest.mark.xfail(strict=True, reason="core: apply_layer drops a whiteout whose parent has no entry in "
                                           "the upper dir (plugins/storage_overlay/INTEGRATION.md, proposal 1)")
    def test_whiteout_without_parent_header(self, storage) -> None:
        parent, child = layer_id("w-parent"), layer_id("w-child")
        self.layer_from_tar(storage, parent, make_tar([(entry("etc", tarfile.DIRTYPE, 0o755), None),
                                                       (entry("etc/gone"), b"g")]))
        self.layer_from_tar(storage, child, make_tar([(entry("etc/.wh.gone"), b"")]), parent)
        with mounted(storage, child) as root:
            assert not (root / "etc/gone").exists()


class TestOverlay(OverlayExtras, StorageDriverSuite):
    driver_name = "overlay"


class TestOverlayLegacyMount(OverlayExtras, StorageDriverSuite):
    """mount(2) with /proc/self/fd lowerdirs, as on kernels without fsconfig lowerdir+."""

    driver_name = "overlay"
    driver_options: ClassVar[dict] = {"mount_method": "legacy"}
