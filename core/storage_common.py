"""What the built-in storage drivers share (public: an out-of-tree driver may use it too).

* :class:`LayerDirectory`: the crash-safety scheme.  A layer is built (or
  removed) under ``tmp-<id>.<random>`` and renamed into place, so it appears
  complete or not at all; ``incomplete/<id>`` is present while a diff is
  applied, and such a layer is not listed; at start, :meth:`LayerDirectory.recover`
  deletes whatever a crash left half done.  Also the id check, the
  "already exists / being created / has children" bookkeeping and the listing.
* :class:`ParentRecords`: one small file per layer naming its parent, or its
  whole parent chain, nearest first.
* :class:`MountCounter`: mount (or diff-stream) references kept in memory.
* :func:`backing_fs`, :func:`kernel_has`, :func:`mounts`: what the host has.
* :func:`os_errors` and :func:`rmtree`: error translation and forgiving removal.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from dockyard.errors import Conflict, DockyardError, InvalidParameter, NotFound, System

__all__ = [
    "LayerDirectory",
    "MountCounter",
    "ParentRecords",
    "backing_fs",
    "kernel_has",
    "mounts",
    "os_errors",
    "rmtree",
]

#: Docker's names for file systems it reports under another name
FS_NAMES = {"ext2": "extfs", "ext3": "extfs", "ext4": "extfs"}
TMP_PREFIX = "tmp-"


# ---------------------------------------------------------------------------
# the host
# ---------------------------------------------------------------------------


def unescape(field: str) -> str:
    """A path field of /proc/self/mountinfo (``\\040`` for a space, any octal escape)."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts() -> Iterator[tuple[str, str]]:
    """``(mount point, file system type)`` of every mount this process sees, in mount order."""
    try:
        with open("/proc/self/mountinfo") as info:
            for line in info:
                fields = line.split()
                yield unescape(fields[4]), fields[fields.index("-") + 1]
    except OSError:
        return


def backing_fs(path: Path | str) -> str:
    """File system type of the mount holding ``path``, in Docker's names (ext4 -> extfs);
    ``unknown`` if none is found.  ``path`` need not exist yet."""
    best, fstype = "", "unknown"
    target = os.path.realpath(path)
    for point, kind in mounts():
        if (target == point or target.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, fstype = point, kind
    return FS_NAMES.get(fstype, fstype)


def kernel_has(fstype: str) -> bool:
    """Whether the running kernel lists ``fstype`` in /proc/filesystems (as loaded now)."""
    try:
        with open("/proc/filesystems") as f:
            return any(line.split()[-1] == fstype for line in f if line.strip())
    except OSError:
        return False


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------


def rmtree(path: Path | str) -> None:
    """Remove a tree, a file or nothing."""
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except NotADirectoryError:
        Path(path).unlink(missing_ok=True)


@contextmanager
def os_errors(what: str) -> Iterator[None]:
    """Turn an ``OSError`` into :class:`System` (``"<what>: <error>"``); dockyard errors pass."""
    try:
        yield
    except DockyardError:
        raise
    except OSError as exc:
        raise System(f"{what}: {exc}") from exc


class MountCounter:
    """Per-layer reference counts kept in memory (mounts, open diff streams).

    Thread-safe: every call takes ``lock`` (pass the driver's ``RLock`` so a
    count and the work it guards change together).
    """

    def __init__(self, lock: threading.RLock | None = None) -> None:
        self._lock = lock or threading.RLock()
        self._counts: dict[str, int] = {}

    def acquire(self, layer_id: str) -> int:
        """Take a reference; returns the count now."""
        with self._lock:
            count = self._counts[layer_id] = self._counts.get(layer_id, 0) + 1
            return count

    def release(self, layer_id: str) -> int:
        """Drop a reference; returns what is left (0 also when none was held)."""
        with self._lock:
            count = self._counts.get(layer_id, 0) - 1
            if count > 0:
                self._counts[layer_id] = count
                return count
            self._counts.pop(layer_id, None)
            return 0

    def hold(self, layer_id: str) -> Callable[[], None]:
        """Take a reference; the returned function drops it (once, however often it is called)."""
        self.acquire(layer_id)
        pending = [layer_id]

        def release() -> None:
            with self._lock:
                if pending:
                    self.release(pending.pop())

        return release

    @contextmanager
    def held(self, layer_id: str) -> Iterator[None]:
        release = self.hold(layer_id)
        try:
            yield
        finally:
            release()

    def count(self, layer_id: str) -> int:
        with self._lock:
            return self._counts.get(layer_id, 0)

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._counts)

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()


# ---------------------------------------------------------------------------
# parent records
# ---------------------------------------------------------------------------


class ParentRecords:
    """One file per layer naming its parent chain, nearest first.

    At ``directory/<id>``, or ``directory/<id>/<name>`` when the record lives in
    the layer's own directory.  ``chain=False`` writes only the parent id, with
    no newline ("" for a base layer: the vfs and btrfs format); otherwise one id
    a line.  Both formats read back the same.
    """

    def __init__(self, directory: Path, name: str | None = None, chain: bool = True) -> None:
        self.directory = directory
        self.name = name
        self.chain = chain

    def path(self, layer_id: str) -> Path:
        return self.directory / layer_id / self.name if self.name else self.directory / layer_id

    def format(self, chain: list[str]) -> str:
        if not self.chain:
            return chain[0] if chain else ""
        return "".join(f"{p}\n" for p in chain)

    def write(self, layer_id: str, chain: list[str], at: Path | None = None) -> None:
        """Record ``layer_id``'s chain (at ``at`` instead, to rename it into place later)."""
        (at or self.path(layer_id)).write_text(self.format(chain))

    def read(self, layer_id: str) -> list[str]:
        """The chain, nearest first; [] for a base layer or a layer without a record."""
        try:
            text = self.path(layer_id).read_text()
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [line.strip() for line in text.splitlines() if line.strip()]

    def parent(self, layer_id: str) -> str:
        chain = self.read(layer_id)
        return chain[0] if chain else ""

    def exists(self, layer_id: str) -> bool:
        return self.path(layer_id).is_file()

    def forget(self, layer_id: str) -> None:
        self.path(layer_id).unlink(missing_ok=True)

    def ids(self) -> list[str]:
        return [entry.name for entry in self.directory.iterdir()]

    def children(self, layer_id: str) -> list[str]:
        return [other for other in self.ids() if other != layer_id and self.parent(other) == layer_id]


# ---------------------------------------------------------------------------
# the crash-safety scheme
# ---------------------------------------------------------------------------


class LayerDirectory:
    """Where a driver keeps its layers, and how it keeps them consistent across crashes::

        <layers>/<id>                  a layer (whatever the driver keeps there)
        <incomplete>/<id>              present while a diff is applied: not listed, removed at start
        <scratch>/tmp-<id>.<random>    a layer being built or removed: removed at start

    ``complete`` says whether a layer with a valid id is all there (default:
    ``<layers>/<id>`` is a directory); a layer with an ``incomplete`` marker
    never is.  ``forbidden``: characters a layer id may not hold beyond ``/``
    and NUL (a branch syntax's separators); ``hidden``: whether ids starting
    with ``.`` are refused.  Creation and removal guard with ``lock`` (the
    driver's), which also covers :attr:`busy`: layers being created, mapped to
    their parent ("" for none) until they are complete or given up.
    """

    def __init__(
        self,
        driver: str,
        layers: Path,
        incomplete: Path,
        scratch: Path,
        *,
        lock: threading.RLock,
        records: ParentRecords | None = None,
        complete: Callable[[str], bool] | None = None,
        forbidden: str = "",
        hidden: bool = False,
    ) -> None:
        self.driver = driver
        self.layers = layers
        self.incomplete = incomplete
        self.scratch = scratch
        self.lock = lock
        self.records = records
        self._complete = complete or (lambda layer_id: (self.layers / layer_id).is_dir())
        self._forbidden = "/\0" + forbidden
        self._prefixes = (TMP_PREFIX, ".") if hidden else (TMP_PREFIX,)
        self.busy: dict[str, str] = {}

    def make_dirs(self) -> None:
        for d in (self.layers, self.incomplete):
            d.mkdir(parents=True, exist_ok=True)

    # -- ids and lookups -----------------------------------------------------

    def check_id(self, layer_id: str) -> str:
        if (
            not layer_id
            or any(c in layer_id for c in self._forbidden)
            or layer_id in (".", "..")
            or layer_id.startswith(self._prefixes)
            or len(layer_id) > 200
        ):
            raise InvalidParameter(f"invalid layer id {layer_id!r}")
        return layer_id

    def path(self, layer_id: str) -> Path:
        """``<layers>/<id>`` for a valid id (InvalidParameter otherwise)."""
        return self.layers / self.check_id(layer_id)

    def is_complete(self, layer_id: str) -> bool:
        try:
            self.check_id(layer_id)
        except InvalidParameter:
            return False
        return self._complete(layer_id) and not (self.incomplete / layer_id).exists()

    def exists(self, layer_id: str) -> bool:
        """``storage_exists``: complete, and False rather than an error when the disk fails."""
        try:
            return self.is_complete(layer_id)
        except OSError:
            return False

    def require(self, layer_id: str) -> Path:
        """The path of a complete layer; NotFound otherwise."""
        path = self.path(layer_id)
        if not self.is_complete(layer_id):
            raise NotFound(f"No such layer: {layer_id}")
        return path

    def ids(self) -> list[str]:
        """``storage_layers``: every complete layer, sorted."""
        return sorted(e.name for e in self.layers.iterdir() if self.is_complete(e.name))

    def tmp(self, layer_id: str) -> Path:
        """A fresh scratch name for building or removing ``layer_id`` (never shared with an
        orphaned writer of an earlier attempt)."""
        return self.scratch / f"{TMP_PREFIX}{layer_id}.{uuid.uuid4().hex[:12]}"

    # -- creation and removal ------------------------------------------------

    @contextmanager
    def creating(
        self, layer_id: str, parent_id: str | None, taken: Callable[[], bool] | None = None
    ) -> Iterator[Path | None]:
        """Reserve ``layer_id`` while it is built; yields the parent's path (None for a base).

        Conflict if the layer exists (``taken``, default: its path exists) or is
        being created; NotFound if the parent is not complete.  An ``OSError``
        in the body becomes :class:`System`.
        """
        with self.lock:
            if (taken() if taken else self.path(layer_id).exists()) or layer_id in self.busy:
                raise Conflict(f"layer {layer_id} already exists")
            source = self.require(parent_id) if parent_id else None
            self.busy[layer_id] = parent_id or ""
        try:
            with os_errors(f"{self.driver}: creating layer {layer_id}"):
                yield source
        finally:
            with self.lock:
                self.busy.pop(layer_id, None)

    def children(self, layer_id: str) -> list[str]:
        """Layers whose parent is ``layer_id``, those being created included."""
        found = [c for c, p in self.busy.items() if p == layer_id]
        if self.records is not None:
            found += self.records.children(layer_id)
        return found

    def check_removable(self, layer_id: str, in_use: str | None = None) -> None:
        """Under the lock: Conflict if ``in_use`` says why, or if the layer has children."""
        if in_use:
            raise Conflict(f"layer {layer_id} is in use ({in_use})")
        children = self.children(layer_id)
        if children:
            raise Conflict(f"layer {layer_id} has child layers: {', '.join(sorted(children))}")

    # -- applying ------------------------------------------------------------

    @contextmanager
    def applying(self, layer_id: str) -> Iterator[None]:
        """Mark the layer incomplete while the body applies a diff.

        The marker goes only when the body succeeds: a failed apply leaves the
        layer unlisted until it is removed (or deleted at the next start).
        """
        marker = self.incomplete / layer_id
        with os_errors(f"{self.driver}: marking layer {layer_id}"):
            marker.touch()
        yield
        marker.unlink()

    # -- recovery ------------------------------------------------------------

    def recover(self, remove: Callable[[Path], None], drop: Callable[[str], None]) -> None:
        """At start: ``remove`` every ``tmp-*`` scratch entry, ``drop`` every layer whose
        apply was interrupted (then its marker and record go), and forget records of
        layers that are not there."""
        for entry in self.scratch.iterdir():
            if entry.name.startswith(TMP_PREFIX):
                remove(entry)
        for marker in self.incomplete.iterdir():
            drop(marker.name)
            if self.records is not None:
                self.records.forget(marker.name)
            marker.unlink()
        if self.records is not None:
            for layer_id in self.records.ids():
                if not (self.layers / layer_id).is_dir():
                    self.records.forget(layer_id)
