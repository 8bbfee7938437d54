"""Volumes and bind mounts: what ``-v``, ``VOLUME`` and ``--volumes-from`` mean.

A volume is a directory the daemon owns, ``<data-root>/volumes/<name>/_data``,
kept until removed (anonymous ones with ``rm -v``).  A bind mounts a host path.
Both reach the exec driver as ``RuntimeSpec.binds``.  A container's mount list
is fixed at create time and stored with its record.
"""

from __future__ import annotations

import builtins
import json
import os
import sqlite3
import stat
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dockyard import ids, paths
from dockyard.errors import Conflict, InvalidParameter, NotFound
from dockyard.filters import Filters
from dockyard.rootfs import clean_destination
from dockyard.store import Store
from dockyard.timefmt import iso_now

if TYPE_CHECKING:
    from dockyard.events import EventBus
    from dockyard.models.container import Mount as MountSpec


@dataclass(frozen=True)
class Mount:
    """One entry of a container's ``Mounts``."""

    type: str  # "volume" or "bind"
    source: str  # host path (a volume's _data directory for volumes)
    destination: str
    rw: bool = True
    name: str = ""  # volume name
    #: copy the image's content at the destination into a fresh volume (not with ``nocopy``)
    copy: bool = True

    def api(self) -> dict:
        return {
            "Type": self.type,
            "Name": self.name or None,
            "Source": self.source,
            "Destination": self.destination,
            "Driver": "local" if self.type == "volume" else "",
            "Mode": "" if self.rw else "ro",
            "RW": self.rw,
            "Propagation": "" if self.type == "volume" else "rprivate",
        }

    def to_json(self) -> dict:
        return asdict(self)


def _check_destination(path: str) -> str:
    return clean_destination(path)


def parse_bind(spec: str) -> tuple[str, str, bool]:
    """``src:dst[:ro|rw]`` or ``dst`` -> (src or "", dst, read-write)."""
    src, dst, modes = _parse_bind(spec)
    return src, dst, "ro" not in modes


#: -v modes: ro/rw; nocopy; SELinux labels and macOS consistency, which Docker accepts and (without
#: SELinux, on Linux) ignores; private propagation, the only one a bind gets here
_BIND_MODES = {"ro", "rw", "z", "Z", "nocopy", "private", "rprivate", "consistent", "cached", "delegated"}


def _parse_bind(spec: str) -> tuple[str, str, set[str]]:
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
    propagation = modes & {"shared", "slave", "rshared", "rslave"}
    if propagation:
        raise InvalidParameter(
            f"bind propagation {', '.join(sorted(propagation))} is not supported by dockyard "
            f"(volume specification {spec!r}): binds are private"
        )
    if not modes <= _BIND_MODES:
        raise InvalidParameter(f"invalid mode {mode!r} in volume specification {spec!r}")
    return src, _check_destination(dst), modes


def _check_mount_spec(spec: MountSpec) -> tuple[str, str]:
    """Docker's checks of one ``--mount`` (moby ``mounts.ParseMountSpec``): (source, destination)."""
    kind = spec.type
    if not spec.target:
        raise InvalidParameter(f'invalid mount config for type "{kind}": field Target must not be empty')
    dst = _check_destination(spec.target)
    if kind == "bind":
        if not spec.source:
            raise InvalidParameter('invalid mount config for type "bind": field Source must not be empty')
        if not spec.source.startswith("/"):
            raise InvalidParameter(
                f'invalid mount config for type "bind": invalid mount path: '
                f"'{spec.source}' mount path must be absolute"
            )
        if not Path(spec.source).exists():
            raise InvalidParameter(
                f'invalid mount config for type "bind": bind source path does not exist: {spec.source}'
            )
        if spec.volume_options is not None:
            raise InvalidParameter('invalid mount config for type "bind": field VolumeOptions must not be specified')
    elif kind == "volume":
        if spec.bind_options is not None:
            raise InvalidParameter('invalid mount config for type "volume": field BindOptions must not be specified')
        if spec.source.startswith("/"):
            raise InvalidParameter(
                f'invalid mount config for type "volume": invalid mount path: '
                f"'{spec.source}' mount path must not be absolute"
            )
    if spec.tmpfs_options is not None:
        raise InvalidParameter(f'invalid mount config for type "{kind}": field TmpfsOptions must not be specified')
    return spec.source, dst


class VolumeService:
    def __init__(self, root: Path, store: Store, events: EventBus | None = None) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.store = store
        self.events = events
        #: IDs of the containers mounting a volume; the engine wires in the container service's view
        self.users: Callable[[str], list[str]] = lambda name: []

    def path(self, name: str) -> Path:
        return paths.child(self.root, name, "volume name") / "_data"

    def get(self, name: str) -> dict:
        row = self.store.volume_row(name)
        if row is None:
            raise NotFound(f"get {name}: no such volume")
        return self._api(row)

    def _api(self, row: sqlite3.Row) -> dict:
        try:
            mountpoint = str(self.path(row["name"]))
        except InvalidParameter:  # a record made before names were checked ("/etc"): it owns no directory
            mountpoint = ""
        return {
            "Name": row["name"],
            "Driver": row["driver"],
            "Mountpoint": mountpoint,
            "CreatedAt": row["created"],
            "Labels": json.loads(row["labels"]) or None,
            "Options": json.loads(row["options"]) or None,
            "Scope": "local",
            "Status": None,
        }

    def list(self, filters: Filters | None = None) -> list[dict]:
        """``GET /volumes`` with moby's filters: ``name`` (regexp), ``driver``, ``label``, ``dangling``."""
        filters = filters or Filters()
        dangling = filters.bool_value("dangling")
        result = []
        for row in self.store.volume_rows():
            volume = self._api(row)
            if not filters.match("name", volume["Name"]) or not filters.exact_match("driver", volume["Driver"]):
                continue
            if not filters.match_kv_list("label", volume["Labels"]):
                continue
            if dangling is not None and bool(self.users(volume["Name"])) == dangling:
                continue
            result.append(volume)
        return result

    def event(self, action: str, name: str, **attributes: str) -> None:
        if self.events is not None:
            self.events.emit("volume", action, name, {"driver": "local", **attributes})

    def create(
        self,
        name: str | None = None,
        labels: dict | None = None,
        options: dict | None = None,
        anonymous: bool = False,
        driver: str = "local",
    ) -> dict:
        if driver not in ("", "local"):
            raise NotFound(f'error looking up volume plugin {driver}: plugin "{driver}" not found')
        if name and not ids.VOLUME_NAME.fullmatch(name):
            raise InvalidParameter(
                f"create {name}: volume name is too short, names should be at least two alphanumeric characters"
                if len(name) < 2
                else f'create {name}: "{name}" includes invalid characters for a local volume name'
            )
        name = name or ids.new_id()
        row = self.store.volume_row(name)
        if row is not None:
            return self._api(row)  # Docker: creating an existing volume is a no-op
        self.path(name).mkdir(parents=True, exist_ok=True)
        self.store.insert_volume(name, iso_now(), labels or {}, options or {}, anonymous)
        self.event("create", name)
        return self.get(name)

    def remove(self, name: str, force: bool = False) -> None:
        """``docker volume rm``: refused while a container mounts it; with ``force`` a volume that
        does not exist is no error, as in Docker."""
        try:
            self.get(name)
        except NotFound:
            if force:
                return
            raise
        users = self.users(name)
        if users:
            raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
        self.store.delete_volume(name)
        if ids.VOLUME_NAME.fullmatch(name):
            paths.remove_child(self.root, name, "volume name")
        self.event("destroy", name)

    def prune(self, filters: Filters | None = None) -> tuple[builtins.list[str], int]:
        """``docker volume prune``: remove every volume no container mounts (with the labels asked for);
        returns their names and the bytes freed."""
        filters = filters or Filters()
        deleted, reclaimed = [], 0
        for row in self.store.volume_rows():
            if self.users(row["name"]) or not filters.match_labels(json.loads(row["labels"]) or {}):
                continue
            size = self.size(row["name"])
            self.remove(row["name"])
            deleted.append(row["name"])
            reclaimed += size
        if self.events is not None:
            self.events.emit("volume", "prune", "", {"reclaimed": str(reclaimed)})
        return deleted, reclaimed

    def size(self, name: str) -> int:
        """Bytes under a volume's ``_data`` (``du``-like: each inode once, what it occupies)."""
        total, seen = 0, set()
        for directory, dirs, files in os.walk(self.path(name)):
            for entry in files + dirs:
                try:
                    st = os.lstat(os.path.join(directory, entry))
                except OSError:
                    continue
                if (st.st_dev, st.st_ino) not in seen and not stat.S_ISDIR(st.st_mode):
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_size
        return total

    def usage(self) -> builtins.list[dict]:
        """Every volume with ``UsageData`` (size and how many containers mount it): ``system df -v``."""
        result = []
        for row in self.store.volume_rows():
            volume = self._api(row)
            volume["UsageData"] = {"Size": self.size(row["name"]), "RefCount": len(self.users(row["name"]))}
            result.append(volume)
        return result

    def is_anonymous(self, name: str) -> bool:
        row = self.store.volume_row(name)
        return bool(row and row["anonymous"])

    # -- container mounts ----------------------------------------------------------
    def mounts_for(
        self,
        binds: builtins.list[str],
        declared: builtins.list[str],
        volumes_from: builtins.list[tuple[builtins.list[Mount], bool]],
        specs: Sequence[MountSpec] = (),
    ) -> builtins.list[Mount]:
        """The mount list of a new container: binds and named volumes from ``-v``, ``--mount``
        specifications (``HostConfig.Mounts``), mounts of ``--volumes-from`` containers, and an
        anonymous volume for each declared path (``VOLUME``, ``-v /path``) not otherwise mounted.
        Everything is checked before a volume is created."""
        mounts: dict[str, Mount] = {}
        for other, read_only in volumes_from:
            for m in other:
                mounts[m.destination] = Mount(m.type, m.source, m.destination, m.rw and not read_only, m.name)
        wanted: builtins.list[tuple[str, str, bool, bool, dict | None]] = []  # (source, destination, rw, copy, labels)
        given: set[str] = set()
        for spec in binds:
            src, dst, modes = _parse_bind(spec)
            if dst in given:
                raise InvalidParameter(f"Duplicate mount point: {dst}")
            given.add(dst)
            if not src:
                declared = [*declared, dst]
                continue
            wanted.append((src, dst, "ro" not in modes, "nocopy" not in modes, None))
        for mount_spec in specs:
            src, dst = _check_mount_spec(mount_spec)
            if dst in given:
                raise InvalidParameter(f"Duplicate mount point: {dst}")
            given.add(dst)
            options = mount_spec.volume_options
            if mount_spec.type == "volume" and not src:
                declared = [*declared, dst]
                continue
            wanted.append(
                (
                    src,
                    dst,
                    not mount_spec.read_only,
                    not (options and options.no_copy),
                    options.labels if options else None,
                )
            )
        for src, dst, rw, copy, labels in wanted:
            if src.startswith("/"):
                mounts[dst] = Mount("bind", src, dst, rw)
            else:
                if not ids.VOLUME_NAME.fullmatch(src):
                    raise InvalidParameter(
                        f'create {src}: "{src}" includes invalid characters for a local volume '
                        'name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to '
                        "pass a host directory, use absolute path"
                    )
                self.create(src, labels)
                mounts[dst] = Mount("volume", str(self.path(src)), dst, rw, src, copy)
        for path in declared:
            dst = _check_destination(path)
            if dst not in mounts:
                volume = self.create(anonymous=True)
                mounts[dst] = Mount("volume", volume["Mountpoint"], dst, True, volume["Name"])
        return list(mounts.values())

    def prepare(self, mounts: builtins.list[Mount], rootfs: Path) -> builtins.list[tuple[Path, str, bool]]:
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
                if row is not None and not row["populated"] and m.copy:
                    image_dir = resolve_in_root(rootfs, m.destination)
                    if image_dir.is_dir() and not any(source.iterdir()):
                        subprocess.run(["cp", "-a", f"{image_dir}/.", str(source)], check=True)
                    self.store.mark_volume_populated(m.name)
            binds.append((source, m.destination, not m.rw))
        return binds
