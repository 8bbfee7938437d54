"""btrfs: each layer a subvolume, each child a snapshot of its parent.

Where the data root is not on btrfs, the driver keeps a sparse loopback image
in it and mounts that (``mount -o loop`` sets autoclear, so the loop device
goes away with the last unmount).  On disk, under ``<data-root>/storage/btrfs``::

    btrfs.img             the loopback image (only when the data root is not btrfs)
    mnt/                  its mount point; <home> below is mnt/ then, else the root itself
    <home>/subvolumes/<id>   a complete layer's root: a subvolume
    <home>/parent/<id>       its parent id ("" for a base layer)
    <home>/incomplete/<id>   present while a diff is applied; such a layer is not listed
    <home>/tmp-<id>.<rand>   a subvolume being built or removed

A layer is made in ``tmp-*`` (``BTRFS_IOC_SUBVOL_CREATE`` for a base layer, a
writable ``BTRFS_IOC_SNAP_CREATE_V2`` of the parent otherwise: about 2 ms
whatever the size) and renamed into ``subvolumes/`` when complete.  On start,
``tmp-*`` and incomplete layers left by a crash are deleted with
``BTRFS_IOC_SNAP_DESTROY`` (what ``btrfs subvolume delete`` calls).  Mounts are
reference counts kept in memory: ``storage_mount`` returns the subvolume.

Options: ``size`` of the loopback image when it is created (default ``10G``,
sparse: about 5 MB are allocated after mkfs).

Diffs: none of btrfs's cheap tools gives a complete diff (``subvolume
find-new`` sees data extents only; ``send --no-data`` needs read-only snapshots
and three repairs, NOTES.md section 3), so ``storage_diff``, ``storage_changes``
and ``storage_diff_size`` are left to the core's naive walk, which costs
nothing extra to mount here.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import re
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import BinaryIO

from dockyard import archive
from dockyard.errors import (
    Conflict,
    DriverNotSupported,
    InvalidParameter,
    NotFound,
    System,
)
from dockyard.hookspecs import hookimpl
from dockyard.models.capabilities import StorageCapabilities

NAME = "btrfs"
DEFAULT_SIZE = 10 << 30
MIN_SIZE = 256 << 20
IMAGE, MOUNTPOINT = "btrfs.img", "mnt"

# ioctls (linux/btrfs.h); every argument block is 4096 bytes and must be a bytearray
BTRFS_IOC_SUBVOL_CREATE = 0x5000940E  # _IOW(0x94, 14, struct btrfs_ioctl_vol_args)
BTRFS_IOC_SNAP_DESTROY = 0x5000940F  # _IOW(0x94, 15, struct btrfs_ioctl_vol_args)
BTRFS_IOC_SNAP_CREATE_V2 = 0x50009417  # _IOW(0x94, 23, struct btrfs_ioctl_vol_args_v2)
BTRFS_IOC_SYNC = 0x9408  # _IO(0x94, 8)
VOL_NAME_OFFSET, VOL_NAME_MAX = 8, 4087  # struct btrfs_ioctl_vol_args: s64 fd; char name[4088]
V2_NAME_OFFSET, V2_NAME_MAX = 56, 4039  # v2: fd, transid, flags, 4 x u64, char name[4040]
FIRST_FREE_OBJECTID = 256  # st_ino of every subvolume's root directory

_libc = ctypes.CDLL(None, use_errno=True)
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
MNT_DETACH = 2


class BtrfsDriver:
    """Storage driver on btrfs subvolumes and snapshots."""

    #: a snapshot keeps everything the conformance suite checks
    capabilities = StorageCapabilities()

    def __init__(self, root: Path, options: dict) -> None:
        options = dict(options or {})
        size_text = options.pop("size", options.pop("btrfs.size", None))
        if options:
            raise InvalidParameter(f"btrfs: unknown storage option(s): {', '.join(sorted(options))}")
        self.size = parse_size(size_text) if size_text is not None else DEFAULT_SIZE
        self.root = Path(root)
        self._lock = threading.RLock()
        self._mounts: dict[str, int] = {}
        self._busy: dict[str, str] = {}
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self._backing = _fs_type(self.root)
            self.loopback = self._backing != "btrfs"
            self.image = self.root / IMAGE
            self.home = self.root / MOUNTPOINT if self.loopback else self.root
            if self.loopback:
                if not shutil.which("mkfs.btrfs") and not self.image.exists():
                    raise DriverNotSupported(NAME, f"{self.root} is on {self._backing} and mkfs.btrfs (btrfs-progs) "
                                                   "is missing to make a loopback image")
                self._ensure_fs()
            else:
                self._make_dirs()
            self._recover()
        except OSError as exc:
            raise System(f"btrfs: cannot initialise {self.root}: {exc}") from exc
        self._version = _btrfs_version()

    @classmethod
    def check_supported(cls) -> None:
        """The kernel must have btrfs (loaded on demand); subvolume ioctls and loop mounts need root."""
        if os.geteuid() != 0:
            raise DriverNotSupported(NAME, "needs root (subvolume ioctls, loop mount)")
        if not _has_btrfs():
            subprocess.run(["modprobe", "btrfs"], capture_output=True, check=False)
            if not _has_btrfs():
                raise DriverNotSupported(NAME, "the kernel has no btrfs file system (modprobe btrfs failed)")

    # -- the file system -----------------------------------------------------

    @property
    def _subvols(self) -> Path:
        return self.home / "subvolumes"

    @property
    def _parents(self) -> Path:
        return self.home / "parent"

    @property
    def _incomplete(self) -> Path:
        return self.home / "incomplete"

    def _make_dirs(self) -> None:
        for d in (self._subvols, self._parents, self._incomplete):
            d.mkdir(parents=True, exist_ok=True)

    def _fs_mounted(self) -> bool:
        try:
            return os.stat(self.home).st_dev != os.stat(self.root).st_dev
        except FileNotFoundError:
            return False

    def _ensure_fs(self) -> None:
        """Loopback mode: make the image on first use and mount it if it is not (cheap when it is)."""
        if not self.loopback:
            return
        with self._lock:
            if self._fs_mounted():
                return
            self.home.mkdir(exist_ok=True)
            if not self.image.exists():
                self._make_image()
            try:
                _run(["mount", "-t", "btrfs", "-o", "loop", str(self.image), str(self.home)],
                     f"mounting {self.image}")
            except System:
                # another mount(8) of the same image won the race (one started by a process
                # killed midway keeps running): fine if the image is mounted now
                deadline = time.monotonic() + 5
                while not self._fs_mounted():
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            self._make_dirs()

    def _make_image(self) -> None:
        tmp = self.root / f"{IMAGE}.tmp-{uuid.uuid4().hex[:12]}"
        try:
            with open(tmp, "wb") as f:
                f.truncate(self.size)  # sparse
            _run(["mkfs.btrfs", "-q", "-f", str(tmp)], f"formatting {tmp}")
            os.rename(tmp, self.image)
        finally:
            tmp.unlink(missing_ok=True)

    def _recover(self) -> None:
        """Delete what a crash left: half-built or half-removed subvolumes, interrupted applies."""
        for entry in self.home.iterdir():
            if entry.name.startswith("tmp-"):
                _delete_subvolume(entry)
        for marker in self._incomplete.iterdir():
            _delete_subvolume(self._subvols / marker.name)
            (self._parents / marker.name).unlink(missing_ok=True)
            marker.unlink()
        for record in self._parents.iterdir():
            if not (self._subvols / record.name).is_dir():
                record.unlink()

    # -- helpers -------------------------------------------------------------

    def _layer_dir(self, layer_id: str) -> Path:
        if (not layer_id or "/" in layer_id or "\0" in layer_id or layer_id in (".", "..")
                or layer_id.startswith("tmp-") or len(layer_id) > 200):
            raise InvalidParameter(f"invalid layer id {layer_id!r}")
        return self._subvols / layer_id

    def _complete(self, layer_id: str) -> bool:
        try:
            path = self._layer_dir(layer_id)
        except InvalidParameter:
            return False
        return path.is_dir() and not (self._incomplete / layer_id).exists()

    def _require(self, layer_id: str) -> Path:
        path = self._layer_dir(layer_id)
        if not self._complete(layer_id):
            raise NotFound(f"No such layer: {layer_id}")
        return path

    def _parent_of(self, layer_id: str) -> str:
        try:
            return (self._parents / layer_id).read_text()
        except FileNotFoundError:
            return ""

    def _children(self, layer_id: str) -> list[str]:
        found = [c for c, p in self._busy.items() if p == layer_id]
        for record in self._parents.iterdir():
            if record.name != layer_id and self._parent_of(record.name) == layer_id:
                found.append(record.name)
        return found

    # -- required hooks ------------------------------------------------------

    @hookimpl
    def storage_create_layer(self, layer_id: str, parent_id: str | None) -> bool:
        with self._lock:
            self._ensure_fs()
            target = self._layer_dir(layer_id)
            if target.exists() or layer_id in self._busy:
                raise Conflict(f"layer {layer_id} already exists")
            source = self._require(parent_id) if parent_id else None
            self._busy[layer_id] = parent_id or ""
        tmp = self.home / f"tmp-{layer_id}.{uuid.uuid4().hex[:12]}"
        try:
            if source is None:
                _subvolume_create(tmp)
                tmp.chmod(0o755)
            else:
                _snapshot(source, tmp)
            (self._parents / layer_id).write_text(parent_id or "")
            os.rename(tmp, target)
        except BaseException as exc:
            _delete_subvolume(tmp)
            (self._parents / layer_id).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise System(f"btrfs: creating layer {layer_id}: {exc}") from exc
            raise
        finally:
            with self._lock:
                self._busy.pop(layer_id, None)
        return True

    @hookimpl
    def storage_remove_layer(self, layer_id: str) -> bool:
        with self._lock:
            self._ensure_fs()
            path = self._layer_dir(layer_id)
            if not path.is_dir():
                raise NotFound(f"No such layer: {layer_id}")
            if self._mounts.get(layer_id):
                raise Conflict(f"layer {layer_id} is in use (mounted {self._mounts[layer_id]} times)")
            children = self._children(layer_id)
            if children:
                raise Conflict(f"layer {layer_id} has child layers: {', '.join(sorted(children))}")
            tmp = self.home / f"tmp-{layer_id}.{uuid.uuid4().hex[:12]}"
            try:
                os.rename(path, tmp)  # invisible at once
                (self._parents / layer_id).unlink(missing_ok=True)
                (self._incomplete / layer_id).unlink(missing_ok=True)
            except OSError as exc:
                raise System(f"btrfs: removing layer {layer_id}: {exc}") from exc
        try:
            _delete_subvolume(tmp)
        except OSError as exc:  # left for the next start's recovery
            raise System(f"btrfs: deleting subvolume of layer {layer_id}: {exc}") from exc
        return True

    @hookimpl
    def storage_mount(self, layer_id: str) -> Path:
        with self._lock:
            self._ensure_fs()
            path = self._require(layer_id)
            self._mounts[layer_id] = self._mounts.get(layer_id, 0) + 1
            return path

    @hookimpl
    def storage_unmount(self, layer_id: str) -> bool:
        with self._lock:
            count = self._mounts.get(layer_id, 0)
            if count > 1:
                self._mounts[layer_id] = count - 1
            else:
                self._mounts.pop(layer_id, None)
        return True

    @hookimpl
    def storage_path(self, layer_id: str) -> Path | None:
        with self._lock:
            return self._subvols / layer_id if self._mounts.get(layer_id) else None

    @hookimpl
    def storage_parent(self, layer_id: str) -> str:
        with self._lock:
            self._ensure_fs()
        self._require(layer_id)
        return self._parent_of(layer_id)

    @hookimpl
    def storage_exists(self, layer_id: str) -> bool:
        try:
            self._ensure_fs()
            return self._complete(layer_id)
        except (OSError, System):
            return False

    @hookimpl
    def storage_layers(self) -> list[str]:
        self._ensure_fs()
        return sorted(e.name for e in self._subvols.iterdir() if self._complete(e.name))

    @hookimpl
    def storage_apply_diff(self, layer_id: str, diff: BinaryIO) -> int:
        self._ensure_fs()
        path = self._require(layer_id)
        marker = self._incomplete / layer_id
        try:
            marker.touch()
        except OSError as exc:
            raise System(f"btrfs: marking layer {layer_id}: {exc}") from exc
        written = archive.apply_layer(path, diff, archive.PLAIN)
        marker.unlink()  # a failed apply leaves the marker: the layer stays unlisted until removed
        return written

    @hookimpl
    def storage_status(self) -> list[tuple[str, str]]:
        self._ensure_fs()
        lines = [("Backing Filesystem", "btrfs" if not self.loopback else f"btrfs (loopback image on {self._backing})")]
        if self.loopback:
            lines += [("Loopback File", str(self.image)),
                      ("Loopback Size", _human(os.stat(self.image).st_size)),
                      ("Loopback Allocated", _human(os.stat(self.image).st_blocks * 512))]
        fs = os.statvfs(self.home)
        lines += [("Data Space Used", _human((fs.f_blocks - fs.f_bfree) * fs.f_frsize)),
                  ("Data Space Available", _human(fs.f_bavail * fs.f_frsize)),
                  ("Build Version", self._version),
                  ("Layers", str(len(self.storage_layers())))]
        return lines

    @hookimpl
    def storage_cleanup(self) -> bool:
        """Forget mount references; in loopback mode also unmount the image (the next call re-mounts)."""
        with self._lock:
            self._mounts.clear()
            if self.loopback and self._fs_mounted():
                _sync(self.home)
                if _libc.umount2(os.fsencode(self.home), 0) != 0:
                    err = ctypes.get_errno()  # busy (an open diff stream, a container's cwd): detach
                    if _libc.umount2(os.fsencode(self.home), MNT_DETACH) != 0:
                        raise System(f"btrfs: unmounting {self.home}: {os.strerror(err)}")
        return True


# ---------------------------------------------------------------------------
# subvolume ioctls
# ---------------------------------------------------------------------------


def _vol_args(name: str, offset: int, limit: int, fd: int = 0) -> bytearray:
    raw = os.fsencode(name)
    if len(raw) > limit:
        raise OSError(36, f"subvolume name too long: {name!r}")
    args = bytearray(4096)
    args[0:8] = fd.to_bytes(8, "little", signed=True)
    args[offset:offset + len(raw)] = raw
    return args


def _in_parent(path: Path, request: int, args: bytearray) -> None:
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, request, args)
    finally:
        os.close(fd)


def _subvolume_create(path: Path) -> None:
    _in_parent(path, BTRFS_IOC_SUBVOL_CREATE, _vol_args(path.name, VOL_NAME_OFFSET, VOL_NAME_MAX))


def _snapshot(source: Path, target: Path) -> None:
    """A writable snapshot of subvolume ``source`` at ``target`` (commits the transaction)."""
    src = os.open(source, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _in_parent(target, BTRFS_IOC_SNAP_CREATE_V2, _vol_args(target.name, V2_NAME_OFFSET, V2_NAME_MAX, src))
    finally:
        os.close(src)


def _delete_subvolume(path: Path) -> None:
    """``btrfs subvolume delete`` (the space comes back asynchronously); a plain directory is removed."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if st.st_ino == FIRST_FREE_OBJECTID:
        _in_parent(path, BTRFS_IOC_SNAP_DESTROY, _vol_args(path.name, VOL_NAME_OFFSET, VOL_NAME_MAX))
    elif os.path.isdir(path):
        shutil.rmtree(path)
    else:
        path.unlink()


def _sync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, BTRFS_IOC_SYNC)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: object) -> int:
    """``10G``, ``512M``, ``20GiB``, ``1073741824`` -> bytes (binary units, like mkfs.btrfs)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", str(text).lower())
    if not match:
        raise InvalidParameter(f"btrfs: invalid size {text!r} (use e.g. 10G or 512M)")
    size = int(float(match.group(1)) * _UNITS[match.group(2)])
    if size < MIN_SIZE:
        raise InvalidParameter(f"btrfs: size {text!r} is below the minimum of 256M")
    return size


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.4g} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return str(n)


def _run(argv: list[str], what: str) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise System(f"btrfs: {what}: {exc}") from exc
    if done.returncode != 0:
        raise System(f"btrfs: {what}: {(done.stderr or done.stdout).strip()}")


def _has_btrfs() -> bool:
    try:
        with open("/proc/filesystems") as f:
            return any(line.split()[-1] == "btrfs" for line in f if line.strip())
    except OSError:
        return False


def _btrfs_version() -> str:
    try:
        out = subprocess.run(["btrfs", "--version"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.split("\n")[0].strip() or "unknown"


def _fs_type(path: Path) -> str:
    """File system type of the mount holding ``path`` (Docker's names: ext4 -> extfs)."""
    best, fstype = "", "unknown"
    target = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo") as info:
            for line in info:
                fields = line.split()
                point = fields[4].replace("\\040", " ")
                if (target == point or target.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
                    best, fstype = point, fields[fields.index("-") + 1]
    except OSError:
        pass
    return {"ext2": "extfs", "ext3": "extfs", "ext4": "extfs"}.get(fstype, fstype)
