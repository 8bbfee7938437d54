"""aufs: Docker's AUFS branch-union layout, on kernel aufs or on unionfs-fuse.

Each layer is a branch directory holding only what it changes, mounted as the
union of its branch (read-write) over its parents' (read-only).  The kernel's ``aufs`` is used when ``/proc/filesystems`` lists
it; otherwise (most kernels today) the same stack is mounted with Debian's
userspace ``unionfs-fuse``.  ``info`` says which (``Backend``).

On disk, under ``<data-root>/storage/aufs`` (Docker's layout plus crash bookkeeping)::

    diff/<id>/          the layer's branch: its files, and its whiteout markers
                        (aufs: .wh.<name> files; unionfs-fuse: .unionfs-fuse/<dir>/<name>_HIDDEN~)
    layers/<id>         its parent chain, nearest first, one id per line ("" for a base layer)
    mnt/<id>/           where the union is mounted
    skel/<id>           unionfs-fuse: the branch holds every directory of the union (see make_skeleton)
    incomplete/<id>     present while a diff is applied; such a layer is not listed
    tmp-*               a branch or record being built or removed, a marker tree being staged

A layer exists once ``layers/<id>`` and ``diff/<id>`` both do: creating renames
the (empty) branch into place, then the record; removing renames the branch
away first.  On start, whatever a crash left half done is deleted, union
mounts whose server died are detached and live ones are adopted.

Mounting is reference-counted in memory; every layer, a base layer too, is
seen through a union mount, so a layer looks the same whether it is mounted
itself or seen from a child (unionfs-fuse shows no xattrs, for one).  Diffs
and changes are computed from the branch and its markers, looking names up in
the parents' branches directly (:mod:`.branches`): image layers are never
mounted for them.  A diff whose deletions sit in directories the branch never
copied up reads those directories' headers through a (reference-counted) mount.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

from dockyard import archive
from dockyard.errors import Conflict, DockyardError, DriverNotSupported, InvalidParameter, NotFound, System
from dockyard.hookspecs import hookimpl
from dockyard.models.capabilities import StorageCapabilities
from dockyard.models.runtime import Change

from . import mounts
from .branches import DELETED, AufsMarkers, Markers, UnionfsMarkers, View, branch_changes, make_skeleton

log = logging.getLogger(__name__)

BACKENDS = ("auto", "aufs", "unionfs-fuse")

#: kernel aufs keeps everything a layer tar holds (not exercised here: this kernel has no aufs)
AUFS_CAPABILITIES = StorageCapabilities()
#: Debian's unionfs-fuse is built without xattr support: getxattr/setxattr say EOPNOTSUPP
#: through the mount (branch files keep theirs, but a container cannot see or set any)
UNIONFS_CAPABILITIES = StorageCapabilities(xattrs=False)


@dataclass
class _Mount:
    count: int  # 0: adopted from an earlier run, not referenced yet
    path: Path
    server: subprocess.Popen | None = None  # unionfs-fuse, reaped after unmount


class AufsDriver:
    """Storage driver keeping layers as aufs branches, union-mounted per container."""

    #: replaced per instance by the backend's; the class says what the fallback can do
    capabilities = UNIONFS_CAPABILITIES

    def __init__(self, root: Path, options: dict) -> None:
        options = dict(options or {})
        backend = options.pop("aufs.backend", "auto")
        if options:
            raise InvalidParameter(f"aufs: unknown storage option(s): {', '.join(sorted(options))}")
        if backend not in BACKENDS:
            raise InvalidParameter(f"aufs: aufs.backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        if backend == "auto":
            backend = "aufs" if mounts.kernel_has_aufs() else "unionfs-fuse"
        if backend == "aufs" and not mounts.kernel_has_aufs():
            raise InvalidParameter("aufs: aufs.backend=aufs, but the kernel has no aufs (/proc/filesystems)")
        if backend == "unionfs-fuse" and (problem := mounts.fuse_problem()):
            raise DriverNotSupported("aufs", problem)
        self.backend = backend
        self.markers: Markers = AufsMarkers() if backend == "aufs" else UnionfsMarkers()
        self.capabilities = AUFS_CAPABILITIES if backend == "aufs" else UNIONFS_CAPABILITIES
        self.root = Path(os.path.realpath(root))
        bad = ":=," if backend == "aufs" else ":="
        if any(c in str(self.root) for c in bad):
            raise InvalidParameter(f"aufs: the storage root {self.root} contains one of {bad!r}, which the "
                                   f"{backend} branch syntax cannot express; choose another --data-root")
        self._diff = self.root / "diff"
        self._layers = self.root / "layers"
        self._mnt = self.root / "mnt"
        self._incomplete = self.root / "incomplete"
        self._skel = self.root / "skel"
        self._lock = threading.RLock()
        self._mounts: dict[str, _Mount] = {}
        self._pins: dict[str, int] = {}  # open diff streams: block removal without mounting
        self._busy: dict[str, str] = {}  # layer being created -> parent ("" if none)
        try:
            for d in (self._diff, self._layers, self._mnt, self._incomplete, self._skel):
                d.mkdir(parents=True, exist_ok=True)
            self._recover()
        except OSError as exc:
            raise System(f"aufs: cannot initialise {self.root}: {exc}") from exc

    @classmethod
    def auto_selectable(cls) -> bool:
        """Chosen without being named only on kernel aufs, never on the FUSE fallback."""
        return mounts.kernel_has_aufs()

    @classmethod
    def check_supported(cls) -> None:
        """Kernel aufs, or unionfs-fuse with /dev/fuse, as root."""
        if mounts.kernel_has_aufs():
            return
        problem = mounts.fuse_problem()
        if problem:
            raise DriverNotSupported("aufs", problem)

    # -- helpers -------------------------------------------------------------

    def _recover(self) -> None:
        """Undo what a crash left: dead or orphaned mounts, half-built layers, interrupted applies."""
        for point in mounts.mounts_under(str(self._mnt)):
            lid = os.path.basename(point)
            if not mounts.alive(point):
                log.warning("aufs: the union at %s lost its server; detaching it", point)
                mounts.detach(point)
            elif (self._layers / lid).is_file() and not (self._incomplete / lid).exists():
                self._mounts[lid] = _Mount(0, Path(point))  # a restarted daemon's containers may still use it
            else:
                mounts.unmount(point)
        for entry in self.root.iterdir():
            if entry.name.startswith("tmp-"):
                _rmtree(entry)
        for marker in self._incomplete.iterdir():
            self._forget(marker.name)
            _rmtree(self._diff / marker.name)
            (self._layers / marker.name).unlink(missing_ok=True)
            marker.unlink()
        for record in (*self._layers.iterdir(), *self._skel.iterdir()):
            if not (self._diff / record.name).is_dir():
                record.unlink()
        for branch in self._diff.iterdir():
            if not (self._layers / branch.name).is_file():
                _rmtree(branch)
        for point in self._mnt.iterdir():
            if not (self._layers / point.name).is_file() and point.name not in self._mounts:
                try:
                    point.rmdir()
                except OSError:
                    pass

    def _forget(self, layer_id: str) -> None:
        """Unmount whatever is mounted for a layer (adopted or counted) and drop it."""
        mount = self._mounts.pop(layer_id, None)
        if mount is not None:
            mounts.unmount(str(mount.path), mount.server)

    def _check_id(self, layer_id: str) -> str:
        if (not layer_id or any(c in layer_id for c in "/\0:=,") or layer_id in (".", "..")
                or layer_id.startswith(("tmp-", ".")) or len(layer_id) > 200):
            raise InvalidParameter(f"invalid layer id {layer_id!r}")
        return layer_id

    def _branch(self, layer_id: str) -> Path:
        return self._diff / self._check_id(layer_id)

    def _complete(self, layer_id: str) -> bool:
        try:
            branch = self._branch(layer_id)
        except InvalidParameter:
            return False
        return ((self._layers / layer_id).is_file() and branch.is_dir()
                and not (self._incomplete / layer_id).exists())

    def _require(self, layer_id: str) -> Path:
        branch = self._branch(layer_id)
        if not self._complete(layer_id):
            raise NotFound(f"No such layer: {layer_id}")
        return branch

    def _chain(self, layer_id: str) -> list[str]:
        """Parent ids, nearest first."""
        try:
            return [line.strip() for line in (self._layers / layer_id).read_text().splitlines() if line.strip()]
        except FileNotFoundError:
            return []

    def _lower(self, chain: list[str]) -> View:
        return View([str(self._diff / p) for p in chain], self.markers)

    def _children(self, layer_id: str) -> list[str]:
        found = [c for c, p in self._busy.items() if p == layer_id]
        for record in self._layers.iterdir():
            chain = self._chain(record.name)
            if chain and chain[0] == layer_id:
                found.append(record.name)
        return found

    # -- required hooks ------------------------------------------------------

    @hookimpl
    def storage_create_layer(self, layer_id: str, parent_id: str | None) -> bool:
        target = self._branch(layer_id)
        with self._lock:
            if (self._layers / layer_id).exists() or target.exists() or layer_id in self._busy:
                raise Conflict(f"layer {layer_id} already exists")
            chain: list[str] = []
            if parent_id:
                self._require(parent_id)
                chain = [parent_id, *self._chain(parent_id)]
            self._busy[layer_id] = parent_id or ""
        token = uuid.uuid4().hex[:12]
        tmp_branch = self.root / f"tmp-{layer_id}.{token}"
        tmp_record = self.root / f"tmp-record-{layer_id}.{token}"
        try:
            tmp_branch.mkdir()
            tmp_branch.chmod(0o755)
            tmp_record.write_text("".join(f"{p}\n" for p in chain))
            (self._mnt / layer_id).mkdir(exist_ok=True)
            os.rename(tmp_branch, target)  # a branch without a record is invisible, and removed on start
            os.rename(tmp_record, self._layers / layer_id)
        except BaseException as exc:
            for leftover in (tmp_branch, tmp_record):
                _rmtree(leftover)
            if not (self._layers / layer_id).exists():
                _rmtree(target)
            if isinstance(exc, OSError):
                raise System(f"aufs: creating layer {layer_id}: {exc}") from exc
            raise
        finally:
            with self._lock:
                self._busy.pop(layer_id, None)
        return True

    @hookimpl
    def storage_remove_layer(self, layer_id: str) -> bool:
        branch = self._branch(layer_id)
        tmp = self.root / f"tmp-{layer_id}.{uuid.uuid4().hex[:12]}"
        with self._lock:
            if not branch.is_dir() and not (self._layers / layer_id).exists():
                raise NotFound(f"No such layer: {layer_id}")
            mount = self._mounts.get(layer_id)
            if (mount and mount.count) or self._pins.get(layer_id):
                raise Conflict(f"layer {layer_id} is in use (mounted {mount.count if mount else 0} times, "
                               f"{self._pins.get(layer_id, 0)} diff streams open)")
            children = self._children(layer_id)
            if children:
                raise Conflict(f"layer {layer_id} has child layers: {', '.join(sorted(children))}")
            try:
                self._forget(layer_id)  # an adopted union nobody references any more
                if branch.is_dir():
                    os.rename(branch, tmp)  # invisible at once; the slow delete happens unlocked
                (self._layers / layer_id).unlink(missing_ok=True)
                (self._incomplete / layer_id).unlink(missing_ok=True)
                (self._skel / layer_id).unlink(missing_ok=True)
                try:
                    (self._mnt / layer_id).rmdir()
                except FileNotFoundError:
                    pass
            except OSError as exc:
                raise System(f"aufs: removing layer {layer_id}: {exc}") from exc
        _rmtree(tmp)
        return True

    @hookimpl
    def storage_mount(self, layer_id: str) -> Path:
        with self._lock:
            mount = self._mounts.get(layer_id)
            if mount is not None:
                if not mounts.alive(str(mount.path)):
                    log.warning("aufs: the union of layer %s lost its server; mounting it again", layer_id)
                    mounts.detach(str(mount.path))
                    mount.server = self._mount_union(layer_id)
                mount.count += 1
                return mount.path
            self._require(layer_id)
            server = self._mount_union(layer_id)
            self._mounts[layer_id] = _Mount(1, self._mnt / layer_id, server)
            return self._mnt / layer_id

    def _mount_union(self, layer_id: str) -> subprocess.Popen | None:
        target = self._mnt / layer_id
        try:
            target.mkdir(exist_ok=True)
        except OSError as exc:
            raise System(f"aufs: creating mount point {target}: {exc}") from exc
        chain = self._chain(layer_id)
        branches = [str(self._diff / lid) for lid in (layer_id, *chain)]
        if self.backend == "aufs":
            mounts.mount_aufs(branches, str(target))
            return None
        flag = self._skel / layer_id
        if not flag.exists():  # once per layer, before its first union mount
            try:
                make_skeleton(branches[0], self._lower(chain), self.markers)
                flag.touch()
            except OSError as exc:
                raise System(f"aufs: preparing the branch of layer {layer_id}: {exc}") from exc
        return mounts.mount_unionfs(branches, str(target))

    @hookimpl
    def storage_unmount(self, layer_id: str) -> bool:
        with self._lock:
            mount = self._mounts.get(layer_id)
            if mount is None or mount.count == 0:
                return True
            mount.count -= 1
            if mount.count == 0:
                del self._mounts[layer_id]
                mounts.unmount(str(mount.path), mount.server)
        return True

    @hookimpl
    def storage_path(self, layer_id: str) -> Path | None:
        with self._lock:
            mount = self._mounts.get(layer_id)
            return mount.path if mount is not None and mount.count else None

    @hookimpl
    def storage_parent(self, layer_id: str) -> str:
        self._require(layer_id)
        chain = self._chain(layer_id)
        return chain[0] if chain else ""

    @hookimpl
    def storage_exists(self, layer_id: str) -> bool:
        try:
            return self._complete(layer_id)
        except OSError:
            return False

    @hookimpl
    def storage_layers(self) -> list[str]:
        return sorted(e.name for e in self._diff.iterdir() if self._complete(e.name))

    @hookimpl
    def storage_apply_diff(self, layer_id: str, diff: BinaryIO) -> int:
        branch = self._require(layer_id)
        chain = self._chain(layer_id)
        marker = self._incomplete / layer_id
        try:
            marker.touch()
            staging = tempfile.mkdtemp(prefix=f"tmp-markers-{layer_id[:12]}.", dir=self.root)
        except OSError as exc:
            raise System(f"aufs: preparing layer {layer_id}: {exc}") from exc
        try:
            # a base layer has nothing below it to hide: whiteouts just delete
            handler = self.markers.handler(staging, self._lower(chain)) if chain else archive.PLAIN
            written = archive.apply_layer(branch, diff, handler)
            self.markers.finish_apply(str(branch), staging)
        except OSError as exc:
            raise System(f"aufs: applying to layer {layer_id}: {exc}") from exc
        finally:
            _rmtree(Path(staging))
        marker.unlink()  # a failed apply leaves the marker: the layer stays unlisted until removed
        return written

    @hookimpl
    def storage_status(self) -> list[tuple[str, str]]:
        with self._lock:
            unions = len(self._mounts)
        return [("Root Dir", str(self.root)),
                ("Backing Filesystem", mounts.backing_fs(str(self.root))),
                ("Backend", "aufs" if self.backend == "aufs" else mounts.unionfs_version()),
                ("Dirs", str(len(self.storage_layers()))),
                ("Union Mounts", str(unions))]

    @hookimpl
    def storage_cleanup(self) -> bool:
        with self._lock:
            points = {str(m.path): m.server for m in self._mounts.values()}
            self._mounts.clear()
            for point in mounts.mounts_under(str(self._mnt)):  # also unions a crashed run left
                points.setdefault(point, None)
            failed = []
            for point, server in points.items():
                try:
                    mounts.unmount(point, server)
                except System as exc:
                    failed.append(str(exc))
        if failed:
            raise System("; ".join(failed))
        return True

    # -- optional hooks: computed from the branch, never by mounting the parents --

    @hookimpl
    def storage_changes(self, layer_id: str) -> list[Change]:
        branch = self._require(layer_id)
        return _wrap_os(lambda: self._changes(branch, self._chain(layer_id)), layer_id)

    def _changes(self, branch: Path, chain: list[str]) -> list[Change]:
        if not chain:
            return archive.changes(branch, None)
        return branch_changes(str(branch), self._lower(chain), self.markers)

    @hookimpl
    def storage_diff_size(self, layer_id: str) -> int:
        branch = self._require(layer_id)
        return _wrap_os(lambda: archive.changes_size(branch, self._changes(branch, self._chain(layer_id))),
                        layer_id)

    @hookimpl
    def storage_diff(self, layer_id: str) -> BinaryIO:
        """The branch's changes as a layer tar.

        Content comes from the branch itself.  Deletions become ``.wh.`` entries
        and opaque directories explicit whiteouts of what they hide, so the tar
        is byte for byte the one vfs (and the naive diff) write for the same
        change.  When a deletion's directory exists only below (unionfs-fuse keeps
        markers apart from content), that directory's header comes from the union.
        """
        with self._lock:
            branch = self._require(layer_id)
            self._pins[layer_id] = self._pins.get(layer_id, 0) + 1
        releases: list[Callable[[], None]] = [lambda: self._unpin(layer_id)]

        def release() -> None:
            for step in reversed(releases):
                step()

        try:
            chain = self._chain(layer_id)
            if not chain:
                return archive.export_tree(branch, on_close=release)
            found = _wrap_os(lambda: self._changes(branch, chain), layer_id)
            source = branch
            if any(c.kind != DELETED and not os.path.lexists(os.path.join(branch, c.path.lstrip("/")))
                   for c in found):
                source = self.storage_mount(layer_id)
                releases.append(lambda: self.storage_unmount(layer_id))
            return archive.export_changes(source, found, on_close=release)
        except BaseException:
            release()
            raise

    def _unpin(self, layer_id: str) -> None:
        with self._lock:
            count = self._pins.get(layer_id, 0) - 1
            if count > 0:
                self._pins[layer_id] = count
            else:
                self._pins.pop(layer_id, None)


def _wrap_os(fn, layer_id: str):
    try:
        return fn()
    except DockyardError:
        raise
    except OSError as exc:
        raise System(f"aufs: reading layer {layer_id}: {exc}") from exc


def _rmtree(path: Path) -> None:
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except NotADirectoryError:
        path.unlink(missing_ok=True)
