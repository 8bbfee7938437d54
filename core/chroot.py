"""Running file work confined to a directory with ``chroot`` (moby's ``chrootarchive``).

``docker cp`` reads and writes paths a container controls, and a container (or
another one sharing a volume with it) may swap a directory for a symlink to a
host path at any moment (CVE-2018-15664).  Resolving paths carefully in the
daemon cannot close that race; resolving them where ``/`` *is* the container's
directory can: :func:`run_in_root` forks a child that chroots into the
directory (opened with ``O_NOFOLLOW``) and does the work there, so every
symlink, ``..`` and absolute path stays inside, whatever changes meanwhile.

The child only calls code already imported in the parent (imports after
``chroot`` would find no modules, and a fork of a threaded process must not
take locks other threads may hold): os calls, tarfile and
:mod:`dockyard.archive`.  It reports its result or its error on a pipe.
"""

from __future__ import annotations

import bz2  # noqa: F401 - tarfile imports these lazily; the chrooted child cannot
import gzip  # noqa: F401
import json
import lzma  # noqa: F401
import os
from collections.abc import Callable
from pathlib import Path

from dockyard.errors import DockyardError, InvalidParameter, NotFound, System

_ERRORS = {404: NotFound, 400: InvalidParameter}


def run_in_root(root: Path, work: Callable[[], bytes | None], keep_fds: tuple[int, ...] = ()) -> bytes:
    """Run ``work`` in a child chrooted into ``root``; return the bytes it returns.

    The child keeps only ``keep_fds`` (the streams ``work`` uses) of the daemon's
    descriptors: other requests' pipes must see their EOF when the daemon closes them.

    ``root`` must be a directory the daemon controls (a container's mounted
    layer, a volume's ``_data``); a symlink there is refused.  A
    :class:`DockyardError` raised by ``work`` is raised again here, any other
    failure becomes :class:`System`.
    """
    try:
        root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise System(f"cannot open {root}: {exc.strerror}") from None
    result_r, result_w = os.pipe()
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child never returns (coverage cannot see it)
            _child(root_fd, result_r, result_w, work, keep_fds)
        os.close(result_w)
        result_w = -1
        chunks = []
        while chunk := os.read(result_r, 1 << 16):
            chunks.append(chunk)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(root_fd)
        os.close(result_r)
        if result_w >= 0:
            os.close(result_w)
    data = b"".join(chunks)
    code = os.waitstatus_to_exitcode(status)
    if code == 0:
        return data
    try:
        error = json.loads(data)
    except ValueError:
        raise System(f"the chrooted helper failed (exit {code})") from None
    raise _ERRORS.get(error.get("status"), System)(error.get("message", ""))


def _child(
    root_fd: int, result_r: int, result_w: int, work: Callable[[], bytes | None], keep_fds: tuple[int, ...]
) -> None:
    status = 0
    try:
        os.close(result_r)
        low = 3
        for fd in sorted({root_fd, result_w, *keep_fds}):
            if fd >= low:
                os.closerange(low, fd)
                low = fd + 1
        os.closerange(low, os.sysconf("SC_OPEN_MAX"))
        os.fchdir(root_fd)
        os.chroot(".")
        os.chdir("/")
        out = work() or b""
    except DockyardError as exc:
        status, out = 1, json.dumps({"status": exc.status, "message": exc.message}).encode()
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
        status, out = 1, json.dumps({"status": 500, "message": f"{type(exc).__name__}: {exc}"}).encode()
    try:
        view = memoryview(out)
        while view:
            view = view[os.write(result_w, view) :]
    finally:
        os._exit(status)
