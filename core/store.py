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
    """Thread-safe access to the metadata database (one connection, one lock).

    Every SQL statement of the engine lives in a method here; services call
    these methods and never write SQL themselves.  A method that changes more
    than one row does it in one transaction.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blob_dir = root / "blobs" / "sha256"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        # 0600 before SQLite opens it: its -wal and -shm files take the database file's mode
        os.close(os.open(root / "dockyard.db", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
        os.chmod(root / "dockyard.db", 0o600)
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
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _exists(self, sql: str, args: tuple = ()) -> bool:
        return bool(self._query(sql, args))

    # -- settings ------------------------------------------------------------
    def setting(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM settings WHERE key=?", (key,))
        return rows[0]["value"] if rows else None

    def set_setting(self, key: str, value: str) -> None:
        with self._transaction() as db:
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
        rows = self._query("SELECT * FROM images WHERE id=?", (image_id,))
        return rows[0] if rows else None

    def image(self, image_id: str) -> sqlite3.Row:
        """An image's row; NotFound if there is none."""
        row = self.image_row(image_id)
        if row is None:
            raise NotFound(f"No such image: {image_id}")
        return row

    def image_rows(self) -> list[sqlite3.Row]:
        """Every image, newest first."""
        return self._query("SELECT * FROM images ORDER BY created DESC")

    def image_count(self) -> int:
        return int(self._query("SELECT count(*) FROM images")[0][0])

    def image_ids_with_prefix(self, prefix: str) -> list[str]:
        return [r["id"] for r in self._query("SELECT id FROM images WHERE id LIKE ?", (prefix + "%",))]

    def image_children(self, image_id: str) -> list[str]:
        """Images made from ``image_id`` (commit, build steps)."""
        return [r["id"] for r in self._query("SELECT id FROM images WHERE parent=?", (image_id,))]

    def add_image(
        self,
        image_id: str,
        top_layer: str | None,
        parent: str,
        size: int,
        created: str,
        repo: str | None = None,
        tag: str | None = None,
    ) -> None:
        """Record an image (a no-op if it exists) and, with ``repo``, point ``repo:tag`` at it."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO images(id, top_layer, parent, size, created) VALUES (?,?,?,?,?)",
                (image_id, top_layer, parent, size, created),
            )
            if repo:
                db.execute("INSERT OR REPLACE INTO tags(repo, tag, image_id) VALUES (?,?,?)", (repo, tag, image_id))

    def delete_image(self, image_id: str) -> None:
        """Delete an image with its tags and repository digests."""
        with self._transaction() as db:
            db.execute("DELETE FROM tags WHERE image_id=?", (image_id,))
            db.execute("DELETE FROM repo_digests WHERE image_id=?", (image_id,))
            db.execute("DELETE FROM images WHERE id=?", (image_id,))

    # -- tags ------------------------------------------------------------------
    def tag_target(self, repo: str, tag: str) -> str | None:
        rows = self._query("SELECT image_id FROM tags WHERE repo=? AND tag=?", (repo, tag))
        return rows[0]["image_id"] if rows else None

    def tags_of(self, image_id: str) -> list[tuple[str, str]]:
        return [
            (r["repo"], r["tag"])
            for r in self._query("SELECT repo, tag FROM tags WHERE image_id=? ORDER BY repo, tag", (image_id,))
        ]

    def tags_in(self, repo: str) -> list[str]:
        """Every tag of a repository, sorted."""
        return [r["tag"] for r in self._query("SELECT tag FROM tags WHERE repo=? ORDER BY tag", (repo,))]

    def set_tag(self, repo: str, tag: str, image_id: str) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO tags(repo, tag, image_id) VALUES (?,?,?)", (repo, tag, image_id))

    def delete_tag(self, repo: str, tag: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM tags WHERE repo=? AND tag=?", (repo, tag))

    # -- repository digests ----------------------------------------------------
    def repo_digests_of(self, image_id: str) -> list[tuple[str, str]]:
        """(repository, manifest digest) pairs an image is known by."""
        return [
            (r["repo"], r["digest"])
            for r in self._query("SELECT repo, digest FROM repo_digests WHERE image_id=? ORDER BY repo", (image_id,))
        ]

    def repo_digest_target(self, repos: tuple[str, ...], digest: str) -> str | None:
        marks = ", ".join("?" for _ in repos)
        rows = self._query(f"SELECT image_id FROM repo_digests WHERE digest=? AND repo IN ({marks})", (digest, *repos))
        return rows[0]["image_id"] if rows else None

    def add_repo_digest(self, repo: str, digest: str, image_id: str) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO repo_digests(repo, digest, image_id) VALUES (?,?,?)", (repo, digest, image_id)
            )

    def delete_repo_digest(self, image_id: str, digest: str, repos: tuple[str, ...]) -> None:
        marks = ", ".join("?" for _ in repos)
        with self._transaction() as db:
            db.execute(
                f"DELETE FROM repo_digests WHERE image_id=? AND digest=? AND repo IN ({marks})",
                (image_id, digest, *repos),
            )

    # -- layers --------------------------------------------------------------
    def layer_row(self, chain_id: str) -> sqlite3.Row | None:
        rows = self._query("SELECT * FROM layers WHERE chain_id=?", (chain_id,))
        return rows[0] if rows else None

    def layer(self, chain_id: str) -> sqlite3.Row:
        """A layer's row; NotFound if there is none."""
        row = self.layer_row(chain_id)
        if row is None:
            raise NotFound(f"no such layer: {chain_id}")
        return row

    def layer_rows(self) -> list[sqlite3.Row]:
        return self._query("SELECT * FROM layers")

    def layer_ids(self) -> set[str]:
        return {r["chain_id"] for r in self._query("SELECT chain_id FROM layers")}

    def add_layer(self, chain_id: str, parent: str | None, diff_id: str, size: int, created: str) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO layers(chain_id, parent, diff_id, size, created) VALUES (?,?,?,?,?)",
                (chain_id, parent, diff_id, size, created),
            )

    def delete_layer(self, chain_id: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM layers WHERE chain_id=?", (chain_id,))

    def layer_in_use(self, chain_id: str) -> bool:
        """Whether an image's top, another layer or a container's read-write layer rests on it."""
        return self._exists(
            "SELECT 1 FROM images WHERE top_layer=? UNION ALL SELECT 1 FROM layers WHERE parent=? "
            "UNION ALL SELECT 1 FROM containers WHERE base_layer=?",
            (chain_id, chain_id, chain_id),
        )

    def diff_id_in_use(self, diff_id: str) -> bool:
        """Whether a layer still has the content of ``diff_id`` (its kept tar is then needed)."""
        return self._exists("SELECT 1 FROM layers WHERE diff_id=?", (diff_id,))

    # -- containers ------------------------------------------------------------
    def container_row(self, container_id: str) -> sqlite3.Row | None:
        rows = self._query("SELECT * FROM containers WHERE id=?", (container_id,))
        return rows[0] if rows else None

    def container_rows(self) -> list[sqlite3.Row]:
        return self._query("SELECT * FROM containers")

    def insert_container(self, row: dict[str, Any]) -> None:
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        try:
            with self._transaction() as db:
                db.execute(f"INSERT INTO containers ({cols}) VALUES ({marks})", tuple(row.values()))
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"container record conflict: {exc}") from None

    def update_container(self, container_id: str, **fields: Any) -> None:
        if not fields:
            raise InvalidParameter("nothing to update")
        sets = ", ".join(f"{k}=?" for k in fields)
        values = tuple(json.dumps(v) if isinstance(v, (dict, list)) else v for v in fields.values())
        try:
            with self._transaction() as db:
                db.execute(f"UPDATE containers SET {sets} WHERE id=?", (*values, container_id))
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"container record conflict: {exc}") from None

    def delete_container(self, container_id: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM containers WHERE id=?", (container_id,))

    # -- volumes ---------------------------------------------------------------
    def volume_row(self, name: str) -> sqlite3.Row | None:
        rows = self._query("SELECT * FROM volumes WHERE name=?", (name,))
        return rows[0] if rows else None

    def volume_rows(self) -> list[sqlite3.Row]:
        return self._query("SELECT * FROM volumes ORDER BY name")

    def insert_volume(self, name: str, created: str, labels: dict, options: dict, anonymous: bool) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO volumes(name, created, labels, options, anonymous) VALUES (?,?,?,?,?)",
                (name, created, json.dumps(labels), json.dumps(options), int(anonymous)),
            )

    def mark_volume_populated(self, name: str) -> None:
        with self._transaction() as db:
            db.execute("UPDATE volumes SET populated=1 WHERE name=?", (name,))

    def delete_volume(self, name: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM volumes WHERE name=?", (name,))
