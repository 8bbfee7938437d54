"""vfs: every layer is a full copy of its parent's directory.

No union mount, no kernel requirement: slow to create big layers, but works
everywhere and is the reference the other drivers are compared with.

On disk, under ``<data-root>/storage/vfs``::

    dir/<id>/           a complete layer's root
    parent/<id>         its parent id ("" for a base layer)
    incomplete/<id>     present while a diff is applied; such a layer is not listed
    tmp-<id>/           a layer being built or removed

A layer is built in ``tmp-<id>`` (``cp -a --reflink=auto`` of the parent: hard
links, xattrs, devices, owners and holes are kept; reflinks on btrfs/xfs) and
renamed into ``dir/`` when complete.  On start, ``tmp-*`` and incomplete
layers left by a crash are deleted.  Mounts are reference counts kept in
memory: ``storage_mount`` returns the directory itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import BinaryIO

from dockyard import archive
from dockyard.errors import InvalidParameter, NotFound, System
from dockyard import hookimpl
from dockyard.models.capabilities import StorageCapabilities
from dockyard.models.runtime import Change
from dockyard.storage_common import LayerDirectory, MountCounter, ParentRecords, backing_fs, os_errors, rmtree


class VfsDriver:
    """Storage driver keeping each layer as a plain directory copy."""

    #: a full copy keeps everything the conformance suite checks
    capabilities = StorageCapabilities()

    def __init__(self, root: Path, options: dict) -> None:
        unknown = sorted(set(options or {}))
        if unknown:
            raise InvalidParameter(f"vfs: unknown storage option(s): {', '.join(unknown)}")
        self.root = Path(root)
        self._dir = self.root / "dir"
        self._lock = threading.RLock()
        self._mounts = MountCounter(self._lock)
        self._records = ParentRecords(self.root / "parent", chain=False)
        self._layers = LayerDirectory(
            "vfs", self._dir, self.root / "incomplete", self.root, lock=self._lock, records=self._records
        )
        try:
            self._layers.make_dirs()
            self._records.directory.mkdir(exist_ok=True)
            # an orphaned cp may still write in a tmp-* tree: best effort
            self._layers.recover(
                lambda tmp: shutil.rmtree(tmp, ignore_errors=True), lambda layer_id: rmtree(self._dir / layer_id)
            )
        except OSError as exc:
            raise System(f"vfs: cannot initialise {self.root}: {exc}") from exc

    @classmethod
    def check_supported(cls) -> None:
        """vfs works on any filesystem."""

    # -- required hooks ------------------------------------------------------

    @hookimpl
    def storage_create_layer(self, layer_id: str, parent_id: str | None) -> bool:
        target = self._layers.path(layer_id)
        with self._layers.creating(layer_id, parent_id) as source:
            tmp = self._layers.tmp(layer_id)
            try:
                if source is None:
                    tmp.mkdir()
                    tmp.chmod(0o755)
                else:
                    _copy_tree(source, tmp)
                self._records.write(layer_id, [parent_id] if parent_id else [])
                os.rename(tmp, target)
            except BaseException:
                rmtree(tmp)
                self._records.forget(layer_id)
                raise
        return True

    @hookimpl
    def storage_remove_layer(self, layer_id: str) -> bool:
        path = self._layers.path(layer_id)
        tmp = self._layers.tmp(layer_id)
        with self._lock:
            if not path.is_dir():
                raise NotFound(f"No such layer: {layer_id}")
            count = self._mounts.count(layer_id)
            self._layers.check_removable(layer_id, count and f"mounted {count} times")
            with os_errors(f"vfs: removing layer {layer_id}"):
                os.rename(path, tmp)  # invisible at once; the slow delete happens unlocked
                self._records.forget(layer_id)
                (self._layers.incomplete / layer_id).unlink(missing_ok=True)
        rmtree(tmp)
        return True

    @hookimpl
    def storage_mount(self, layer_id: str) -> Path:
        with self._lock:
            path = self._layers.require(layer_id)
            self._mounts.acquire(layer_id)
            return path

    @hookimpl
    def storage_unmount(self, layer_id: str) -> bool:
        self._mounts.release(layer_id)
        return True

    @hookimpl
    def storage_path(self, layer_id: str) -> Path | None:
        return self._dir / layer_id if self._mounts.count(layer_id) else None

    @hookimpl
    def storage_exists(self, layer_id: str) -> bool:
        return self._layers.exists(layer_id)

    @hookimpl
    def storage_layers(self) -> list[str]:
        return self._layers.ids()

    @hookimpl
    def storage_apply_diff(self, layer_id: str, diff: BinaryIO) -> int:
        path = self._layers.require(layer_id)
        with self._layers.applying(layer_id):
            return archive.apply_layer(path, diff, archive.PLAIN)

    @hookimpl
    def storage_status(self) -> list[tuple[str, str]]:
        return [("Backing Filesystem", backing_fs(self.root)), ("Layers", str(len(self.storage_layers())))]

    @hookimpl
    def storage_cleanup(self) -> bool:
        self._mounts.clear()
        return True

    # -- optional hooks: a walk of two plain directories needs no mount -------

    @hookimpl
    def storage_parent(self, layer_id: str) -> str:
        """Parent id, ``""`` for a base layer."""
        self._layers.require(layer_id)
        return self._records.parent(layer_id)

    def _pair(self, layer_id: str) -> tuple[Path, Path | None]:
        path = self._layers.require(layer_id)
        parent = self._records.parent(layer_id)
        return path, (self._dir / parent if parent else None)

    @hookimpl
    def storage_diff(self, layer_id: str) -> BinaryIO:
        path, parent = self._pair(layer_id)
        self.storage_mount(layer_id)  # held until the stream is closed: blocks removal
        return archive.export_diff(path, parent, on_close=lambda: self.storage_unmount(layer_id))

    @hookimpl
    def storage_changes(self, layer_id: str) -> list[Change]:
        path, parent = self._pair(layer_id)
        with os_errors(f"vfs: reading layer {layer_id}"):
            return archive.changes(path, parent)

    @hookimpl
    def storage_diff_size(self, layer_id: str) -> int:
        path, parent = self._pair(layer_id)
        with os_errors(f"vfs: reading layer {layer_id}"):
            return archive.changes_size(path, archive.changes(path, parent))


def _copy_tree(source: Path, target: Path) -> None:
    done = subprocess.run(
        ["cp", "-a", "--reflink=auto", "--", str(source), str(target)], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise System(f"vfs: copying {source}: {done.stderr.strip()}")
