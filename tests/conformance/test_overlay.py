"""The storage conformance suite against the overlay driver (both mount methods), plus
overlay-specific checks: deep stacks, an opaque root, adoption of unions left mounted by a
killed daemon.  (The native diff against the naive one, and markers without parent headers,
are suite tests now: every driver runs them.)"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import ClassVar

import pytest

pytest.register_assert_rewrite("dockyard.testing.conformance")

from dockyard import archive
from dockyard.errors import Conflict, InvalidParameter
from dockyard.plugins.storage_overlay import driver as overlay_driver
from dockyard.plugins.storage_overlay import kernel
from dockyard.testing.conformance import (
    StorageDriverSuite,
    entry,
    layer_id,
    make_tar,
    mounted,
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
            self.layer_from_tar(
                storage,
                lid,
                make_tar([(entry("stack", tarfile.DIRTYPE, 0o755), None), (entry(f"stack/{i}"), str(i).encode())]),
                parent,
            )
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

    def test_diff_reads_the_upper_dir_without_a_union(self, storage, storage_root: Path) -> None:
        """A child's diff stream needs no union of the child; it blocks removal until closed."""
        base, child = layer_id("u-base"), layer_id("u-child")
        self.layer_from_tar(storage, base, make_tar([(entry("f"), b"f"), (entry("g"), b"g")]))
        storage.create_layer(child, base)
        with mounted(storage, child) as root:
            (root / "f").write_text("changed")  # copy-up: trusted.overlay.* xattrs in the upper
            (root / "g").unlink()
        stream = storage.diff(child)
        try:
            assert _union_mounts(storage_root) == []
            with pytest.raises(Conflict):
                storage.remove_layer(child)
            members = list(tarfile.open(fileobj=stream, mode="r|"))
        finally:
            stream.close()
        assert [m.name for m in members] == ["f", ".wh.g"]
        assert not any(k.startswith("SCHILY.xattr.trusted.overlay") for m in members for k in m.pax_headers)
        storage.remove_layer(child)

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


class TestOverlay(OverlayExtras, StorageDriverSuite):
    driver_name = "overlay"


class TestOverlayLegacyMount(OverlayExtras, StorageDriverSuite):
    """mount(2) with /proc/self/fd lowerdirs, as on kernels without fsconfig lowerdir+."""

    driver_name = "overlay"
    driver_options: ClassVar[dict] = {"mount_method": "legacy"}
