"""The metadata store: WAL, atomic transactions, content-addressed blobs."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from dockyard.errors import Conflict, NotFound
from dockyard.store import Store


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path)
    yield s
    s.close()


def _container(cid: str, name: str) -> dict:
    return {
        "id": cid,
        "name": name,
        "image_id": "i" * 64,
        "image_ref": "busybox",
        "base_layer": None,
        "created": "2026-01-01T00:00:00Z",
        "config": "{}",
        "host_config": "{}",
        "state": "{}",
        "storage_driver": "vfs",
        "exec_driver": "lxc",
    }


def test_wal_mode(store, tmp_path):
    assert store._query("PRAGMA journal_mode")[0][0] == "wal"


def test_transaction_rolls_back_on_error(store):
    with pytest.raises(RuntimeError):
        with store._transaction() as db:
            db.execute("INSERT INTO settings(key, value) VALUES ('a', '1')")
            raise RuntimeError("crash between two writes")
    assert store.setting("a") is None


def test_names_are_unique(store):
    store.insert_container(_container("a" * 64, "web"))
    with pytest.raises(Conflict):
        store.insert_container(_container("b" * 64, "web"))
    store.insert_container(_container("c" * 64, "db"))
    with pytest.raises(Conflict):
        store.update_container("c" * 64, name="web")
    assert store.container_row("c" * 64)["name"] == "db"


def test_blobs_are_content_addressed(store):
    digest = store.put_blob(b'{"config": 1}')
    assert digest == hashlib.sha256(b'{"config": 1}').hexdigest()
    assert store.blob(digest) == b'{"config": 1}'
    assert store.put_blob(b'{"config": 1}') == digest  # idempotent
    assert not [p for p in store.blob_dir.iterdir() if p.name.startswith(".tmp")]
    with pytest.raises(NotFound):
        store.blob("0" * 64)


def test_reopen_sees_committed_state(tmp_path):
    s = Store(tmp_path)
    s.set_setting("storage_driver", "vfs")
    s.insert_container(_container("d" * 64, "kept"))
    s.close()
    again = Store(tmp_path)
    try:
        assert again.setting("storage_driver") == "vfs"
        assert again.container_row("d" * 64)["name"] == "kept"
    finally:
        again.close()
    # the file is a plain SQLite database other tools can read
    with sqlite3.connect(tmp_path / "dockyard.db") as db:
        assert db.execute("SELECT count(*) FROM containers").fetchone()[0] == 1
