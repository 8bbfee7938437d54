"""``docker cp``: reading and writing paths of a container's file system.

Paths resolve as the container sees them: a path under a volume or bind mount
reaches the mount's source, anything else the container's layer (mounted for the
duration, so stopped containers work too).  Symlinks never lead outside.
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
from typing import TYPE_CHECKING, BinaryIO

from dockyard import archive
from dockyard.errors import InvalidParameter, NotFound
from dockyard.rootfs import resolve_in_root
from dockyard.timefmt import go_rfc3339nano
from dockyard.volumes import Mount

if TYPE_CHECKING:
    from dockyard.containers import ContainerService
    from dockyard.drivers import StorageDriver

# Go's os.FileMode bits, which the docker CLI decodes from the stat header
_GO_DIR, _GO_SYMLINK, _GO_DEVICE, _GO_PIPE, _GO_SOCKET = 1 << 31, 1 << 27, 1 << 26, 1 << 25, 1 << 24
_GO_SETUID, _GO_SETGID, _GO_CHARDEV, _GO_STICKY = 1 << 23, 1 << 22, 1 << 21, 1 << 20


def resolve(rootfs: Path, mounts: list[Mount], path: str, follow_last: bool = False) -> Path:
    """Host path of a container path, honouring mounts (longest destination first)."""
    clean = "/" + "/".join(p for p in path.split("/") if p not in ("", "."))
    for m in sorted(mounts, key=lambda m: len(m.destination), reverse=True):
        if clean == m.destination or clean.startswith(m.destination.rstrip("/") + "/"):
            return resolve_in_root(Path(m.source), clean[len(m.destination):] or "/", follow_last)
    return resolve_in_root(rootfs, clean, follow_last)


def go_mode(st: os.stat_result) -> int:
    mode = stat.S_IMODE(st.st_mode) & 0o777
    kind = stat.S_IFMT(st.st_mode)
    mode |= {stat.S_IFDIR: _GO_DIR, stat.S_IFLNK: _GO_SYMLINK, stat.S_IFIFO: _GO_PIPE, stat.S_IFSOCK: _GO_SOCKET,
             stat.S_IFBLK: _GO_DEVICE, stat.S_IFCHR: _GO_DEVICE | _GO_CHARDEV}.get(kind, 0)
    if st.st_mode & stat.S_ISUID:
        mode |= _GO_SETUID
    if st.st_mode & stat.S_ISGID:
        mode |= _GO_SETGID
    if st.st_mode & stat.S_ISVTX:
        mode |= _GO_STICKY
    return mode


def path_stat(host: Path, path: str) -> str:
    """The ``X-Docker-Container-Path-Stat`` header: base64 of a JSON stat."""
    try:
        st = os.lstat(host)
    except FileNotFoundError:
        raise NotFound(f"Could not find the file {path} in container") from None
    link = os.readlink(host) if stat.S_ISLNK(st.st_mode) else ""
    data = {"name": os.path.basename(path.rstrip("/")) or "/", "size": st.st_size, "mode": go_mode(st),
            "mtime": go_rfc3339nano(st.st_mtime_ns), "linkTarget": link}
    return base64.b64encode(json.dumps(data).encode()).decode()


def write_tar(host: Path, path: str, out: BinaryIO) -> None:
    """A tar of ``path`` named by its base name (``/etc`` -> ``etc/...``), or of a
    directory's contents when the path ends in ``/.``."""
    contents_only = path.endswith("/.")
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        if contents_only:
            for name in sorted(os.listdir(host)):
                tar.add(host / name, arcname=name)
        else:
            tar.add(host, arcname=os.path.basename(path.rstrip("/")) or ".")


def extract(host_dir: Path, path: str, stream: BinaryIO) -> None:
    """Unpack a tar into an existing directory of the container."""
    if not host_dir.exists():
        raise NotFound(f"Could not find the file {path} in container")
    if not host_dir.is_dir():
        raise InvalidParameter(f"extraction point is not a directory: {path}")
    archive.apply_layer(host_dir, stream)


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
            return path_stat(resolve(root, c.mounts, path), path)

    def archive(self, ref: str, path: str) -> tuple[str, Callable[[BinaryIO], None]]:
        """``GET /containers/{id}/archive``: the stat header, and a function writing the tar to a file.

        Errors (no such container or path) are raised here, before anything is sent.
        """
        c = self.containers.get(ref)
        with self._rootfs(c.id) as root:
            header = path_stat(resolve(root, c.mounts, path), path)
            if not os.path.lexists(resolve(root, c.mounts, path, follow_last=True)):
                raise NotFound(f"Could not find the file {path} in container {c.name}")

        def produce(out: BinaryIO) -> None:
            with self._rootfs(c.id) as root:
                write_tar(resolve(root, c.mounts, path, follow_last=True), path, out)

        return header, produce

    def extract(self, ref: str, path: str, stream: BinaryIO) -> None:
        """``PUT /containers/{id}/archive``: unpack a tar into a directory of the container."""
        c = self.containers.get(ref)
        with self._rootfs(c.id) as root:
            extract(resolve(root, c.mounts, path, follow_last=True), path, stream)

    def export(self, ref: str) -> Callable[[BinaryIO], None]:
        """``docker export``: a function writing the container's whole file system as a tar."""
        c = self.containers.get(ref)

        def produce(out: BinaryIO) -> None:
            with self._rootfs(c.id) as root, archive.export_tree(root) as stream:
                out.flush()
                stream.write_to(out.fileno())  # file content with sendfile

        return produce

    def changes(self, ref: str) -> list[dict] | None:
        """``docker diff``: the layer's changes (``None`` when there are none, as Docker answers)."""
        c = self.containers.get(ref)
        return [{"Path": change.path, "Kind": change.kind} for change in self.storage.changes(c.id)] or None
