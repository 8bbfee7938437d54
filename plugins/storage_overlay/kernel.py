"""The few kernel calls the overlay driver needs, through ctypes.

Python 3.11's ``os`` has no ``mount``.  Two ways to mount an overlay:

``fsconfig`` (Linux >= 6.13 for every key by file descriptor)
    ``fsopen("overlay")``, one ``fsconfig(FSCONFIG_SET_FD, "lowerdir+", fd)`` per
    layer, then ``upperdir`` / ``workdir`` by fd, ``FSCONFIG_CMD_CREATE``,
    ``fsmount`` and ``move_mount``.  No option string, so no page-size limit
    and no path-length limit: up to the kernel's 500-layer stack.
``legacy``
    ``mount(2)`` with ``lowerdir=/proc/self/fd/N:...``: each layer costs about
    17 bytes of the one-page option string (about 220 layers), and no
    ``chdir`` is needed, so it is safe from daemon threads (moby chdirs in a
    forked child to use relative ``l/`` links instead).

Both are checked with a trial mount when the driver starts.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Iterable, Sequence

from dockyard.storage_common import mounts

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]

# syscall numbers are the same on every architecture from 5.2 on (unified table)
SYS_MOVE_MOUNT, SYS_FSOPEN, SYS_FSCONFIG, SYS_FSMOUNT = 429, 430, 431, 432
FSOPEN_CLOEXEC = FSMOUNT_CLOEXEC = 1
FSCONFIG_SET_FLAG, FSCONFIG_SET_STRING, FSCONFIG_SET_FD, FSCONFIG_CMD_CREATE = 0, 1, 5, 6
MOVE_MOUNT_F_EMPTY_PATH = 0x4
AT_FDCWD = -100
MNT_DETACH = 2
PAGE_LIMIT = 4095  # mount(2) copies one page of options, NUL included

#: options that keep a walk of the upper directory a complete diff (NOTES.md section 2):
#: no redirects (a renamed lower dir would be half in upper), no metadata-only copy-up,
#: no inode index (pins an upper to its lowers).
SAFE_OPTIONS = (("index", "off"), ("redirect_dir", "off"), ("metacopy", "off"))


class MountError(OSError):
    """A failed mount, with the kernel's own log lines when it gave any."""


def _syscall(nr: int, *args) -> int:
    # every argument widened to a long: syscall(2) reads them with va_arg(long)
    result = _libc.syscall(ctypes.c_long(nr), *(ctypes.c_long(a) if isinstance(a, int) else a for a in args))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def _kernel_log(fs_fd: int) -> str:
    lines = []
    while True:
        try:
            lines.append(os.read(fs_fd, 1024).decode(errors="replace").strip())
        except OSError:
            return "; ".join(lines)


def _open_dir(path: str) -> int:
    return os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def mount_fsconfig(
    target: str, lowers: Sequence[str], upper: str, work: str, options: Iterable[tuple[str, str]] = SAFE_OPTIONS
) -> None:
    """Mount an overlay on ``target``; ``lowers`` nearest first, every path passed by fd."""
    fs_fd = _syscall(SYS_FSOPEN, b"overlay", FSOPEN_CLOEXEC)
    try:
        try:
            for key, path in [*(("lowerdir+", p) for p in lowers), ("upperdir", upper), ("workdir", work)]:
                fd = _open_dir(path)
                try:
                    _syscall(SYS_FSCONFIG, fs_fd, FSCONFIG_SET_FD, key.encode(), None, fd)
                finally:
                    os.close(fd)  # the fs context holds its own reference
            for key, value in options:
                _syscall(SYS_FSCONFIG, fs_fd, FSCONFIG_SET_STRING, key.encode(), value.encode(), 0)
            _syscall(SYS_FSCONFIG, fs_fd, FSCONFIG_CMD_CREATE, None, None, 0)
            mnt_fd = _syscall(SYS_FSMOUNT, fs_fd, FSMOUNT_CLOEXEC, 0)
        except OSError as exc:
            raise MountError(exc.errno, f"{exc.strerror} ({_kernel_log(fs_fd) or 'no kernel message'})") from None
    finally:
        os.close(fs_fd)
    try:
        _syscall(SYS_MOVE_MOUNT, mnt_fd, b"", AT_FDCWD, os.fsencode(target), MOVE_MOUNT_F_EMPTY_PATH)
    except OSError as exc:
        raise MountError(exc.errno, f"move_mount to {target}: {exc.strerror}") from None
    finally:
        os.close(mnt_fd)


def legacy_option_length(layers: int) -> int:
    """Bytes of the mount(2) option string for ``layers`` lower dirs (fds up to 5 digits)."""
    per_dir = len("/proc/self/fd/99999:")
    fixed = len("lowerdir=,upperdir=,workdir=") + 2 * per_dir + sum(len(f",{k}={v}") for k, v in SAFE_OPTIONS)
    return fixed + layers * per_dir


def mount_legacy(
    target: str, lowers: Sequence[str], upper: str, work: str, options: Iterable[tuple[str, str]] = SAFE_OPTIONS
) -> None:
    """Mount with mount(2), naming every directory as ``/proc/self/fd/N``."""
    fds: list[int] = []
    try:
        for path in (*lowers, upper, work):
            fds.append(_open_dir(path))
        names = [f"/proc/self/fd/{fd}" for fd in fds]
        data = f"lowerdir={':'.join(names[:-2])},upperdir={names[-2]},workdir={names[-1]}" + "".join(
            f",{k}={v}" for k, v in options
        )
        if len(data) > PAGE_LIMIT:  # the kernel would cut it and answer ENOENT
            raise MountError(
                errno.E2BIG,
                f"{len(lowers)} layers need {len(data)} bytes of mount options "
                f"(limit {PAGE_LIMIT}); this kernel lacks fsconfig lowerdir+",
            )
        if _libc.mount(b"overlay", os.fsencode(target), b"overlay", 0, data.encode()) != 0:
            err = ctypes.get_errno()
            raise MountError(err, f"mount overlay on {target}: {os.strerror(err)}")
    finally:
        for fd in fds:
            os.close(fd)


def umount(target: str, detach: bool = True) -> None:
    """Unmount ``target``; lazily by default (moby does the same), so a busy mount never blocks."""
    if _libc.umount2(os.fsencode(target), MNT_DETACH if detach else 0) != 0:
        err = ctypes.get_errno()
        if err == errno.EINVAL:  # not a mount point (any more)
            return
        raise OSError(err, f"umount {target}: {os.strerror(err)}")


def mounts_under(directory: str) -> list[tuple[str, str]]:
    """(mount point, fs type) of every mount at or below ``directory``, deepest first."""
    prefix = os.path.realpath(directory).rstrip("/") + "/"
    found = [(point, fstype) for point, fstype in mounts() if (point + "/").startswith(prefix)]
    return sorted(found, key=lambda m: m[0].count("/"), reverse=True)


def is_mountpoint(path: str) -> bool:
    real = os.path.realpath(path)
    return any(point == real for point, _ in mounts_under(real))


class _Dirent64(ctypes.Structure):
    _fields_ = [
        ("d_ino", ctypes.c_uint64),
        ("d_off", ctypes.c_int64),
        ("d_reclen", ctypes.c_ushort),
        ("d_type", ctypes.c_ubyte),
        ("d_name", ctypes.c_char * 256),
    ]


_libc.opendir.restype = ctypes.c_void_p
_libc.opendir.argtypes = [ctypes.c_char_p]
_libc.readdir64.restype = ctypes.POINTER(_Dirent64)
_libc.readdir64.argtypes = [ctypes.c_void_p]
_libc.closedir.argtypes = [ctypes.c_void_p]
DT_UNKNOWN = 0


def supports_d_type(directory: str) -> bool:
    """Whether readdir on ``directory``'s file system fills in d_type (overlay needs it)."""
    probe = os.path.join(directory, f".d_type-probe-{os.getpid()}")
    os.makedirs(probe, exist_ok=True)
    try:
        open(os.path.join(probe, "f"), "w").close()
        handle = _libc.opendir(os.fsencode(probe))
        if not handle:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        try:
            while entry := _libc.readdir64(handle):
                if entry.contents.d_name == b"f":
                    return entry.contents.d_type != DT_UNKNOWN
        finally:
            _libc.closedir(handle)
        return False
    finally:
        for name in ("f",):
            try:
                os.unlink(os.path.join(probe, name))
            except FileNotFoundError:
                pass
        os.rmdir(probe)
