"""aufs: Docker's AUFS branch-union layout, on kernel aufs or on unionfs-fuse.

Each layer is a branch directory holding only what it changes, mounted as the
union of its branch (read-write) over its parents' (read-only).  The kernel's
``aufs`` is used when ``/proc/filesystems`` lists it; otherwise (most kernels
today) the same stack is mounted with Debian's userspace ``unionfs-fuse``.  ``info`` says which (``Backend``).

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
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

from dockyard import archive
from dockyard.errors import DriverNotSupported, InvalidParameter, NotFound, System
from dockyard import hookimpl
from dockyard.models.capabilities import StorageCapabilities
from dockyard.models.runtime import Change
from dockyard.storage_common import LayerDirectory, MountCounter, ParentRecords, backing_fs, os_errors, rmtree

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
    """A union this driver has mounted, or adopted from an earlier run (then it has no
    reference until something mounts the layer again)."""

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
            raise InvalidParameter(
                f"aufs: the storage root {self.root} contains one of {bad!r}, which the "
                f"{backend} branch syntax cannot express; choose another --data-root"
            )
        self._diff = self.root / "diff"
        self._layers = self.root / "layers"
        self._mnt = self.root / "mnt"
        self._skel = self.root / "skel"
        self._lock = threading.RLock()
        self._mounts: dict[str, _Mount] = {}
        self._refs = MountCounter(self._lock)  # references to the unions in _mounts
        self._pins = MountCounter(self._lock)  # open diff streams: block removal without mounting
        self._records = ParentRecords(self._layers)
        # a layer exists once its record and its branch both do
        self._dirs = LayerDirectory(
            "aufs",
            self._diff,
            self.root / "incomplete",
            self.root,
            lock=self._lock,
            records=self._records,
            forbidden=":=,",
            hidden=True,
            complete=lambda lid: self._records.exists(lid) and (self._diff / lid).is_dir(),
        )
        try:
            self._dirs.make_dirs()
            for d in (self._layers, self._mnt, self._skel):
                d.mkdir(parents=True, exist_ok=True)
            self._recover()
        except OSError as exc:
            raise System(f"aufs: cannot initialise {self.root}: {exc}") from exc

    @classmethod
    def auto_selectable(cls, root: Path | None = None) -> bool:
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
            elif self._records.exists(lid) and not (self._dirs.incomplete / lid).exists():
                self._mounts[lid] = _Mount(Path(point))  # a restarted daemon's containers may still use it
            else:
                mounts.unmount(point)

        def drop(layer_id: str) -> None:
            self._forget(layer_id)
            rmtree(self._diff / layer_id)

        self._dirs.recover(rmtree, drop)  # tmp-*, interrupted applies, records without a branch
        for record in self._skel.iterdir():
            if not (self._diff / record.name).is_dir():
                record.unlink()
        for branch in self._diff.iterdir():
            if not self._records.exists(branch.name):
                rmtree(branch)
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

    def _branch(self, layer_id: str) -> Path:
        return self._dirs.path(layer_id)

    def _chain(self, layer_id: str) -> list[str]:
        """Parent ids, nearest first."""
        return self._records.read(layer_id)

    def _lower(self, chain: list[str]) -> View:
        return View([str(self._diff / p) for p in chain], self.markers)

    # -- required hooks ------------------------------------------------------

    @hookimpl
    def storage_create_layer(self, layer_id: str, parent_id: str | None) -> bool:
        target = self._branch(layer_id)
        taken = lambda: self._records.path(layer_id).exists() or target.exists()  # noqa: E731
        with self._dirs.creating(layer_id, parent_id, taken):
            chain = [parent_id, *self._chain(parent_id)] if parent_id else []
            tmp_branch = self._dirs.tmp(layer_id)
            tmp_record = self._dirs.tmp(f"record-{layer_id}")
            try:
                tmp_branch.mkdir()
                tmp_branch.chmod(0o755)
                self._records.write(layer_id, chain, at=tmp_record)
                (self._mnt / layer_id).mkdir(exist_ok=True)
                os.rename(tmp_branch, target)  # a branch without a record is invisible, and removed on start
                os.rename(tmp_record, self._records.path(layer_id))
            except BaseException:
                for leftover in (tmp_branch, tmp_record):
                    rmtree(leftover)
                if not self._records.path(layer_id).exists():
                    rmtree(target)
                raise
        return True

    @hookimpl
    def storage_remove_layer(self, layer_id: str) -> bool:
        branch = self._branch(layer_id)
        tmp = self._dirs.tmp(layer_id)
        with self._lock:
            if not branch.is_dir() and not self._records.path(layer_id).exists():
                raise NotFound(f"No such layer: {layer_id}")
            count, pins = self._refs.count(layer_id), self._pins.count(layer_id)
            self._dirs.check_removable(layer_id, (count or pins) and f"mounted {count} times, {pins} diff streams open")
            with os_errors(f"aufs: removing layer {layer_id}"):
                self._forget(layer_id)  # an adopted union nobody references any more
                if branch.is_dir():
                    os.rename(branch, tmp)  # invisible at once; the slow delete happens unlocked
                self._records.forget(layer_id)
                (self._dirs.incomplete / layer_id).unlink(missing_ok=True)
                (self._skel / layer_id).unlink(missing_ok=True)
                try:
                    (self._mnt / layer_id).rmdir()
                except FileNotFoundError:
                    pass
        rmtree(tmp)
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
                self._refs.acquire(layer_id)
                return mount.path
            self._dirs.require(layer_id)
            server = self._mount_union(layer_id)
            self._mounts[layer_id] = _Mount(self._mnt / layer_id, server)
            self._refs.acquire(layer_id)
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
            if layer_id not in self._mounts or self._refs.count(layer_id) == 0:
                return True  # not mounted, or adopted and not referenced
            if self._refs.release(layer_id) == 0:
                mount = self._mounts.pop(layer_id)
                mounts.unmount(str(mount.path), mount.server)
        return True

    @hookimpl
    def storage_path(self, layer_id: str) -> Path | None:
        with self._lock:
            mount = self._mounts.get(layer_id)
            return mount.path if mount is not None and self._refs.count(layer_id) else None

    @hookimpl
    def storage_parent(self, layer_id: str) -> str:
        self._dirs.require(layer_id)
        return self._records.parent(layer_id)

    @hookimpl
    def storage_exists(self, layer_id: str) -> bool:
        return self._dirs.exists(layer_id)

    @hookimpl
    def storage_layers(self) -> list[str]:
        return self._dirs.ids()

    @hookimpl
    def storage_apply_diff(self, layer_id: str, diff: BinaryIO) -> int:
        branch = self._dirs.require(layer_id)
        chain = self._chain(layer_id)
        with self._dirs.applying(layer_id):
            with os_errors(f"aufs: preparing layer {layer_id}"):
                staging = tempfile.mkdtemp(prefix=f"tmp-markers-{layer_id[:12]}.", dir=self.root)
            try:
                with os_errors(f"aufs: applying to layer {layer_id}"):
                    # a base layer has nothing below it to hide: whiteouts just delete; a child copies
                    # directories the tar needs but does not name up from its parents' branches
                    handler = self.markers.handler(staging, self._lower(chain)) if chain else archive.PLAIN
                    written = archive.apply_layer(branch, diff, handler)
                    self.markers.finish_apply(str(branch), staging)
            finally:
                rmtree(staging)
        return written

    @hookimpl
    def storage_status(self) -> list[tuple[str, str]]:
        with self._lock:
            unions = len(self._mounts)
        return [
            ("Root Dir", str(self.root)),
            ("Backing Filesystem", backing_fs(self.root)),
            ("Backend", "aufs" if self.backend == "aufs" else mounts.unionfs_version()),
            ("Dirs", str(len(self.storage_layers()))),
            ("Union Mounts", str(unions)),
        ]

    @hookimpl
    def storage_cleanup(self) -> bool:
        with self._lock:
            points = {str(m.path): m.server for m in self._mounts.values()}
            self._mounts.clear()
            self._refs.clear()
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
        branch = self._dirs.require(layer_id)
        with os_errors(f"aufs: reading layer {layer_id}"):
            return self._changes(branch, self._chain(layer_id))

    def _changes(self, branch: Path, chain: list[str]) -> list[Change]:
        if not chain:
            return archive.changes(branch, None)
        return branch_changes(str(branch), self._lower(chain), self.markers)

    @hookimpl
    def storage_diff_size(self, layer_id: str) -> int:
        branch = self._dirs.require(layer_id)
        with os_errors(f"aufs: reading layer {layer_id}"):
            return archive.changes_size(branch, self._changes(branch, self._chain(layer_id)))

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
            branch = self._dirs.require(layer_id)
            releases: list[Callable[[], None]] = [self._pins.hold(layer_id)]

        def release() -> None:
            for step in reversed(releases):
                step()

        try:
            chain = self._chain(layer_id)
            if not chain:
                return archive.export_tree(branch, on_close=release)
            with os_errors(f"aufs: reading layer {layer_id}"):
                found = self._changes(branch, chain)
            source = branch
            if any(c.kind != DELETED and not os.path.lexists(os.path.join(branch, c.path.lstrip("/"))) for c in found):
                source = self.storage_mount(layer_id)
                releases.append(lambda: self.storage_unmount(layer_id))
            return archive.export_changes(source, found, on_close=release)
        except BaseException:
            release()
            raise
