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
from dockyard.errors import DriverNotSupported, InvalidParameter, NotFound, System
from dockyard import hookimpl
from dockyard.models.capabilities import StorageCapabilities
from dockyard.storage_common import LayerDirectory, MountCounter, ParentRecords, backing_fs, kernel_has, os_errors

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
        self._mounts = MountCounter(self._lock)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self._backing = backing_fs(self.root)
            self.loopback = self._backing != "btrfs"
            self.image = self.root / IMAGE
            self.home = self.root / MOUNTPOINT if self.loopback else self.root
            self._subvols = self.home / "subvolumes"
            self._records = ParentRecords(self.home / "parent", chain=False)
            self._layers = LayerDirectory(
                NAME, self._subvols, self.home / "incomplete", self.home, lock=self._lock, records=self._records
            )
            if self.loopback:
                if not shutil.which("mkfs.btrfs") and not self.image.exists():
                    raise DriverNotSupported(
                        NAME,
                        f"{self.root} is on {self._backing} and mkfs.btrfs (btrfs-progs) "
                        "is missing to make a loopback image",
                    )
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
        if not kernel_has("btrfs"):
            subprocess.run(["modprobe", "btrfs"], capture_output=True, check=False)
            if not kernel_has("btrfs"):
                raise DriverNotSupported(NAME, "the kernel has no btrfs file system (modprobe btrfs failed)")

    @classmethod
    def auto_selectable(cls, root: Path | None = None) -> bool:
        """Chosen without being named only on a btrfs data root (moby does the same): elsewhere
        it would make a 10 GiB loopback image.  ``root`` is None when the caller does not say."""
        return root is not None and backing_fs(root) == "btrfs"

    # -- the file system -----------------------------------------------------

    def _make_dirs(self) -> None:
        self._layers.make_dirs()
        self._records.directory.mkdir(parents=True, exist_ok=True)

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
                _run(["mount", "-t", "btrfs", "-o", "loop", str(self.image), str(self.home)], f"mounting {self.image}")
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
        self._layers.recover(_delete_subvolume, lambda layer_id: _delete_subvolume(self._subvols / layer_id))

    # -- required hooks ------------------------------------------------------

    @hookimpl
    def storage_create_layer(self, layer_id: str, parent_id: str | None) -> bool:
        self._ensure_fs()
        target = self._layers.path(layer_id)
        with self._layers.creating(layer_id, parent_id) as source:
            tmp = self._layers.tmp(layer_id)
            try:
                if source is None:
                    _subvolume_create(tmp)
                    tmp.chmod(0o755)
                else:
                    _snapshot(source, tmp)
                self._records.write(layer_id, [parent_id] if parent_id else [])
                os.rename(tmp, target)
            except BaseException:
                _delete_subvolume(tmp)
                self._records.forget(layer_id)
                raise
        return True

    @hookimpl
    def storage_remove_layer(self, layer_id: str) -> bool:
        with self._lock:
            self._ensure_fs()
            path = self._layers.path(layer_id)
            if not path.is_dir():
                raise NotFound(f"No such layer: {layer_id}")
            count = self._mounts.count(layer_id)
            self._layers.check_removable(layer_id, count and f"mounted {count} times")
            tmp = self._layers.tmp(layer_id)
            with os_errors(f"btrfs: removing layer {layer_id}"):
                os.rename(path, tmp)  # invisible at once
                self._records.forget(layer_id)
                (self._layers.incomplete / layer_id).unlink(missing_ok=True)
        with os_errors(f"btrfs: deleting subvolume of layer {layer_id}"):  # else left for the next start
            _delete_subvolume(tmp)
        return True

    @hookimpl
    def storage_mount(self, layer_id: str) -> Path:
        with self._lock:
            self._ensure_fs()
            path = self._layers.require(layer_id)
            self._mounts.acquire(layer_id)
            return path

    @hookimpl
    def storage_unmount(self, layer_id: str) -> bool:
        self._mounts.release(layer_id)
        return True

    @hookimpl
    def storage_path(self, layer_id: str) -> Path | None:
        return self._subvols / layer_id if self._mounts.count(layer_id) else None

    @hookimpl
    def storage_parent(self, layer_id: str) -> str:
        self._ensure_fs()
        self._layers.require(layer_id)
        return self._records.parent(layer_id)

    @hookimpl
    def storage_exists(self, layer_id: str) -> bool:
        try:
            self._ensure_fs()
        except (OSError, System):
            return False
        return self._layers.exists(layer_id)

    @hookimpl
    def storage_layers(self) -> list[str]:
        self._ensure_fs()
        return self._layers.ids()

    @hookimpl
    def storage_apply_diff(self, layer_id: str, diff: BinaryIO) -> int:
        self._ensure_fs()
        path = self._layers.require(layer_id)
        with self._layers.applying(layer_id):
            return archive.apply_layer(path, diff, archive.PLAIN)

    @hookimpl
    def storage_status(self) -> list[tuple[str, str]]:
        self._ensure_fs()
        lines = [("Backing Filesystem", "btrfs" if not self.loopback else f"btrfs (loopback image on {self._backing})")]
        if self.loopback:
            lines += [
                ("Loopback File", str(self.image)),
                ("Loopback Size", _human(os.stat(self.image).st_size)),
                ("Loopback Allocated", _human(os.stat(self.image).st_blocks * 512)),
            ]
        fs = os.statvfs(self.home)
        lines += [
            ("Data Space Used", _human((fs.f_blocks - fs.f_bfree) * fs.f_frsize)),
            ("Data Space Available", _human(fs.f_bavail * fs.f_frsize)),
            ("Build Version", self._version),
            ("Layers", str(len(self.storage_layers()))),
        ]
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
    args[offset : offset + len(raw)] = raw
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


def _btrfs_version() -> str:
    try:
        out = subprocess.run(["btrfs", "--version"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.split("\n")[0].strip() or "unknown"
