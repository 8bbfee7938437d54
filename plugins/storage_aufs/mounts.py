"""Mounting and unmounting a branch stack: kernel aufs or unionfs-fuse.

Both take the same stack, top (read-write) branch first.  Kernel aufs gets it
as ``br:<rw>=rw:<ro>=ro+wh...`` mount data (remounting with ``append:`` for
what does not fit in a page, as moby's aufs driver does).  unionfs-fuse gets
it on argv as ``<rw>=RW:<ro>=RO...``; it runs in the foreground as a child of
the daemon in its own session (so a signal to the daemon's process group does
not take every container's root file system with it) and is reaped after the
unmount.  A branch path must not contain ``:`` or ``=`` (or ``,`` for aufs):
neither syntax can escape them.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time

from dockyard.errors import System
from dockyard.storage_common import kernel_has, mounts

log = logging.getLogger(__name__)

#: unionfs-fuse options (see the storage notes): copy-on-write, usable by every
#: uid, setuid and device nodes honoured, inode numbers passed through (hard
#: links), the marker tree hidden from readdir.  Never ``auto_unmount``: it goes
#: through fusermount, which forces nosuid,nodev.
UNIONFS_OPTIONS = "cow,allow_other,suid,dev,use_ino,hide_meta_files"
MNT_DETACH = 2
MS_REMOUNT = 32
MOUNT_TIMEOUT = 10.0

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def kernel_has_aufs() -> bool:
    return kernel_has("aufs")


def fuse_problem() -> str | None:
    """Why unionfs-fuse cannot be used here, or None."""
    if shutil.which("unionfs-fuse") is None:
        return "the kernel has no aufs and unionfs-fuse is not installed (Debian: apt-get install unionfs-fuse)"
    if not os.path.exists("/dev/fuse"):
        return "the kernel has no aufs and /dev/fuse is missing (modprobe fuse)"
    if os.geteuid() != 0:
        return "mounting a branch stack needs root"
    return None


_version: str | None = None


def unionfs_version() -> str:
    """``unionfs-fuse 1.0`` (what ``--version`` says), cached."""
    global _version
    if _version is None:
        try:
            out = subprocess.run(["unionfs-fuse", "--version"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            out = ""
        version = next((line.split()[-1] for line in out.splitlines() if line.startswith("unionfs-fuse version")), "")
        _version = f"unionfs-fuse {version}".strip()
    return _version


def mount_unionfs(branches: list[str], target: str) -> subprocess.Popen:
    """Mount ``branches`` (first read-write, the rest read-only) at ``target``; returns the server."""
    stack = ":".join([f"{branches[0]}=RW"] + [f"{b}=RO" for b in branches[1:]])
    errors = tempfile.TemporaryFile()
    try:
        proc = subprocess.Popen(
            ["unionfs-fuse", "-f", "-o", UNIONFS_OPTIONS, stack, target],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            start_new_session=True,
        )
    except OSError as exc:
        errors.close()
        raise System(f"aufs: cannot start unionfs-fuse: {exc}") from exc
    try:
        deadline = time.monotonic() + MOUNT_TIMEOUT
        delay = 0.0005
        while not os.path.ismount(target):
            if proc.poll() is not None:
                errors.seek(0)
                message = errors.read().decode(errors="replace").strip() or f"exit status {proc.returncode}"
                raise System(f"aufs: unionfs-fuse could not mount {target}: {message}")
            if time.monotonic() > deadline:
                _kill(proc)
                raise System(f"aufs: unionfs-fuse did not mount {target} within {MOUNT_TIMEOUT:.0f}s")
            time.sleep(delay)
            delay = min(delay * 2, 0.02)
    finally:
        errors.close()
    return proc


def mount_aufs(branches: list[str], target: str) -> None:
    """Kernel aufs: ``br:`` data up to a page, the rest appended by remounts (moby's way)."""
    limit = os.sysconf("SC_PAGESIZE") - 64  # room for ",dio,xino=..."
    data = f"br:{branches[0]}=rw"
    rest = list(branches[1:])
    while rest and len(data) + len(rest[0]) + 7 < limit:
        data += f":{rest.pop(0)}=ro+wh"
    _mount("none", target, "aufs", 0, data + ",dio,xino=/dev/shm/aufs.xino")
    try:
        for branch in rest:
            _mount("none", target, "aufs", MS_REMOUNT, f"append:{branch}=ro+wh")
    except System:
        unmount(target)
        raise


def _mount(source: str, target: str, fstype: str, flags: int, data: str) -> None:
    if _libc.mount(source.encode(), target.encode(), fstype.encode(), flags, data.encode()) != 0:
        err = ctypes.get_errno()
        raise System(f"aufs: mount {target}: {os.strerror(err)}")


def unmount(target: str, proc: subprocess.Popen | None = None) -> None:
    """umount2 ``target``; lazily if it stays busy.  Reaps the FUSE server if given."""
    detached = False
    for attempt in range(20):
        if _libc.umount2(target.encode(), 0) == 0:
            break
        err = ctypes.get_errno()
        if err == errno.EINVAL:  # not a mount point (any more)
            break
        if err != errno.EBUSY:
            raise System(f"aufs: unmount {target}: {os.strerror(err)}")
        if attempt < 19:
            time.sleep(0.01 * (attempt + 1))
            continue
        detach(target)
        log.warning("aufs: %s stayed busy; detached it lazily", target)
        detached = True
    if proc is not None:
        if detached:  # the server exits when the last user lets go; reap it then
            threading.Thread(target=proc.wait, name="aufs-reaper", daemon=True).start()
        else:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                _kill(proc)


def detach(target: str) -> None:
    """Lazy unmount, for a mount whose FUSE server is gone (ENOTCONN)."""
    if _libc.umount2(target.encode(), MNT_DETACH) != 0 and ctypes.get_errno() != errno.EINVAL:
        raise System(f"aufs: unmount {target}: {os.strerror(ctypes.get_errno())}")


def _kill(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait()


def alive(target: str) -> bool:
    """False when the file system's server is gone ("Transport endpoint is not connected").

    statfs, because the kernel answers stat() of a FUSE root from its attribute cache."""
    try:
        os.statvfs(target)
    except OSError as exc:
        if exc.errno == errno.ENOTCONN:
            return False
        raise
    return True


def mounts_under(directory: str) -> list[str]:
    """Mount points directly below ``directory`` (from /proc/self/mountinfo)."""
    prefix = os.path.realpath(directory).rstrip("/") + "/"
    return [point for point, _ in mounts() if point.startswith(prefix) and "/" not in point[len(prefix) :]]
