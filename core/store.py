"""Metadata store: images, layers, tags and containers in one SQLite file.

WAL journal, every multi-row change in one transaction, so a daemon killed at
any point reopens to the last committed state.  Layer content is the storage
driver's; blobs (image configs) are files under ``<root>/blobs/sha256``,
written to a temporary name and renamed before the row that names them commits.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from dockyard.errors import Conflict, InvalidParameter, NotFound

SCHEMA = """
CREATE TABLE IF NOT EXISTS layers (
    chain_id  TEXT PRIMARY KEY,
    parent    TEXT REFERENCES layers(chain_id),
    diff_id   TEXT NOT NULL,
    size      INTEGER NOT NULL DEFAULT 0,
    created   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    id        TEXT PRIMARY KEY,           -- 64 hex, sha256 of the config blob
    top_layer TEXT REFERENCES layers(chain_id),
    parent    TEXT NOT NULL DEFAULT '',   -- image this one was committed/built from
    size      INTEGER NOT NULL DEFAULT 0,
    created   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tags (
    repo      TEXT NOT NULL,
    tag       TEXT NOT NULL,
    image_id  TEXT NOT NULL REFERENCES images(id),
    PRIMARY KEY (repo, tag)
);
CREATE TABLE IF NOT EXISTS containers (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    image_id    TEXT NOT NULL,
    image_ref   TEXT NOT NULL,
    base_layer  TEXT,                    -- parent of the container's rw layer
    created     TEXT NOT NULL,
    config      TEXT NOT NULL,
    host_config TEXT NOT NULL,
    state       TEXT NOT NULL,
    restart_count INTEGER NOT NULL DEFAULT 0,
    storage_driver TEXT NOT NULL,
    exec_driver    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS volumes (
    name      TEXT PRIMARY KEY,
    driver    TEXT NOT NULL DEFAULT 'local',
    created   TEXT NOT NULL,
    labels    TEXT NOT NULL DEFAULT '{}',
    options   TEXT NOT NULL DEFAULT '{}',
    anonymous INTEGER NOT NULL DEFAULT 0,
    populated INTEGER NOT NULL DEFAULT 0   -- image content copied in at first use
);
CREATE TABLE IF NOT EXISTS repo_digests (
    repo      TEXT NOT NULL,
    digest    TEXT NOT NULL,               -- sha256:... of the manifest in that repository
    image_id  TEXT NOT NULL REFERENCES images(id),
    PRIMARY KEY (repo, digest)
);
CREATE TABLE IF NOT EXISTS settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


class Store:
    """Thread-safe access to the metadata database (one connection, one lock)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blob_dir = root / "blobs" / "sha256"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(root / "dockyard.db", check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def query(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- settings ------------------------------------------------------------
    def setting(self, key: str) -> str | None:
        rows = self.query("SELECT value FROM settings WHERE key=?", (key,))
        return rows[0]["value"] if rows else None

    def set_setting(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO settings(key, value) VALUES (?, ?)", (key, value))

    # -- blobs ---------------------------------------------------------------
    def put_blob(self, data: bytes) -> str:
        """Store content-addressed bytes; returns the 64-hex digest."""
        digest = hashlib.sha256(data).hexdigest()
        final = self.blob_dir / digest
        if not final.exists():
            tmp = self.blob_dir / f".tmp-{digest}-{os.getpid()}-{threading.get_ident()}"
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        return digest

    def blob(self, digest: str) -> bytes:
        try:
            return (self.blob_dir / digest).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"blob sha256:{digest} is missing from the store") from None

    # -- images --------------------------------------------------------------
    def image_row(self, image_id: str) -> sqlite3.Row | None:
        rows = self.query("SELECT * FROM images WHERE id=?", (image_id,))
        return rows[0] if rows else None

    def image_ids_with_prefix(self, prefix: str) -> list[str]:
        return [r["id"] for r in self.query("SELECT id FROM images WHERE id LIKE ?", (prefix + "%",))]

    def tag_target(self, repo: str, tag: str) -> str | None:
        rows = self.query("SELECT image_id FROM tags WHERE repo=? AND tag=?", (repo, tag))
        return rows[0]["image_id"] if rows else None

    def tags_of(self, image_id: str) -> list[tuple[str, str]]:
        return [(r["repo"], r["tag"]) for r in
                self.query("SELECT repo, tag FROM tags WHERE image_id=? ORDER BY repo, tag", (image_id,))]

    # -- layers --------------------------------------------------------------
    def layer_row(self, chain_id: str) -> sqlite3.Row | None:
        rows = self.query("SELECT * FROM layers WHERE chain_id=?", (chain_id,))
        return rows[0] if rows else None

    def layer_ids(self) -> set[str]:
        return {r["chain_id"] for r in self.query("SELECT chain_id FROM layers")}

    # -- containers ------------------------------------------------------------
    def container_row(self, container_id: str) -> sqlite3.Row | None:
        rows = self.query("SELECT * FROM containers WHERE id=?", (container_id,))
        return rows[0] if rows else None

    def insert_container(self, row: dict[str, Any]) -> None:
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        try:
            with self.transaction() as db:
                db.execute(f"INSERT INTO containers ({cols}) VALUES ({marks})", tuple(row.values()))
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"container record conflict: {exc}") from None

    def update_container(self, container_id: str, **fields: Any) -> None:
        if not fields:
            raise InvalidParameter("nothing to update")
        sets = ", ".join(f"{k}=?" for k in fields)
        values = tuple(json.dumps(v) if isinstance(v, (dict, list)) else v for v in fields.values())
        try:
            with self.transaction() as db:
                db.execute(f"UPDATE containers SET {sets} WHERE id=?", (*values, container_id))
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"container record conflict: {exc}") from None

    def delete_container(self, container_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM containers WHERE id=?", (container_id,))
