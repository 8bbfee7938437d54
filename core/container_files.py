"""``docker cp``: reading and writing paths of a container's file system.

Paths resolve as the container sees them: a path under a volume or bind mount
reaches the mount's source, anything else the container's layer (mounted for the
duration, so stopped containers work too).  Symlinks never lead outside: every
lookup, read and write happens in a child chrooted into that directory
(:mod:`dockyard.chroot`), so a container swapping a path component for a symlink
meanwhile (CVE-2018-15664) reaches nothing but its own files.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

from dockyard import archive, rootfs
from dockyard.chroot import run_in_root
from dockyard.errors import InvalidParameter, NotFound
from dockyard.timefmt import go_rfc3339nano
from dockyard.volumes import Mount

if TYPE_CHECKING:
    from dockyard.containers import ContainerService
    from dockyard.drivers import StorageDriver

# Go's os.FileMode bits, which the docker CLI decodes from the stat header
_GO_DIR, _GO_SYMLINK, _GO_DEVICE, _GO_PIPE, _GO_SOCKET = 1 << 31, 1 << 27, 1 << 26, 1 << 25, 1 << 24
_GO_SETUID, _GO_SETGID, _GO_CHARDEV, _GO_STICKY = 1 << 23, 1 << 22, 1 << 21, 1 << 20


def locate(rootfs: Path, mounts: list[Mount], path: str) -> tuple[Path, str]:
    """(directory, path inside it) for a container path: the source of the mount it is under (longest
    destination first) or the container's layer.  A file mount is its parent directory and its name."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidParameter(f"invalid path {path!r}: '..' is not allowed")
    clean = "/" + "/".join(parts)
    for m in sorted(mounts, key=lambda m: len(m.destination), reverse=True):
        if clean == m.destination or clean.startswith(m.destination.rstrip("/") + "/"):
            source = Path(m.source)
            if not source.is_dir():
                return source.parent, "/" + source.name
            return source, clean[len(m.destination) :] or "/"
    return rootfs, clean


def _real(inner: str, follow_last: bool) -> str:
    """Inside the chroot: ``inner`` with its symlinks resolved (the last one only if ``follow_last``)."""
    if follow_last:
        return os.path.realpath(inner)
    head, tail = os.path.split(inner.rstrip("/") or "/")
    return os.path.join(os.path.realpath(head), tail) if tail else "/"


def go_mode(st: os.stat_result) -> int:
    mode = stat.S_IMODE(st.st_mode) & 0o777
    kind = stat.S_IFMT(st.st_mode)
    mode |= {
        stat.S_IFDIR: _GO_DIR,
        stat.S_IFLNK: _GO_SYMLINK,
        stat.S_IFIFO: _GO_PIPE,
        stat.S_IFSOCK: _GO_SOCKET,
        stat.S_IFBLK: _GO_DEVICE,
        stat.S_IFCHR: _GO_DEVICE | _GO_CHARDEV,
    }.get(kind, 0)
    if st.st_mode & stat.S_ISUID:
        mode |= _GO_SETUID
    if st.st_mode & stat.S_ISGID:
        mode |= _GO_SETGID
    if st.st_mode & stat.S_ISVTX:
        mode |= _GO_STICKY
    return mode


def path_stat(root: Path, inner: str, path: str) -> str:
    """The ``X-Docker-Container-Path-Stat`` header: base64 of a JSON stat (the last component not followed)."""

    def work() -> bytes:
        real = _real(inner, follow_last=False)
        try:
            st = os.lstat(real)
        except FileNotFoundError:
            raise NotFound(f"Could not find the file {path} in container") from None
        link = os.readlink(real) if stat.S_ISLNK(st.st_mode) else ""
        data = {
            "name": os.path.basename(path.rstrip("/")) or "/",
            "size": st.st_size,
            "mode": go_mode(st),
            "mtime": go_rfc3339nano(st.st_mtime_ns),
            "linkTarget": link,
        }
        return base64.b64encode(json.dumps(data).encode())

    return run_in_root(root, work).decode()


def check_exists(root: Path, inner: str, path: str, name: str) -> None:
    """NotFound unless ``inner`` (its last component followed) exists."""

    def work() -> None:
        if not os.path.lexists(_real(inner, follow_last=True)):
            raise NotFound(f"Could not find the file {path} in container {name}")

    run_in_root(root, work)


def write_tar(root: Path, inner: str, path: str, out: BinaryIO) -> None:
    """A tar of ``path`` named by its base name (``/etc`` -> ``etc/...``), or of a
    directory's contents when the path ends in ``/.``."""
    contents_only = path.endswith("/.")
    fd = out.fileno()

    def work() -> None:
        real = _real(inner, follow_last=True)
        if not os.path.lexists(real):
            raise NotFound(f"Could not find the file {path} in container")
        with (
            os.fdopen(os.dup(fd), "wb") as sink,
            tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar,
        ):
            if contents_only:
                for name in sorted(os.listdir(real)):
                    tar.add(os.path.join(real, name), arcname=name)
            else:
                tar.add(real, arcname=os.path.basename(path.rstrip("/")) or ".")

    out.flush()
    run_in_root(root, work, keep_fds=(fd,))


def extract(
    root: Path,
    inner: str,
    path: str,
    stream: BinaryIO,
    no_overwrite_dir_non_dir: bool = False,
    owner: tuple[int, int] | None = None,
) -> None:
    """Unpack a tar into an existing directory of the container (``docker cp`` options: see
    :func:`dockyard.archive.apply_layer`)."""
    fd = stream.fileno()

    def work() -> None:
        real = _real(inner, follow_last=True)
        if not os.path.lexists(real):
            raise NotFound(f"Could not find the file {path} in container")
        if not os.path.isdir(real):
            raise InvalidParameter(f"extraction point is not a directory: {path}")
        with os.fdopen(os.dup(fd), "rb") as source:
            archive.apply_layer(real, source, no_overwrite_dir_non_dir=no_overwrite_dir_non_dir, owner=owner)

    run_in_root(root, work, keep_fds=(fd,))


class ContainerFiles:
    """The file-system side of containers for the API: ``docker cp`` both ways, ``export``, ``diff``.

    Each operation mounts the container's layer for its own duration (mounts are
    reference-counted, so this also works while it runs, and on stopped containers).
    All methods block: call them from a worker thread.
    """

    def __init__(self, containers: ContainerService, storage: StorageDriver) -> None:
        self.containers = containers
        self.storage = storage

    @contextmanager
    def _rootfs(self, container_id: str) -> Iterator[Path]:
        root = self.storage.mount(container_id)
        try:
            yield root
        finally:
            self.storage.unmount(container_id)

    def stat(self, ref: str, path: str) -> str:
        """``HEAD /containers/{id}/archive``: the ``X-Docker-Container-Path-Stat`` header."""
        c = self.containers.get(ref)
        with self._rootfs(c.id) as root:
            return path_stat(*locate(root, c.mounts, path), path)

    def archive(self, ref: str, path: str) -> tuple[str, Callable[[BinaryIO], None]]:
        """``GET /containers/{id}/archive``: the stat header, and a function writing the tar to a file.

        Errors (no such container or path) are raised here, before anything is sent.
        """
        c = self.containers.get(ref)
        with self._rootfs(c.id) as root:
            header = path_stat(*locate(root, c.mounts, path), path)
            check_exists(*locate(root, c.mounts, path), path, c.name)

        def produce(out: BinaryIO) -> None:
            with self._rootfs(c.id) as root:
                write_tar(*locate(root, c.mounts, path), path, out)

        return header, produce

    def extract(
        self, ref: str, path: str, stream: BinaryIO, no_overwrite_dir_non_dir: bool = False, copy_uid_gid: bool = False
    ) -> None:
        """``PUT /containers/{id}/archive``: unpack a tar into a directory of the container.
        ``copy_uid_gid`` (``docker cp -a``) gives the files to the container's user when it has one, as
        Docker does; otherwise they keep the tar's owners."""
        c = self.containers.get(ref)
        with self._rootfs(c.id) as root:
            owner = None
            if copy_uid_gid and c.config.user:
                uid, gid, _, _ = rootfs.resolve_user(root, c.config.user)
                owner = (uid, gid)
            extract(*locate(root, c.mounts, path), path, stream, no_overwrite_dir_non_dir, owner)

    def export(self, ref: str) -> Callable[[BinaryIO], None]:
        """``docker export``: a function writing the container's whole file system as a tar."""
        c = self.containers.get(ref)

        def produce(out: BinaryIO) -> None:
            with self._rootfs(c.id) as root, archive.export_tree(root) as stream:
                out.flush()
                cast(archive.TarStream, stream).write_to(out.fileno())  # file content with sendfile

        return produce

    def changes(self, ref: str) -> list[dict] | None:
        """``docker diff``: the layer's changes (``None`` when there are none, as Docker answers)."""
        c = self.containers.get(ref)
        return [{"Path": change.path, "Kind": change.kind} for change in self.storage.changes(c.id)] or None
