"""The build cache: (parent image, step key) -> the image that step produced.

A step's key is a digest of everything that decides its result besides the
parent image: the instruction's normalised arguments, the config it runs with,
the build arguments in scope (RUN), and for ADD/COPY the digest of the files'
contents and metadata.  Entries live in their own SQLite file under
``<data-root>/build/cache.db``; a hit is only used while the image still exists.
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

__all__ = ["BuildCache", "step_key"]

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
            row = self._db.execute("SELECT image_id FROM build_cache WHERE parent=? AND key=?",
                                   (parent or "", key)).fetchone()
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
            self._db.execute("INSERT OR REPLACE INTO build_cache(parent, key, image_id, created) VALUES (?,?,?,?)",
                             (parent or "", key, image_id, iso_now()))

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
