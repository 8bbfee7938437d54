"""Volumes and bind mounts: what ``-v``, ``VOLUME`` and ``--volumes-from`` mean.

A volume is a directory the daemon owns, ``<data-root>/volumes/<name>/_data``,
kept until removed (anonymous ones with ``rm -v``).  A bind mounts a host path.
Both reach the exec driver as ``RuntimeSpec.binds``.  A container's mount list
is fixed at create time and stored with its record.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from dockyard import ids, paths
from dockyard.errors import Conflict, InvalidParameter, NotFound
from dockyard.rootfs import clean_destination
from dockyard.store import Store
from dockyard.timefmt import iso_now



@dataclass(frozen=True)
class Mount:
    """One entry of a container's ``Mounts``."""

    type: str  # "volume" or "bind"
    source: str  # host path (a volume's _data directory for volumes)
    destination: str
    rw: bool = True
    name: str = ""  # volume name

    def api(self) -> dict:
        return {"Type": self.type, "Name": self.name or None, "Source": self.source,
                "Destination": self.destination, "Driver": "local" if self.type == "volume" else "",
                "Mode": "" if self.rw else "ro", "RW": self.rw, "Propagation": "" if self.type == "volume" else "rprivate"}

    def to_json(self) -> dict:
        return asdict(self)


def _check_destination(path: str) -> str:
    return clean_destination(path)


def parse_bind(spec: str) -> tuple[str, str, bool]:
    """``src:dst[:ro|rw]`` or ``dst`` -> (src or "", dst, read-write)."""
    parts = spec.split(":")
    mode = "rw"
    if len(parts) == 3:
        src, dst, mode = parts
    elif len(parts) == 2 and parts[1] in ("ro", "rw") and parts[0].startswith("/"):
        src, dst, mode = "", parts[0], parts[1]
    elif len(parts) == 2:
        src, dst = parts
    elif len(parts) == 1:
        src, dst = "", parts[0]
    else:
        raise InvalidParameter(f"invalid volume specification: {spec!r}")
    modes = set(mode.split(","))
    if not modes <= {"ro", "rw", "z", "Z", "nocopy", "private", "rprivate", "shared", "slave"}:
        raise InvalidParameter(f"invalid mode {mode!r} in volume specification {spec!r}")
    return src, _check_destination(dst), "ro" not in modes


class VolumeService:
    def __init__(self, root: Path, store: Store) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.store = store
        #: IDs of the containers mounting a volume; the engine wires in the container service's view
        self.users: Callable[[str], list[str]] = lambda name: []

    def path(self, name: str) -> Path:
        return paths.child(self.root, name, "volume name") / "_data"

    def get(self, name: str) -> dict:
        row = self.store.volume_row(name)
        if row is None:
            raise NotFound(f"get {name}: no such volume")
        return self._api(row)

    def _api(self, row) -> dict:
        try:
            mountpoint = str(self.path(row["name"]))
        except InvalidParameter:  # a record made before names were checked ("/etc"): it owns no directory
            mountpoint = ""
        return {"Name": row["name"], "Driver": row["driver"], "Mountpoint": mountpoint,
                "CreatedAt": row["created"], "Labels": json.loads(row["labels"]) or None,
                "Options": json.loads(row["options"]) or None, "Scope": "local", "Status": None}

    def list(self) -> list[dict]:
        return [self._api(r) for r in self.store.volume_rows()]

    def create(self, name: str | None = None, labels: dict | None = None, options: dict | None = None,
               anonymous: bool = False) -> dict:
        if name and not ids.VOLUME_NAME.fullmatch(name):
            raise InvalidParameter(f"create {name}: volume name is too short, names should be at least two "
                                   "alphanumeric characters" if len(name) < 2 else
                                   f'create {name}: "{name}" includes invalid characters for a local volume name')
        name = name or ids.new_id()
        row = self.store.volume_row(name)
        if row is not None:
            return self._api(row)  # Docker: creating an existing volume is a no-op
        self.path(name).mkdir(parents=True, exist_ok=True)
        self.store.insert_volume(name, iso_now(), labels or {}, options or {}, anonymous)
        return self.get(name)

    def remove(self, name: str, force: bool = False) -> None:
        """``docker volume rm``: refused while a container mounts it."""
        self.get(name)
        users = self.users(name)
        if users:
            raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
        self.store.delete_volume(name)
        if ids.VOLUME_NAME.fullmatch(name):
            paths.remove_child(self.root, name, "volume name")

    def prune(self) -> list[str]:
        """``docker volume prune``: remove every volume no container mounts; returns their names."""
        deleted = []
        for row in self.store.volume_rows():
            if not self.users(row["name"]):
                self.remove(row["name"])
                deleted.append(row["name"])
        return deleted

    def is_anonymous(self, name: str) -> bool:
        row = self.store.volume_row(name)
        return bool(row and row["anonymous"])

    # -- container mounts ----------------------------------------------------------
    def mounts_for(self, binds: list[str], declared: list[str], volumes_from: list[tuple[list[Mount], bool]]) \
            -> list[Mount]:
        """The mount list of a new container: binds and named volumes from ``-v``,
        mounts of ``--volumes-from`` containers, and an anonymous volume for each
        declared path (``VOLUME``, ``-v /path``) not otherwise mounted."""
        mounts: dict[str, Mount] = {}
        for other, read_only in volumes_from:
            for m in other:
                mounts[m.destination] = Mount(m.type, m.source, m.destination, m.rw and not read_only, m.name)
        for spec in binds:
            src, dst, rw = parse_bind(spec)
            if not src:
                declared = [*declared, dst]
                continue
            if src.startswith("/"):
                mounts[dst] = Mount("bind", src, dst, rw)
            else:
                self.create(src)
                mounts[dst] = Mount("volume", str(self.path(src)), dst, rw, src)
        for path in declared:
            dst = _check_destination(path)
            if dst not in mounts:
                volume = self.create(anonymous=True)
                mounts[dst] = Mount("volume", volume["Mountpoint"], dst, True, volume["Name"])
        return list(mounts.values())

    def prepare(self, mounts: list[Mount], rootfs: Path) -> list[tuple[Path, str, bool]]:
        """Make sources exist, copy image content into fresh volumes (as Docker
        does), and return the exec driver's bind list."""
        from dockyard.rootfs import resolve_in_root

        binds = []
        for m in mounts:
            source = Path(m.source)
            if m.type == "bind" and not source.exists():
                source.mkdir(parents=True)  # Docker creates a missing bind source directory
            if m.type == "volume":
                source.mkdir(parents=True, exist_ok=True)
                row = self.store.volume_row(m.name)
                if row is not None and not row["populated"]:
                    image_dir = resolve_in_root(rootfs, m.destination)
                    if image_dir.is_dir() and not any(source.iterdir()):
                        subprocess.run(["cp", "-a", f"{image_dir}/.", str(source)], check=True)
                    self.store.mark_volume_populated(m.name)
            binds.append((source, m.destination, not m.rw))
        return binds
