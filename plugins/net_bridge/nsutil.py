"""Fast named network namespaces: ``unshare`` + bind mount on the calling thread.

pyroute2's ``netns.create`` and ``IPRoute(netns=...)`` fork a helper process
(6-15 ms each); doing it on the calling thread with ``unshare(CLONE_NEWNET)``,
a bind mount of ``/proc/self/task/<tid>/ns/net`` and ``setns`` back takes well
under a millisecond.  Namespaces are per *thread* on Linux, so other threads
of the daemon are never affected; if the thread cannot return to its own
namespace the process aborts rather than run netlink calls in the wrong place.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from pathlib import Path
from typing import Iterator

from pyroute2 import netns as pr_netns

from dockyard import netns as core_netns

CLONE_NEWNET = 0x40000000
MS_BIND = 4096
_libc = ctypes.CDLL(None, use_errno=True)


def _own_ns() -> int:
    return os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY | os.O_CLOEXEC)


def _go_home(home: int) -> None:
    if _libc.setns(home, CLONE_NEWNET) != 0:  # pragma: no cover - the thread would be lost
        os.write(2, b"dockyard: cannot return to the daemon's network namespace\n")
        os.abort()


_ready = False


def _netns_dir_ready() -> bool:
    """Whether /run/netns is a mount point (as ``ip netns`` / pyroute2 make it).

    os.path.ismount cannot tell: it is a bind mount of the same file system.
    """
    global _ready
    if not _ready:
        target = str(core_netns.NETNS_DIR)
        with open("/proc/self/mountinfo") as info:
            _ready = any(line.split()[4] == target for line in info)
    return _ready


def create(name: str) -> Path:
    """Create ``/run/netns/<name>`` (or adopt an existing one); returns its path."""
    path = core_netns.path_of(name)
    if path.exists():
        return path
    if not _netns_dir_ready():
        pr_netns.create(name)  # first time on this host: let pyroute2 set up /run/netns propagation
        return path
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDONLY | os.O_CLOEXEC, 0)
    os.close(fd)
    home = _own_ns()
    try:
        if _libc.unshare(CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            path.unlink(missing_ok=True)
            raise OSError(err, f"unshare: {os.strerror(err)}")
        try:
            source = f"/proc/self/task/{threading.get_native_id()}/ns/net".encode()
            if _libc.mount(source, str(path).encode(), None, MS_BIND, None) != 0:
                err = ctypes.get_errno()
                path.unlink(missing_ok=True)
                raise OSError(err, f"bind mount of the namespace: {os.strerror(err)}")
        finally:
            _go_home(home)
    finally:
        os.close(home)
    return path


@contextlib.contextmanager
def entered(path: Path) -> Iterator[None]:
    """Run the block with the calling thread inside the namespace at ``path``.

    Sockets created in the block (e.g. ``IPRoute()``) stay in that namespace.
    """
    home = _own_ns()
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {path}: {os.strerror(err)}")
        try:
            yield
        finally:
            _go_home(home)
    finally:
        os.close(fd)
        os.close(home)


MNT_DETACH = 2


def remove(name: str) -> None:
    """Unmount and delete ``/run/netns/<name>``; a missing one is fine."""
    path = core_netns.path_of(name)
    if not path.exists():
        return
    if _libc.umount2(str(path).encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (22, 2):  # EINVAL: not mounted (a half-made one), ENOENT
            raise OSError(err, f"umount {path}: {os.strerror(err)}")
    path.unlink(missing_ok=True)
