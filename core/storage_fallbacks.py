"""Core fallbacks for optional storage hooks (moby's ``NaiveDiffDriver``).

:class:`NaiveDiff` implements ``storage_diff``, ``storage_changes`` and
``storage_diff_size`` as ``trylast`` hooks: a driver that implements them wins;
for one that does not, the layer and its parent are mounted and compared with
:func:`dockyard.archive.changes`.  The cost grows with the size of the image,
not of the change.

It finds each layer's parent through the required ``storage_parent`` hook.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from dockyard import archive
from dockyard import hookimpl

if TYPE_CHECKING:
    from dockyard.drivers import StorageDriver
    from dockyard.models.runtime import Change


class NaiveDiff:
    """Diff by mounting a layer and its parent and walking both."""

    def __init__(self, storage: StorageDriver) -> None:
        self._storage = storage

    def parent(self, layer_id: str) -> str | None:
        """The layer's parent id, or ``None`` for a base layer."""
        return self._storage.parent(layer_id)

    def _mount_pair(self, layer_id: str) -> tuple[Path, Path | None, list[str]]:
        parent = self.parent(layer_id)
        path = self._storage.mount(layer_id)
        mounted = [layer_id]
        try:
            parent_path = self._storage.mount(parent) if parent else None
        except BaseException:
            self._release(mounted)
            raise
        if parent:
            mounted.append(parent)
        return path, parent_path, mounted

    def _release(self, mounted: list[str]) -> None:
        for layer_id in reversed(mounted):
            self._storage.unmount(layer_id)

    @contextmanager
    def _mounted(self, layer_id: str) -> Iterator[tuple[Path, Path | None]]:
        path, parent_path, mounted = self._mount_pair(layer_id)
        try:
            yield path, parent_path
        finally:
            self._release(mounted)

    @hookimpl(trylast=True)
    def storage_diff(self, layer_id: str) -> BinaryIO:
        path, parent_path, mounted = self._mount_pair(layer_id)
        return archive.export_diff(path, parent_path, on_close=lambda: self._release(mounted))

    @hookimpl(trylast=True)
    def storage_changes(self, layer_id: str) -> list[Change]:
        with self._mounted(layer_id) as (path, parent_path):
            return archive.changes(path, parent_path)

    @hookimpl(trylast=True)
    def storage_diff_size(self, layer_id: str) -> int:
        with self._mounted(layer_id) as (path, parent_path):
            return archive.changes_size(path, archive.changes(path, parent_path))
