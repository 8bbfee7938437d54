"""The driver's persistent state: one SQLite file, ``<root>/bridge.db``.

Tables::

    networks    name PK, id, bridge, subnet, gateway, ip_range, mtu, internal, builtin, created, options,
                labels, user_subnet (the IPv4 subnet was given: fixed addresses allowed), aux (auxiliary
                addresses, JSON), subnet6/gateway6/ip_range6 (IPv6, '' without), attachable
    endpoints   (container_id, network) PK, ip, mac, veth, ifname, netns, active, name, aliases,
                endpoint_id, dns (the container's --dns servers: the embedded resolver's upstream),
                ip6, link_local (JSON), ipam (the IPAMConfig asked for, JSON, shown in inspect)
    ports       container_id, network, proto, container_port, host_ip, host_port, auto, spec
    cursors     (network, kind) PK, value     -- IPAM and port allocation cursors
    meta        key PK, value                 -- nft tables this driver owns, ...

An endpoint row exists from the first prepare until the container is removed:
its address and host ports stay held while the container is stopped, so an
address is never handed to two containers and a restarted container keeps its
address.  ``active`` is 1 while the namespace and veth exist.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS networks (
    name TEXT PRIMARY KEY, id TEXT NOT NULL, bridge TEXT NOT NULL UNIQUE, subnet TEXT NOT NULL,
    gateway TEXT NOT NULL, ip_range TEXT NOT NULL DEFAULT '', mtu INTEGER NOT NULL DEFAULT 1500,
    internal INTEGER NOT NULL DEFAULT 0, builtin INTEGER NOT NULL DEFAULT 0, created TEXT NOT NULL,
    options TEXT NOT NULL DEFAULT '{}', labels TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS endpoints (
    container_id TEXT NOT NULL, network TEXT NOT NULL, ip TEXT NOT NULL, mac TEXT NOT NULL,
    veth TEXT NOT NULL, ifname TEXT NOT NULL DEFAULT 'eth0', netns TEXT NOT NULL DEFAULT '',
    active INTEGER NOT NULL DEFAULT 0, name TEXT NOT NULL DEFAULT '', aliases TEXT NOT NULL DEFAULT '[]',
    endpoint_id TEXT NOT NULL DEFAULT '', dns TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (container_id, network)
);
CREATE UNIQUE INDEX IF NOT EXISTS endpoints_ip ON endpoints (network, ip);
CREATE TABLE IF NOT EXISTS ports (
    container_id TEXT NOT NULL, network TEXT NOT NULL, proto TEXT NOT NULL, container_port INTEGER NOT NULL,
    host_ip TEXT NOT NULL, host_port INTEGER NOT NULL, auto INTEGER NOT NULL, spec TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS ports_host ON ports (proto, host_ip, host_port);
CREATE TABLE IF NOT EXISTS cursors (network TEXT NOT NULL, kind TEXT NOT NULL, value INTEGER NOT NULL,
                                    PRIMARY KEY (network, kind));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.RLock()
        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self._migrate()

    _ADDED = {
        "endpoints": [
            ("dns", "TEXT NOT NULL DEFAULT '[]'"),
            ("ip6", "TEXT NOT NULL DEFAULT ''"),
            ("link_local", "TEXT NOT NULL DEFAULT '[]'"),
            ("ipam", "TEXT NOT NULL DEFAULT 'null'"),
        ],
        "networks": [
            ("user_subnet", "INTEGER NOT NULL DEFAULT 0"),
            ("aux", "TEXT NOT NULL DEFAULT '{}'"),
            ("subnet6", "TEXT NOT NULL DEFAULT ''"),
            ("gateway6", "TEXT NOT NULL DEFAULT ''"),
            ("ip_range6", "TEXT NOT NULL DEFAULT ''"),
            ("attachable", "INTEGER NOT NULL DEFAULT 0"),
        ],
    }

    def _migrate(self) -> None:
        """Columns added after a database was first made (SQLite: ADD COLUMN only)."""
        for table, added in self._ADDED.items():
            columns = {r["name"] for r in self.db.execute(f"PRAGMA table_info({table})")}
            for name, kind in added:
                if name not in columns:
                    self.db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")

    def close(self) -> None:
        with self.lock:
            self.db.close()

    # -- plumbing --------------------------------------------------------------
    def transaction(self) -> "_Tx":
        return _Tx(self)

    def query(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        with self.lock:
            return self.db.execute(sql, args).fetchall()

    def one(self, sql: str, *args: Any) -> sqlite3.Row | None:
        with self.lock:
            return self.db.execute(sql, args).fetchone()

    def execute(self, sql: str, *args: Any) -> None:
        with self.lock:
            self.db.execute(sql, args)

    # -- meta --------------------------------------------------------------------
    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self.one("SELECT value FROM meta WHERE key = ?", key)
        return json.loads(row["value"]) if row else default

    def set_meta(self, key: str, value: Any) -> None:
        self.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            key,
            json.dumps(value),
        )

    # -- cursors -----------------------------------------------------------------
    def cursor(self, network: str, kind: str, default: int) -> int:
        row = self.one("SELECT value FROM cursors WHERE network = ? AND kind = ?", network, kind)
        return int(row["value"]) if row else default

    def set_cursor(self, network: str, kind: str, value: int) -> None:
        self.execute(
            "INSERT INTO cursors (network, kind, value) VALUES (?, ?, ?) "
            "ON CONFLICT(network, kind) DO UPDATE SET value = excluded.value",
            network,
            kind,
            value,
        )

    # -- networks ----------------------------------------------------------------
    def networks(self) -> list[sqlite3.Row]:
        return self.query("SELECT * FROM networks ORDER BY builtin DESC, created")

    def network(self, name: str) -> sqlite3.Row | None:
        return self.one("SELECT * FROM networks WHERE name = ?", name)

    def upsert_network(self, **row: Any) -> None:
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        updates = ", ".join(f"{c} = excluded.{c}" for c in row if c != "name")
        self.execute(
            f"INSERT INTO networks ({cols}) VALUES ({marks}) ON CONFLICT(name) DO UPDATE SET {updates}", *row.values()
        )

    def delete_network(self, name: str) -> None:
        with self.transaction():
            self.execute("DELETE FROM networks WHERE name = ?", name)
            self.execute("DELETE FROM cursors WHERE network = ?", name)

    # -- endpoints -----------------------------------------------------------------
    def endpoints(
        self, container_id: str | None = None, network: str | None = None, active: bool | None = None
    ) -> list[sqlite3.Row]:
        sql, args = "SELECT * FROM endpoints WHERE 1", []
        if container_id is not None:
            sql += " AND container_id = ?"
            args.append(container_id)
        if network is not None:
            sql += " AND network = ?"
            args.append(network)
        if active is not None:
            sql += " AND active = ?"
            args.append(int(active))
        return self.query(sql + " ORDER BY rowid", *args)

    def endpoint(self, container_id: str, network: str) -> sqlite3.Row | None:
        return self.one("SELECT * FROM endpoints WHERE container_id = ? AND network = ?", container_id, network)

    def held_ips(self, network: str, column: str = "ip") -> set[str]:
        assert column in ("ip", "ip6")
        return {
            r[column] for r in self.query(f"SELECT {column} FROM endpoints WHERE network = ?", network) if r[column]
        }

    # -- ports ---------------------------------------------------------------------
    def ports(self, container_id: str | None = None, network: str | None = None) -> list[sqlite3.Row]:
        sql, args = "SELECT * FROM ports WHERE 1", []
        if container_id is not None:
            sql += " AND container_id = ?"
            args.append(container_id)
        if network is not None:
            sql += " AND network = ?"
            args.append(network)
        return self.query(sql + " ORDER BY rowid", *args)


class _Tx:
    def __init__(self, store: Store) -> None:
        self.store = store

    def __enter__(self) -> Store:
        self.store.lock.acquire()
        self.store.db.execute("BEGIN IMMEDIATE")
        return self.store

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.store.db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.store.lock.release()
