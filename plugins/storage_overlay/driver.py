"""overlay: kernel overlayfs, one upper directory per layer (moby's overlay2).

On disk, under ``<data-root>/storage/overlay``::

    layers/<id>/diff/     the layer's own content (overlay upperdir); whiteouts are
                          char 0/0 devices, opaque dirs carry trusted.overlay.opaque=y
    layers/<id>/work/     overlay workdir
    layers/<id>/merged/   mount point of the union (unused for a base layer)
    layers/<id>/lower     the parent chain, nearest first, one id a line ("" for a base)
    incomplete/<id>       present while a diff is applied; such a layer is not listed
    tmp-<id>.<rand>/      a layer being built or removed

A layer is built in ``tmp-*`` and renamed into ``layers/`` when complete; on start,
``tmp-*`` and incomplete layers left by a crash are deleted (the vfs scheme).

Mounting: a base layer has nothing below it, so ``storage_mount`` returns its
``diff/`` directly (moby does the same).  Any other layer is an overlay of its
``diff/`` on the ``diff/`` of every ancestor, always with
``index=off,redirect_dir=off,metacopy=off`` so that ``diff/`` alone is a
complete record of the layer's changes.  Lower directories are passed by file
descriptor (:mod:`.kernel`), so there are no short-link names to keep and deep
stacks do not hit the one-page option limit: 500 layers with ``fsconfig``.

Diffs are native: the upper directory is walked and each entry is compared with
the parent's view (the parent mounted, or its ``diff/`` if it is a base layer),
so the cost follows the size of the change, not of the image.  The tar is then
written by :func:`dockyard.archive.export_changes` from those changes, with
content read straight from ``diff/`` (every added or changed path is there;
the handler leaves overlay's own ``trusted.overlay.*`` xattrs out), which gives
the same bytes the vfs driver gives for the same content; a base layer's diff
is its ``diff/`` as it is.

Applying a diff to a child layer copies a directory the tar does not name up
from the parent's view when the layer needs it (the parent of a whiteout, of
an opaque marker or of an entry), so such markers are not lost and the
directory keeps its owner, mode and xattrs in the union.

Mount references are kept in memory.  A union left mounted by a daemon that was
killed is adopted: the next ``storage_mount`` of that layer reuses it, and an
``storage_unmount`` or ``storage_cleanup`` unmounts it.
"""

from __future__ import annotations

import os
import stat
import subprocess
import threading
import uuid
from pathlib import Path
from typing import BinaryIO

from dockyard import archive
from dockyard.errors import DriverNotSupported, InvalidParameter, NotFound, System
from dockyard import hookimpl
from dockyard.models.capabilities import StorageCapabilities
from dockyard.models.runtime import Change
from dockyard.storage_common import (
    LayerDirectory,
    MountCounter,
    ParentRecords,
    backing_fs,
    kernel_has,
    os_errors,
    rmtree,
)

from . import kernel

NAME = "overlay"
#: the kernel's stack limit (OVL_MAX_STACK); deeper chains are refused at create time
MAX_LOWERS = 500
#: backing file systems overlay cannot use as upper (moby's list)
UNSUPPORTED_BACKING = {"overlay", "aufs", "ecryptfs"}
OVERLAY = archive.OverlayWhiteouts()
MOUNT_METHODS = ("auto", "fsconfig", "legacy")


class OverlayDriver:
    """Storage driver on kernel overlayfs."""

    #: copy-up with index=off gives a modified hard-linked file a new inode (its
    #: other names keep the old content); apply, layer creation and diff keep
    #: link groups, which is what the capability covers.  Everything else is kept.
    capabilities = StorageCapabilities()

    def __init__(self, root: Path, options: dict) -> None:
        options = dict(options or {})
        method = str(options.pop("mount_method", options.pop("overlay.mount_method", "auto")))
        if options:
            raise InvalidParameter(f"overlay: unknown storage option(s): {', '.join(sorted(options))}")
        if method not in MOUNT_METHODS:
            raise InvalidParameter(f"overlay: mount_method must be one of {', '.join(MOUNT_METHODS)}")
        self.root = Path(root)
        self._layers = self.root / "layers"
        self._lock = threading.RLock()
        self._mounts = MountCounter(self._lock)
        self._holds = MountCounter(self._lock)  # diff streams still being read
        self._records = ParentRecords(self._layers, "lower")  # the chain, kept in the layer's directory
        self._dirs = LayerDirectory(
            NAME,
            self._layers,
            self.root / "incomplete",
            self.root,
            lock=self._lock,
            records=self._records,
            complete=self._records.exists,
        )
        try:
            self._dirs.make_dirs()
            self._backing = backing_fs(self.root)
            if self._backing in UNSUPPORTED_BACKING:
                raise DriverNotSupported(NAME, f"{self.root} is on {self._backing}, which overlay cannot use as upper")
            self._d_type = kernel.supports_d_type(str(self.root))
            if not self._d_type:
                raise DriverNotSupported(
                    NAME,
                    f"the file system of {self.root} ({self._backing}) does not "
                    "report d_type; reformat it (xfs: ftype=1)",
                )
            self._method, self._mount_fn = self._probe(method)
            self._recover()
        except OSError as exc:
            raise System(f"overlay: cannot initialise {self.root}: {exc}") from exc
        # a daemon killed while containers ran leaves their unions mounted: adopt them
        self._adopted = {
            Path(point).parent.name
            for point, fstype in kernel.mounts_under(str(self._layers))
            if fstype == "overlay" and Path(point).name == "merged"
        }

    @classmethod
    def check_supported(cls) -> None:
        """The kernel must have overlay (loaded on demand) and we must be able to mount."""
        if os.geteuid() != 0:
            raise DriverNotSupported(NAME, "needs root (mount, mknod of whiteouts, trusted.* xattrs)")
        if not kernel_has("overlay"):
            subprocess.run(["modprobe", "overlay"], capture_output=True, check=False)
            if not kernel_has("overlay"):
                raise DriverNotSupported(NAME, "the kernel has no overlay file system (modprobe overlay failed)")

    # -- set-up --------------------------------------------------------------

    def _probe(self, wanted: str):
        """Find a mount method that works here with a trial mount (it also checks the options)."""
        candidates = [("fsconfig", kernel.mount_fsconfig), ("legacy", kernel.mount_legacy)]
        if wanted != "auto":
            candidates = [c for c in candidates if c[0] == wanted]
        probe = self.root / f"tmp-probe.{uuid.uuid4().hex[:12]}"
        errors = []
        try:
            for sub in ("l1", "l2", "upper", "work", "merged"):
                (probe / sub).mkdir(parents=True)
            (probe / "l2" / "f").write_text("lower")
            OVERLAY.whiteout(str(probe / "l1"), str(probe / "l1" / "f"))
            for name, fn in candidates:
                try:
                    fn(
                        str(probe / "merged"),
                        [str(probe / "l1"), str(probe / "l2")],
                        str(probe / "upper"),
                        str(probe / "work"),
                    )
                except OSError as exc:
                    errors.append(f"{name}: {exc}")
                    continue
                try:
                    ok = not (probe / "merged" / "f").exists()
                    (probe / "merged" / "new").write_text("x")
                    ok = ok and (probe / "upper" / "new").exists()
                finally:
                    kernel.umount(str(probe / "merged"))
                if ok:
                    return name, fn
                errors.append(f"{name}: the trial union did not behave")
        finally:
            rmtree(probe)
        raise DriverNotSupported(NAME, f"cannot mount overlay on {self._backing} at {self.root}: " + "; ".join(errors))

    def _recover(self) -> None:
        """Delete what a crash left: half-built or half-removed layers, interrupted applies."""

        def remove(path: Path) -> None:
            _detach_all(path)
            rmtree(path)

        self._dirs.recover(remove, lambda layer_id: remove(self._layers / layer_id))

    def _chain(self, layer_id: str) -> list[str]:
        """Ancestors of a layer, nearest first."""
        return self._records.read(layer_id)

    # -- required hooks ------------------------------------------------------

    @hookimpl
    def storage_create_layer(self, layer_id: str, parent_id: str | None) -> bool:
        target = self._dirs.path(layer_id)
        with self._dirs.creating(layer_id, parent_id):
            chain = [parent_id, *self._chain(parent_id)] if parent_id else []
            if len(chain) > MAX_LOWERS:
                raise InvalidParameter(
                    f"overlay: layer {layer_id} would sit on {len(chain)} layers; "
                    f"the kernel stacks at most {MAX_LOWERS}"
                )
            tmp = self._dirs.tmp(layer_id)
            try:
                tmp.mkdir()
                for sub in ("diff", "work", "merged"):
                    (tmp / sub).mkdir()
                diff = tmp / "diff"
                if parent_id:  # the union's root takes the upper root's owner and mode: copy the parent's
                    st = os.lstat(self._layers / parent_id / "diff")
                    os.chown(diff, st.st_uid, st.st_gid)
                    os.chmod(diff, stat.S_IMODE(st.st_mode))
                else:
                    diff.chmod(0o755)
                self._records.write(layer_id, chain, at=tmp / "lower")
                os.rename(tmp, target)
            except BaseException:
                rmtree(tmp)
                raise
        return True

    @hookimpl
    def storage_remove_layer(self, layer_id: str) -> bool:
        path = self._dirs.path(layer_id)
        tmp = self._dirs.tmp(layer_id)
        with self._lock:
            if not path.is_dir():
                raise NotFound(f"No such layer: {layer_id}")
            count = self._mounts.count(layer_id)
            self._dirs.check_removable(layer_id, (count or self._holds.count(layer_id)) and f"mounted {count} times")
            with os_errors(f"overlay: removing layer {layer_id}"):
                self._adopted.discard(layer_id)
                _detach_all(path)  # a union left by a killed daemon: nothing holds a reference to it
                os.rename(path, tmp)
                (self._dirs.incomplete / layer_id).unlink(missing_ok=True)
        rmtree(tmp)
        return True

    @hookimpl
    def storage_mount(self, layer_id: str) -> Path:
        with self._lock:
            path = self._dirs.require(layer_id)
            chain = self._chain(layer_id)
            if not chain:
                self._mounts.acquire(layer_id)
                return path / "diff"
            if self._mounts.count(layer_id) == 0:
                if layer_id in self._adopted and kernel.is_mountpoint(str(path / "merged")):
                    self._adopted.discard(layer_id)
                else:
                    self._adopted.discard(layer_id)
                    self._mount_union(layer_id, path, chain)
            self._mounts.acquire(layer_id)
            return path / "merged"

    def _mount_union(self, layer_id: str, path: Path, chain: list[str]) -> None:
        work = path / "work"
        try:
            for leftover in work.iterdir():
                # "work/work" the kernel empties itself at mount, and it may still be used by a union
                # a running container kept through a daemon restart; anything else ("index",
                # "incompat/volatile" from other options) would make the mount fail
                if leftover.name != "work":
                    rmtree(leftover)
            self._mount_fn(
                str(path / "merged"), [str(self._layers / c / "diff") for c in chain], str(path / "diff"), str(work)
            )
        except OSError as exc:
            raise System(f"overlay: mounting layer {layer_id} ({len(chain)} lower layers): {exc}") from exc

    @hookimpl
    def storage_unmount(self, layer_id: str) -> bool:
        with self._lock:
            count = self._mounts.count(layer_id)
            if self._mounts.release(layer_id):
                return True
            try:
                path = self._dirs.path(layer_id)
            except InvalidParameter:
                return True
            if count == 1 and self._chain(layer_id):
                self._umount(layer_id, path / "merged")
            elif count == 0:
                self._drop_stale_mount(layer_id)  # a reference the killed daemon held
        return True

    def _drop_stale_mount(self, layer_id: str) -> None:
        if layer_id in self._adopted:
            self._adopted.discard(layer_id)
            self._umount(layer_id, self._layers / layer_id / "merged")

    def _umount(self, layer_id: str, merged: Path) -> None:
        try:
            kernel.umount(str(merged))
        except OSError as exc:
            raise System(f"overlay: unmounting layer {layer_id}: {exc}") from exc

    @hookimpl
    def storage_path(self, layer_id: str) -> Path | None:
        with self._lock:
            if not self._mounts.count(layer_id):
                return None
            path = self._layers / layer_id
            return path / "merged" if self._chain(layer_id) else path / "diff"

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
        path = self._dirs.require(layer_id)
        parent = self._records.parent(layer_id)
        with self._dirs.applying(layer_id):
            if not parent:  # a base layer hides nothing: whiteouts there simply delete
                return archive.apply_layer(path / "diff", diff, archive.PLAIN)
            # the parent's view, for the directories the tar needs but does not name
            lower = self.storage_mount(parent)
            try:
                return archive.apply_layer(path / "diff", diff, archive.OverlayWhiteouts(lower=str(lower)))
            finally:
                self.storage_unmount(parent)

    @hookimpl
    def storage_status(self) -> list[tuple[str, str]]:
        return [
            ("Backing Filesystem", self._backing),
            ("Supports d_type", str(self._d_type).lower()),
            ("Using metacopy", "false"),
            ("Native Overlay Diff", "true"),
            (
                "Mount Method",
                {"fsconfig": "fsconfig (lowerdir+ by fd)", "legacy": "mount(2) (/proc/self/fd lowerdirs)"}[
                    self._method
                ],
            ),
            ("Layers", str(len(self.storage_layers()))),
        ]

    @hookimpl
    def storage_cleanup(self) -> bool:
        with self._lock:
            for layer_id in sorted(set(self._mounts.ids()) | self._adopted):
                merged = self._layers / layer_id / "merged"
                if kernel.is_mountpoint(str(merged)):
                    self._umount(layer_id, merged)
            self._mounts.clear()
            self._adopted.clear()
        return True

    # -- optional hooks: native diff from the upper directory -----------------

    def _changes(self, layer_id: str) -> list[Change]:
        """Changes of a layer, read from its upper dir against the parent's view."""
        path = self._dirs.require(layer_id)
        parent = self._records.parent(layer_id)
        if not parent:
            with os_errors(f"overlay: reading layer {layer_id}"):
                return archive.changes(path / "diff", None)
        lower = self.storage_mount(parent)
        try:
            with os_errors(f"overlay: reading layer {layer_id}"):
                return upper_changes(path / "diff", lower)
        finally:
            self.storage_unmount(parent)

    @hookimpl
    def storage_changes(self, layer_id: str) -> list[Change]:
        with self._holds.held(layer_id):
            return self._changes(layer_id)

    @hookimpl
    def storage_diff_size(self, layer_id: str) -> int:
        with self._holds.held(layer_id):
            found = self._changes(layer_id)
            with os_errors(f"overlay: reading layer {layer_id}"):
                return archive.changes_size(self._layers / layer_id / "diff", found)

    @hookimpl
    def storage_diff(self, layer_id: str) -> BinaryIO:
        with self._lock:
            diff = self._dirs.require(layer_id) / "diff"
            release = self._holds.hold(layer_id)  # until the stream is closed: blocks removal
        try:
            if not self._chain(layer_id):
                return archive.export_tree(diff, archive.PLAIN, on_close=release)
            # content straight from the upper dir: every added or changed path is there,
            # and the handler leaves overlay's own trusted.overlay.* xattrs out
            return archive.export_changes(diff, self._changes(layer_id), on_close=release, whiteout=OVERLAY)
        except BaseException:
            release()
            raise


# ---------------------------------------------------------------------------
# the upper-directory walk
# ---------------------------------------------------------------------------

MODIFIED, ADDED, DELETED = archive.MODIFIED, archive.ADDED, archive.DELETED


def upper_changes(upper: Path | str, lower: Path | str) -> list[Change]:
    """What an overlay upper directory changes relative to ``lower`` (the parent's view).

    Gives exactly what :func:`dockyard.archive.changes` gives for the merged
    view against ``lower`` (``docker diff`` rules), but visits only the entries
    the upper directory holds, plus the lower listing of opaque directories.
    Needs an upper made with ``redirect_dir=off,metacopy=off``.
    """
    out: list[tuple[str, int]] = []
    _walk(os.fspath(upper), os.fspath(lower), "", False, out)
    out.sort(key=lambda c: c[0].split("/"))
    return [Change(path=p, kind=k) for p, k in out]


def _walk(upper: str, lower: str | None, rel: str, opaque: bool, out: list[tuple[str, int]]) -> None:
    """``upper``: a directory of the upper; ``lower``: the same path in the parent's view if that
    is a directory, else None; ``opaque``: the union shows only what ``upper`` holds here."""
    entries = _scan(upper)
    for name in sorted(entries):
        st = entries[name]
        child_rel, child = f"{rel}/{name}", os.path.join(upper, name)
        low_path = os.path.join(lower, name) if lower is not None else None
        low_st = _lstat(low_path) if low_path is not None else None
        if OVERLAY.marker(child, st) is archive.Marker.WHITEOUT:
            if low_st is not None:
                out.append((child_rel, DELETED))
            continue
        if low_st is None:
            out.append((child_rel, ADDED))
            if stat.S_ISDIR(st.st_mode):
                _added(child, child_rel, out)
            continue
        start = len(out)
        changed = archive.differs(low_path, low_st, child, st, keep_xattr=OVERLAY.keep_xattr)
        if changed:
            out.append((child_rel, MODIFIED))
        if stat.S_ISDIR(st.st_mode):
            if stat.S_ISDIR(low_st.st_mode):
                # below an opaque directory nothing is merged with the lower layers
                _walk(child, low_path, child_rel, opaque or _is_opaque(child), out)
            else:
                _added(child, child_rel, out)
            if len(out) > start and not changed:
                out.insert(start, (child_rel, MODIFIED))
    if opaque and lower is not None:
        for name in sorted(set(os.listdir(lower)) - set(entries)):
            out.append((f"{rel}/{name}", DELETED))


def _added(upper: str, rel: str, out: list[tuple[str, int]]) -> None:
    for name, st in sorted(_scan(upper).items()):
        child = os.path.join(upper, name)
        if OVERLAY.marker(child, st) is archive.Marker.WHITEOUT:
            continue  # hides nothing below an added directory
        out.append((f"{rel}/{name}", ADDED))
        if stat.S_ISDIR(st.st_mode):
            _added(child, f"{rel}/{name}", out)


def _scan(path: str) -> dict[str, os.stat_result]:
    with os.scandir(path) as it:
        return {e.name: e.stat(follow_symlinks=False) for e in it}


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OVERLAY.OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------


def _detach_all(directory: Path) -> None:
    """Lazily unmount anything mounted at or below ``directory`` (a union left by a crash)."""
    for point, _ in kernel.mounts_under(str(directory)):
        try:
            kernel.umount(point)
        except OSError:
            pass
