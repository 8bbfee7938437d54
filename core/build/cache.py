"""The build cache: (parent image, step key) -> the image that step produced.

A step's key is a digest of everything that decides its result besides the
parent image: the instruction's normalised arguments, the config it runs with,
the build arguments in scope (RUN), and for ADD/COPY the digest of the files'
contents and metadata.  Entries live in their own SQLite file under
``<data-root>/build/cache.db``; a hit is only used while the image still exists.

``--cache-from`` images stand in for steps as in Docker's classic builder
(moby ``image/cache``): a local hit then counts only inside the chain of one of
those images, and an image whose history starts with the parent's and whose
next entry was made by the same instruction (``CreatedBy``) gives the step's
result -- itself when that entry is its last, else an image restored from its
layers up to that entry (:func:`from_sources`).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from dockyard.store import Store
from dockyard.timefmt import iso_now, parse_iso

__all__ = ["BuildCache", "from_sources", "in_chain", "step_key"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS build_cache (
    parent   TEXT NOT NULL,   -- image the step ran on ('' for scratch)
    key      TEXT NOT NULL,   -- step_key()
    image_id TEXT NOT NULL,
    created  TEXT NOT NULL,
    PRIMARY KEY (parent, key)
);
"""


def step_key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class BuildCache:
    def __init__(self, data_root: Path, store: Store) -> None:
        directory = data_root / "build"
        directory.mkdir(parents=True, exist_ok=True)
        self.store = store
        self._lock = threading.Lock()
        self._db = sqlite3.connect(directory / "cache.db", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def lookup(self, parent: str | None, key: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT image_id FROM build_cache WHERE parent=? AND key=?", (parent or "", key)
            ).fetchone()
        if row is None:
            return None
        image_id = row[0]
        if self.store.image_row(image_id) is None:  # deleted since: forget it
            with self._lock:
                self._db.execute("DELETE FROM build_cache WHERE parent=? AND key=?", (parent or "", key))
            return None
        return image_id

    def record(self, parent: str | None, key: str, image_id: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO build_cache(parent, key, image_id, created) VALUES (?,?,?,?)",
                (parent or "", key, image_id, iso_now()),
            )

    def prune(self, until: float | None = None) -> list[str]:
        """Forget entries (recorded before ``until``, a unix time, when given); returns their IDs
        (``parent:key``, as ``POST /build/prune`` lists them)."""
        with self._lock:
            rows = self._db.execute("SELECT parent, key, created FROM build_cache").fetchall()
            gone = [(p, k) for p, k, created in rows if until is None or parse_iso(created) < until]
            self._db.executemany("DELETE FROM build_cache WHERE parent=? AND key=?", gone)
        return [f"{p[:12] or 'scratch'}:{k[:12]}" for p, k in gone]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def in_chain(images: Any, image_id: str, source: str) -> bool:
    """Whether ``image_id`` is ``source`` or one of its ancestors (the images it was built on)."""
    current: str | None = source
    while current:
        if current == image_id:
            return True
        row = images.store.image_row(current)
        current = row["parent"] if row else None
    return False


def _valid_parent(target: Any, parent: Any | None) -> bool:
    if not target.history:
        return False
    if parent is None or (not parent.history and not parent.rootfs.diff_ids):
        return True
    if len(parent.history) >= len(target.history) or len(parent.rootfs.diff_ids) > len(target.rootfs.diff_ids):
        return False
    return [h.model_dump() for h in parent.history] == [
        h.model_dump() for h in target.history[: len(parent.history)]
    ] and parent.rootfs.diff_ids == target.rootfs.diff_ids[: len(parent.rootfs.diff_ids)]


def from_sources(images: Any, sources: list[str], parent_id: str | None, created_by: str, config: Any) -> str | None:
    """The image a ``--cache-from`` source gives a step (see the module docstring), or None.
    Blocks: reads the store and may record a restored image."""
    from dockyard.images import chain_id
    from dockyard.models.image import RootFS

    parent = images.config(parent_id) if parent_id else None
    depth = len(parent.history) if parent is not None else 0
    for source in sources:
        target = images.config(source)
        if not _valid_parent(target, parent) or len(target.history) <= depth:
            continue
        if (target.history[depth].created_by or "") != created_by:
            continue
        if len(target.history) - 1 == depth:
            return source
        layers = sum(1 for h in target.history[: depth + 1] if not h.empty_layer)
        diff_ids = target.rootfs.diff_ids[:layers]
        top = None
        for diff_id in diff_ids:
            top = chain_id(top, diff_id)
        size = sum(images._layer_size(layer) for layer in images.layer_chain(top)) if top else 0
        restored = (parent or target).model_copy(deep=True)
        restored.config = config
        restored.history = [*(parent.history if parent else []), target.history[depth]]
        restored.rootfs = RootFS(diff_ids=list(diff_ids))
        restored.created = target.history[depth].created or restored.created
        restored.architecture, restored.os = target.architecture, target.os
        return images.record_image(restored, top, size, parent=parent_id or "", repo=None, tag=None)
    return None


_caches: dict[str, BuildCache] = {}
_caches_lock = threading.Lock()


def cache_for(data_root: Path, store: Store) -> BuildCache:
    """One cache per data root for the life of the process."""
    key = str(data_root)
    with _caches_lock:
        cache = _caches.get(key)
        if cache is None or cache.store is not store:
            cache = _caches[key] = BuildCache(data_root, store)
        return cache
