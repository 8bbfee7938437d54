"""``docker save`` / ``docker load``: the docker-archive tar format.

Layout (as moby 20.10 writes it, and as skopeo's ``docker-archive:`` and podman
read it)::

    manifest.json            [{"Config": "<id>.json", "RepoTags": [...], "Layers": ["<l>/layer.tar", ...]}]
    repositories             {"repo": {"tag": "<top l>"}}
    <id>.json                the image config, byte for byte (its sha256 is the image ID)
    <l>/layer.tar            an uncompressed layer tar; <l> is the layer's chain ID
    <l>/VERSION, <l>/json    legacy v1 metadata

Load reads the archive in place: its members are indexed (headers only), and each
layer is applied straight from its bytes in the archive while a thread hashes it,
then copied into the blob store in the kernel once its diff ID checks out.  Docker
untars the whole archive into a temporary directory first.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from dockyard.compression import CHUNK, CodecError, decompressing_reader, sniff
from dockyard.errors import InvalidParameter
from dockyard.images import ImageService
from dockyard.models.image import ImageConfig
from dockyard.pipeline import copy_range, region_reader, send_range
from dockyard.tarstream import BLOCK, RECORD, REG, TarFormatError, TarReader, ustar_header

#: largest manifest or config accepted from an archive
MAX_JSON = 16 << 20


class _Writer:
    """Writes a tar into a file descriptor as ``tarfile`` in PAX format would (owner 0, mode 0644,
    mtime 0); file content goes out with ``sendfile``."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.size = 0

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]
        self.size += len(data)

    def add_bytes(self, name: str, data: bytes) -> None:
        self._write(ustar_header(name.encode(), 0o644, 0, 0, len(data), 0, b"0") + data + bytes(-len(data) % BLOCK))

    def add_file(self, name: str, path: Path) -> None:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            self._write(ustar_header(name.encode(), 0o644, 0, 0, size, 0, b"0"))
            send_range(f.fileno(), self.fd, 0, size)
        self.size += size
        self._write(bytes(-size % BLOCK))

    def close(self) -> None:
        self._write(bytes(2 * BLOCK))
        self._write(bytes(-self.size % RECORD))


def save(images: ImageService, names: list[str], out: BinaryIO) -> None:
    """Write a docker-archive of the named images (and all their layers) to ``out`` (a file with a
    descriptor: the kept layer tars are sent into it with ``sendfile``, as they are)."""
    manifest: list[dict] = []
    repositories: dict[str, dict[str, str]] = {}
    written: set[str] = set()
    out.flush()
    tar = _Writer(out.fileno())
    for name in names:
        image_id = images.resolve(name)
        blob = images.store.blob(image_id)
        config_name = f"{image_id}.json"
        if config_name not in written:
            tar.add_bytes(config_name, blob)
            written.add(config_name)
        chain = list(reversed(images.layer_chain(images.top_layer(image_id))))
        layer_paths, parent = [], None
        for layer in chain:
            path = f"{layer}/layer.tar"
            if path not in written:
                tar.add_file(path, images.layer_tar(layer))
                tar.add_bytes(f"{layer}/VERSION", b"1.0")
                v1 = {"id": layer, "parent": parent} if parent else {"id": layer}
                tar.add_bytes(f"{layer}/json", json.dumps(v1).encode())
                written.add(path)
            layer_paths.append(path)
            parent = layer
        tags = images.repo_tags(image_id)
        requested = [t for t in tags if name in (t, t.rsplit(":", 1)[0])] or (
            [] if name.startswith(("sha256:", image_id[:4])) else tags
        )
        manifest.append({"Config": config_name, "RepoTags": requested or None, "Layers": layer_paths})
        for tag in requested:
            repo, _, t = tag.rpartition(":")
            repositories.setdefault(repo, {})[t] = chain[-1] if chain else ""
    tar.add_bytes("manifest.json", json.dumps(manifest).encode())
    if repositories:
        tar.add_bytes("repositories", json.dumps(repositories).encode())
    tar.close()


def load(images: ImageService, archive: BinaryIO) -> list[str]:
    """Load every image of a docker-archive (a seekable file; plain or compressed as a
    whole); returns Docker's "Loaded image" lines.

    Each layer is verified against the config's diff IDs; a bad archive stores
    nothing that would be visible as an image.
    """
    head = os.pread(archive.fileno(), 8, 0)
    if sniff(head):  # docker save | gzip: decompressed once, then read in place
        with tempfile.TemporaryFile(dir=images.store.blob_dir) as plain:
            read = decompressing_reader(region_reader(archive, 0, os.fstat(archive.fileno()).st_size))
            try:
                while chunk := read(CHUNK):
                    plain.write(chunk)
            except CodecError as exc:
                raise InvalidParameter(f"invalid archive: {exc}") from None
            plain.flush()
            return _load_plain(images, plain)
    return _load_plain(images, archive)


def _index(archive: BinaryIO) -> dict[str, tuple[int, int]]:
    """name -> (offset, size) of every regular file of the archive (headers read, content seeked over)."""
    fd = archive.fileno()
    members: dict[str, tuple[int, int]] = {}
    position = [0]

    def read(n: int) -> bytes:
        data = os.pread(fd, n, position[0])
        position[0] += len(data)
        return data

    def seek(n: int) -> None:
        position[0] += n

    reader = TarReader(read, chunk=64 << 10, seek=seek)
    end = os.fstat(fd).st_size
    try:
        while (entry := reader.next()) is not None:
            if entry.type == REG and entry.sparse is None:
                if reader.offset + entry.size > end:
                    raise TarFormatError(f"{entry.name} is cut short")
                members["/".join(p for p in entry.name.split("/") if p not in ("", "."))] = (reader.offset, entry.size)
    except TarFormatError as exc:
        raise InvalidParameter(f"invalid archive: not a tar file ({exc})") from None
    return members


def _load_plain(images: ImageService, archive: BinaryIO) -> list[str]:
    members = _index(archive)
    if "manifest.json" not in members:
        raise InvalidParameter("invalid archive: no valid manifest.json (only docker-archive is supported)")
    try:
        manifest = json.loads(_read(archive, members, "manifest.json"))
        if not isinstance(manifest, list):
            raise ValueError("not a list")
    except ValueError:
        raise InvalidParameter("invalid archive: no valid manifest.json (only docker-archive is supported)") from None
    lines = []
    for entry in manifest:
        blob = _read(archive, members, entry["Config"])
        config = ImageConfig.model_validate_json(blob)
        if len(config.rootfs.diff_ids) != len(entry["Layers"]):
            raise InvalidParameter(
                f"invalid archive: {entry['Config']} names {len(config.rootfs.diff_ids)} "
                f"layers, the manifest {len(entry['Layers'])}"
            )
        parent, size = None, 0
        try:
            for expected, path in zip(config.rootfs.diff_ids, entry["Layers"], strict=True):  # lengths checked above
                layer, layer_size = _load_layer(images, archive, members, parent, expected, path)
                parent, size = layer, size + layer_size
            tags = entry.get("RepoTags") or []
            image_id = images.record_image(config, parent, size, "", None, None, blob=blob)
        except BaseException:
            images.release_layers(parent)  # layers no image uses: gone again
            raise
        for tag in tags:
            repo, _, t = tag.rpartition(":")
            images.tag(image_id, repo, t, event=False)  # as Docker: a load is one "load" event
            lines.append(f"Loaded image: {tag}")
        images.event("load", "sha256:" + image_id, "sha256:" + image_id)
        if not tags:
            lines.append(f"Loaded image ID: sha256:{image_id}")
    return lines


def _load_layer(
    images: ImageService,
    archive: BinaryIO,
    members: dict[str, tuple[int, int]],
    parent: str | None,
    diff_id: str,
    path: str,
) -> tuple[str, int]:
    key = "/".join(p for p in path.split("/") if p not in ("", "."))
    if key not in members:
        raise InvalidParameter(f"invalid archive: {path} is missing")
    offset, size = members[key]
    read = region_reader(archive, offset, size)
    if sniff(os.pread(archive.fileno(), 8, offset)):  # a compressed layer: kept as it is decompressed
        read = decompressing_reader(read)
        copy = None
    else:  # kept with a kernel copy of its bytes in the archive

        def copy(fd: int) -> None:
            copy_range(archive.fileno(), fd, offset, size)

    try:
        return images.add_verified_layer(parent, diff_id, read, copy)
    except InvalidParameter as exc:
        raise InvalidParameter(f"invalid archive: layer {path}: {exc.message}") from None
    except CodecError as exc:
        raise InvalidParameter(f"invalid archive: layer {path}: {exc}") from None


def _read(archive: BinaryIO, members: dict[str, tuple[int, int]], name: str) -> bytes:
    key = "/".join(p for p in name.split("/") if p not in ("", "."))
    if key not in members:
        raise InvalidParameter(f"invalid archive: {name} is missing")
    offset, size = members[key]
    if size > MAX_JSON:
        raise InvalidParameter(f"invalid archive: {name} is larger than {MAX_JSON} bytes")
    return os.pread(archive.fileno(), size, offset)
