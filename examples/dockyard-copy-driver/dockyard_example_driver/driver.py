"""example: every layer a complete directory, copied from its parent through a layer tar.

A deliberately small driver that uses only dockyard's public API:

* :data:`dockyard.hookspecs.hookimpl` marks the hook implementations;
* :mod:`dockyard.archive` copies a tree (``export_tree`` piped into
  ``apply_layer``: owners, modes, hard links, holes, devices, xattrs survive,
  mtimes are rounded to whole seconds) and applies layer tars safely;
* :mod:`dockyard.errors` gives the error kinds the core maps to HTTP;
* :class:`~dockyard.models.capabilities.StorageCapabilities` declares what the
  conformance suite may expect.

It implements only the required hooks.  ``storage_diff``, ``storage_changes``
and ``storage_diff_size`` come from the core's naive fallback, which mounts a
layer and its parent and compares them.

On disk, under ``<data-root>/storage/example``::

    layers/<id>/        a complete layer
    parents/<id>        its parent id ("" for a base layer)
    incomplete/<id>     present while a diff is applied; such a layer does not exist
    tmp-<id>.<random>/  a layer being built or removed

A layer is built under ``tmp-`` and renamed into place when complete, so a
crash never leaves a half layer visible; the next start deletes the leftovers.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from pathlib import Path
from typing import BinaryIO

from dockyard import archive
from dockyard.errors import Conflict, InvalidParameter, NotFound, System
from dockyard import hookimpl
from dockyard.models.capabilities import StorageCapabilities


class ExampleDriver:
    """Copy-based storage driver (the dockyard.storage entry point ``example``)."""

    #: copies go through a tar, whose mtimes are whole seconds
    capabilities = StorageCapabilities(nanosecond_mtimes=False)

    def __init__(self, root: Path, options: dict) -> None:
        if options:
            raise InvalidParameter(f"example: unknown storage option(s): {', '.join(sorted(options))}")
        self.root = Path(root)
        self._layers = self.root / "layers"
        self._parents = self.root / "parents"
        self._incomplete = self.root / "incomplete"
        self._lock = threading.Lock()
        self._mounts: dict[str, int] = {}
        try:
            for d in (self._layers, self._parents, self._incomplete):
                d.mkdir(parents=True, exist_ok=True)
            self._recover()
        except OSError as exc:
            raise System(f"example: cannot initialise {self.root}: {exc}") from exc

    @classmethod
    def check_supported(cls) -> None:
        """Raise dockyard.errors.DriverNotSupported if the host lacks something; nothing needed here."""

    # -- helpers -------------------------------------------------------------

    def _recover(self) -> None:
        for entry in self.root.iterdir():
            if entry.name.startswith("tmp-"):
                shutil.rmtree(entry, ignore_errors=True)
        for marker in self._incomplete.iterdir():
            shutil.rmtree(self._layers / marker.name, ignore_errors=True)
            marker.unlink()
        for record in self._parents.iterdir():
            if not (self._layers / record.name).is_dir():
                record.unlink()

    def _dir(self, layer_id: str) -> Path:
        if not layer_id or "/" in layer_id or "\0" in layer_id or layer_id.startswith((".", "tmp-")):
            raise InvalidParameter(f"invalid layer id {layer_id!r}")
        return self._layers / layer_id

    def _exists(self, layer_id: str) -> bool:
        try:
            return self._dir(layer_id).is_dir() and not (self._incomplete / layer_id).exists()
        except InvalidParameter:
            return False

    def _require(self, layer_id: str) -> Path:
        if not self._exists(layer_id):
            raise NotFound(f"No such layer: {layer_id}")
        return self._dir(layer_id)

    def _parent(self, layer_id: str) -> str:
        try:
            return (self._parents / layer_id).read_text()
        except FileNotFoundError:
            return ""

    # -- the required hooks ----------------------------------------------------

    @hookimpl
    def storage_create_layer(self, layer_id: str, parent_id: str | None) -> bool:
        target = self._dir(layer_id)
        if target.exists():
            raise Conflict(f"layer {layer_id} already exists")
        source = self._require(parent_id) if parent_id else None
        tmp = self.root / f"tmp-{layer_id}.{uuid.uuid4().hex[:12]}"
        try:
            tmp.mkdir()
            tmp.chmod(0o755)
            if source is not None:
                with archive.export_tree(source) as tar:
                    archive.apply_layer(tmp, tar)
            (self._parents / layer_id).write_text(parent_id or "")
            os.rename(tmp, target)  # the layer appears complete, or not at all
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if not target.exists():
                (self._parents / layer_id).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise System(f"example: creating layer {layer_id}: {exc}") from exc
            raise
        return True

    @hookimpl
    def storage_remove_layer(self, layer_id: str) -> bool:
        path = self._dir(layer_id)
        with self._lock:
            if not path.is_dir():
                raise NotFound(f"No such layer: {layer_id}")
            if self._mounts.get(layer_id):
                raise Conflict(f"layer {layer_id} is in use")
            children = [r.name for r in self._parents.iterdir() if r.read_text() == layer_id]
            if children:
                raise Conflict(f"layer {layer_id} has child layers: {', '.join(sorted(children))}")
            tmp = self.root / f"tmp-{layer_id}.{uuid.uuid4().hex[:12]}"
            os.rename(path, tmp)
            (self._parents / layer_id).unlink(missing_ok=True)
            (self._incomplete / layer_id).unlink(missing_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
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
            if self._mounts.get(layer_id, 0) > 1:
                self._mounts[layer_id] -= 1
            else:
                self._mounts.pop(layer_id, None)
        return True

    @hookimpl
    def storage_path(self, layer_id: str) -> Path | None:
        with self._lock:
            return self._dir(layer_id) if self._mounts.get(layer_id) else None

    @hookimpl
    def storage_parent(self, layer_id: str) -> str:
        self._require(layer_id)
        return self._parent(layer_id)

    @hookimpl
    def storage_exists(self, layer_id: str) -> bool:
        return self._exists(layer_id)

    @hookimpl
    def storage_layers(self) -> list[str]:
        return sorted(p.name for p in self._layers.iterdir() if self._exists(p.name))

    @hookimpl
    def storage_apply_diff(self, layer_id: str, diff: BinaryIO) -> int:
        path = self._require(layer_id)
        marker = self._incomplete / layer_id
        marker.touch()
        written = archive.apply_layer(path, diff)  # raises InvalidParameter for hostile tars
        marker.unlink()  # on failure the marker stays: the layer does not exist until removed
        return written

    @hookimpl
    def storage_status(self) -> list[tuple[str, str]]:
        return [("Layers", str(len(self.storage_layers())))]

    @hookimpl
    def storage_cleanup(self) -> bool:
        with self._lock:
            self._mounts.clear()
        return True
