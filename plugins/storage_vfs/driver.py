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
import uuid
from pathlib import Path
from typing import BinaryIO

from dockyard import archive
from dockyard.errors import Conflict, DockyardError, InvalidParameter, NotFound, System
from dockyard.hookspecs import hookimpl
from dockyard.models.capabilities import StorageCapabilities
from dockyard.models.runtime import Change



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
        self._parents = self.root / "parent"
        self._incomplete = self.root / "incomplete"
        self._lock = threading.RLock()
        self._mounts: dict[str, int] = {}
        self._busy: dict[str, str] = {}  # layer being created -> parent ("" if none)
        try:
            for d in (self._dir, self._parents, self._incomplete):
                d.mkdir(parents=True, exist_ok=True)
            self._recover()
        except OSError as exc:
            raise System(f"vfs: cannot initialise {self.root}: {exc}") from exc

    @classmethod
    def check_supported(cls) -> None:
        """vfs works on any filesystem."""

    # -- helpers -------------------------------------------------------------

    def _recover(self) -> None:
        """Delete what a crash left: half-built or half-removed trees, interrupted applies."""
        for entry in self.root.iterdir():
            if entry.name.startswith("tmp-"):  # an orphaned cp may still write here: best effort
                shutil.rmtree(entry, ignore_errors=True)
        for marker in self._incomplete.iterdir():
            _rmtree(self._dir / marker.name)
            marker.unlink()
        for record in self._parents.iterdir():
            if not (self._dir / record.name).is_dir():
                record.unlink()

    def _layer_dir(self, layer_id: str) -> Path:
        if (not layer_id or "/" in layer_id or "\0" in layer_id or layer_id in (".", "..")
                or layer_id.startswith("tmp-") or len(layer_id) > 200):
            raise InvalidParameter(f"invalid layer id {layer_id!r}")
        return self._dir / layer_id

    def _complete(self, layer_id: str) -> bool:
        try:
            path = self._layer_dir(layer_id)
        except InvalidParameter:
            return False
        return path.is_dir() and not (self._incomplete / layer_id).exists()

    def _require(self, layer_id: str) -> Path:
        path = self._layer_dir(layer_id)
        if not self._complete(layer_id):
            raise NotFound(f"No such layer: {layer_id}")
        return path

    def _parent_of(self, layer_id: str) -> str:
        try:
            return (self._parents / layer_id).read_text()
        except FileNotFoundError:
            return ""

    def _children(self, layer_id: str) -> list[str]:
        found = [c for c, p in self._busy.items() if p == layer_id]
        for record in self._parents.iterdir():
            if record.name != layer_id and self._parent_of(record.name) == layer_id:
                found.append(record.name)
        return found

    # -- required hooks ------------------------------------------------------

    @hookimpl
    def storage_create_layer(self, layer_id: str, parent_id: str | None) -> bool:
        target = self._layer_dir(layer_id)
        with self._lock:
            if target.exists() or layer_id in self._busy:
                raise Conflict(f"layer {layer_id} already exists")
            source = self._require(parent_id) if parent_id else None
            self._busy[layer_id] = parent_id or ""
        tmp = self.root / f"tmp-{layer_id}.{uuid.uuid4().hex[:12]}"  # never shared with an orphaned cp
        try:
            if source is None:
                tmp.mkdir()
                tmp.chmod(0o755)
            else:
                _copy_tree(source, tmp)
            (self._parents / layer_id).write_text(parent_id or "")
            os.rename(tmp, target)
        except BaseException as exc:
            _rmtree(tmp)
            (self._parents / layer_id).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise System(f"vfs: creating layer {layer_id}: {exc}") from exc
            raise
        finally:
            with self._lock:
                self._busy.pop(layer_id, None)
        return True

    @hookimpl
    def storage_remove_layer(self, layer_id: str) -> bool:
        path = self._layer_dir(layer_id)
        tmp = self.root / f"tmp-{layer_id}.{uuid.uuid4().hex[:12]}"
        with self._lock:
            if not path.is_dir():
                raise NotFound(f"No such layer: {layer_id}")
            if self._mounts.get(layer_id):
                raise Conflict(f"layer {layer_id} is in use (mounted {self._mounts[layer_id]} times)")
            children = self._children(layer_id)
            if children:
                raise Conflict(f"layer {layer_id} has child layers: {', '.join(sorted(children))}")
            try:
                os.rename(path, tmp)  # invisible at once; the slow delete happens unlocked
                (self._parents / layer_id).unlink(missing_ok=True)
                (self._incomplete / layer_id).unlink(missing_ok=True)
            except OSError as exc:
                raise System(f"vfs: removing layer {layer_id}: {exc}") from exc
        _rmtree(tmp)
        return True

    @hookimpl
    def storage_mount(self, layer_id: str) -> Path:
        with self._lock:
            path = self._require(layer_id)
            self._mounts[layer_id] = self._mounts.get(layer_id, 0) + 1
            return path

    @hookimpl
    def storage_unmount(self, layer_id: str) -> bool:
        with self._lock:
            count = self._mounts.get(layer_id, 0)
            if count > 1:
                self._mounts[layer_id] = count - 1
            else:
                self._mounts.pop(layer_id, None)
        return True

    @hookimpl
    def storage_path(self, layer_id: str) -> Path | None:
        with self._lock:
            return self._dir / layer_id if self._mounts.get(layer_id) else None

    @hookimpl
    def storage_exists(self, layer_id: str) -> bool:
        try:
            return self._complete(layer_id)
        except OSError:
            return False

    @hookimpl
    def storage_layers(self) -> list[str]:
        return sorted(e.name for e in self._dir.iterdir() if self._complete(e.name))

    @hookimpl
    def storage_apply_diff(self, layer_id: str, diff: BinaryIO) -> int:
        path = self._require(layer_id)
        marker = self._incomplete / layer_id
        try:
            marker.touch()
        except OSError as exc:
            raise System(f"vfs: marking layer {layer_id}: {exc}") from exc
        written = archive.apply_layer(path, diff, archive.PLAIN)
        marker.unlink()  # a failed apply leaves the marker: the layer stays unlisted until removed
        return written

    @hookimpl
    def storage_status(self) -> list[tuple[str, str]]:
        return [("Backing Filesystem", _backing_fs(self.root)),
                ("Layers", str(len(self.storage_layers())))]

    @hookimpl
    def storage_cleanup(self) -> bool:
        with self._lock:
            self._mounts.clear()
        return True

    # -- optional hooks: a walk of two plain directories needs no mount -------

    @hookimpl
    def storage_parent(self, layer_id: str) -> str:
        """Parent id, ``""`` for a base layer.  Proposed hook spec; see storage_fallbacks."""
        self._require(layer_id)
        return self._parent_of(layer_id)

    def _pair(self, layer_id: str) -> tuple[Path, Path | None]:
        path = self._require(layer_id)
        parent = self._parent_of(layer_id)
        return path, (self._dir / parent if parent else None)

    @hookimpl
    def storage_diff(self, layer_id: str) -> BinaryIO:
        path, parent = self._pair(layer_id)
        self.storage_mount(layer_id)  # held until the stream is closed: blocks removal
        release = lambda: self.storage_unmount(layer_id)  # noqa: E731
        try:
            if parent is None:
                return archive.export_tree(path, on_close=release)
            return archive.export_changes(path, archive.changes(path, parent), on_close=release)
        except BaseException:
            release()
            raise

    @hookimpl
    def storage_changes(self, layer_id: str) -> list[Change]:
        path, parent = self._pair(layer_id)
        return _wrap_os(lambda: archive.changes(path, parent), layer_id)

    @hookimpl
    def storage_diff_size(self, layer_id: str) -> int:
        path, parent = self._pair(layer_id)
        return _wrap_os(lambda: archive.changes_size(path, archive.changes(path, parent)), layer_id)


def _wrap_os(fn, layer_id: str):
    try:
        return fn()
    except DockyardError:
        raise
    except OSError as exc:
        raise System(f"vfs: reading layer {layer_id}: {exc}") from exc


def _copy_tree(source: Path, target: Path) -> None:
    done = subprocess.run(["cp", "-a", "--reflink=auto", "--", str(source), str(target)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise System(f"vfs: copying {source}: {done.stderr.strip()}")


def _rmtree(path: Path) -> None:
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except NotADirectoryError:
        path.unlink()


_FS_NAMES = {"ext2": "extfs", "ext3": "extfs", "ext4": "extfs"}


def _backing_fs(path: Path) -> str:
    """Filesystem type of the mount holding ``path`` (Docker's names: ext4 -> extfs)."""
    best, fstype = "", "unknown"
    target = os.path.realpath(path)
    try:
        with open("/proc/self/mounts") as mounts:
            for line in mounts:
                fields = line.split()
                point = fields[1].replace("\\040", " ")
                if (target == point or target.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
                    best, fstype = point, fields[2]
    except OSError:
        pass
    return _FS_NAMES.get(fstype, fstype)
