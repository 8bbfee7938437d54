"""``dockyard cp``: tar streams to and from ``/containers/{id}/archive``.

Docker's rules: copying into an existing directory puts the source inside it;
copying to a path that does not exist gives the copy that name.
"""

from __future__ import annotations

import base64
import io
import json
import posixpath
import tarfile
from pathlib import Path

from .client import APIClient, CliError, DaemonError, quote_ref

_GO_DIR = 1 << 31


def _split(arg: str) -> tuple[str | None, str]:
    """``name:/path`` -> (name, path); a local path (even with a colon after a slash) -> (None, path)."""
    head, sep, tail = arg.partition(":")
    if sep and head and "/" not in head and not arg.startswith((".", "/")):
        return head, tail
    return None, arg


def _stat(api: APIClient, container: str, path: str) -> dict | None:
    try:
        response = api.request("HEAD", f"/containers/{quote_ref(container)}/archive", params={"path": path})
    except DaemonError as exc:
        if exc.status == 404:
            return None
        raise
    header = response.headers.get("X-Docker-Container-Path-Stat")
    return json.loads(base64.b64decode(header)) if header else None


def copy(api: APIClient, source: str, destination: str) -> None:
    src_container, src_path = _split(source)
    dst_container, dst_path = _split(destination)
    if src_container and dst_container:
        raise CliError("copying between containers is not supported")
    if not src_container and not dst_container:
        raise CliError("must specify at least one container source")
    if src_container:
        _from_container(api, src_container, src_path, Path(dst_path))
    else:
        _to_container(api, Path(src_path), dst_container, dst_path)  # type: ignore[arg-type]


def _from_container(api: APIClient, container: str, path: str, target: Path) -> None:
    rename = None
    if target.is_dir():
        directory = target
    else:
        if not target.parent.is_dir():
            raise CliError(f"destination directory {target.parent} does not exist")
        directory, rename = target.parent, target.name
    with api.stream("GET", f"/containers/{quote_ref(container)}/archive", params={"path": path}) as response:
        stream = io.BufferedReader(_ResponseReader(response), 1 << 20)
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            base = posixpath.basename(path.rstrip("/")) or "."
            for member in tar:
                if rename is not None and (member.name == base or member.name.startswith(base + "/")):
                    member.name = rename + member.name[len(base) :]
                tar.extract(member, directory, filter="tar")


class _ResponseReader(io.RawIOBase):
    def __init__(self, response) -> None:
        self._chunks = response.iter_bytes(1 << 20)
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._buffer))
        buffer[:n], self._buffer = self._buffer[:n], self._buffer[n:]
        return n


def _to_container(api: APIClient, source: Path, container: str, path: str) -> None:
    if not source.exists() and not source.is_symlink():
        raise CliError(f"lstat {source}: no such file or directory")
    stat = _stat(api, container, path)
    if stat is not None and stat["mode"] & _GO_DIR:
        directory, name = path, source.name
    else:
        directory, name = posixpath.dirname(path.rstrip("/")) or "/", posixpath.basename(path.rstrip("/"))
        if path.endswith("/"):
            raise CliError(f"Error: no such directory {path} in container {container}")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(source, arcname=name)
    api.request(
        "PUT",
        f"/containers/{quote_ref(container)}/archive",
        params={"path": directory},
        content=buffer.getvalue(),
        headers={"Content-Type": "application/x-tar"},
    )


__all__ = ["copy"]
