"""``docker save`` / ``docker load``: the docker-archive tar format.

Layout (as moby 20.10 writes it, and as skopeo's ``docker-archive:`` and podman
read it)::

    manifest.json            [{"Config": "<id>.json", "RepoTags": [...], "Layers": ["<l>/layer.tar", ...]}]
    repositories             {"repo": {"tag": "<top l>"}}
    <id>.json                the image config, byte for byte (its sha256 is the image ID)
    <l>/layer.tar            an uncompressed layer tar; <l> is the layer's chain ID
    <l>/VERSION, <l>/json    legacy v1 metadata
"""

from __future__ import annotations

import io
import json
import tarfile
from typing import BinaryIO

from dockyard.archive import SafeTarInfo
from dockyard.errors import InvalidParameter, NotFound
from dockyard.images import ImageService
from dockyard.models.image import ImageConfig


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tar.addfile(info, io.BytesIO(data))


def save(images: ImageService, names: list[str], out: BinaryIO) -> None:
    """Write a docker-archive of the named images (and all their layers) to ``out``."""
    manifest, repositories, written = [], {}, set()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name in names:
            image_id = images.resolve(name)
            blob = images.store.blob(image_id)
            config_name = f"{image_id}.json"
            if config_name not in written:
                _add_bytes(tar, config_name, blob)
                written.add(config_name)
            chain = list(reversed(images.layer_chain(images.top_layer(image_id))))
            layer_paths, parent = [], None
            for layer in chain:
                path = f"{layer}/layer.tar"
                if path not in written:
                    tar_file = images.layer_tar(layer)
                    info = tar.gettarinfo(str(tar_file), arcname=path)
                    info.mode, info.uid, info.gid, info.uname, info.gname, info.mtime = 0o644, 0, 0, "", "", 0
                    with open(tar_file, "rb") as f:
                        tar.addfile(info, f)
                    _add_bytes(tar, f"{layer}/VERSION", b"1.0")
                    v1 = {"id": layer, "parent": parent} if parent else {"id": layer}
                    _add_bytes(tar, f"{layer}/json", json.dumps(v1).encode())
                    written.add(path)
                layer_paths.append(path)
                parent = layer
            tags = images.repo_tags(image_id)
            requested = [t for t in tags if name in (t, t.rsplit(":", 1)[0])] or ([] if name.startswith(
                ("sha256:", image_id[:4])) else tags)
            manifest.append({"Config": config_name, "RepoTags": requested or None, "Layers": layer_paths})
            for tag in requested:
                repo, _, t = tag.rpartition(":")
                repositories.setdefault(repo, {})[t] = chain[-1] if chain else ""
        _add_bytes(tar, "manifest.json", json.dumps(manifest).encode())
        if repositories:
            _add_bytes(tar, "repositories", json.dumps(repositories).encode())


def load(images: ImageService, archive: BinaryIO) -> list[str]:
    """Load every image of a docker-archive; returns Docker's "Loaded image" lines.

    Each layer is verified against the config's diff IDs; a bad archive stores
    nothing that would be visible as an image.
    """
    try:
        tar = tarfile.open(fileobj=archive, mode="r:*", tarinfo=SafeTarInfo)
    except tarfile.TarError as exc:
        raise InvalidParameter(f"invalid archive: not a tar file ({exc})") from None
    with tar:
        try:
            manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        except (KeyError, json.JSONDecodeError, AttributeError):
            raise InvalidParameter("invalid archive: no valid manifest.json (only docker-archive is supported)") \
                from None
        lines = []
        for entry in manifest:
            blob = _read(tar, entry["Config"])
            config = ImageConfig.model_validate_json(blob)
            if len(config.rootfs.diff_ids) != len(entry["Layers"]):
                raise InvalidParameter(f"invalid archive: {entry['Config']} names {len(config.rootfs.diff_ids)} "
                                       f"layers, the manifest {len(entry['Layers'])}")
            parent, size = None, 0
            try:
                for expected, path in zip(config.rootfs.diff_ids, entry["Layers"]):
                    member = tar.extractfile(path)
                    if member is None:
                        raise InvalidParameter(f"invalid archive: {path} is missing")
                    layer, diff_id, layer_size = images.add_layer(parent, member)
                    parent, size = layer, size + layer_size
                    if diff_id != expected:
                        raise InvalidParameter(f"invalid archive: layer {path} has diff ID {diff_id}, "
                                               f"the config says {expected}")
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


def _read(tar: tarfile.TarFile, name: str) -> bytes:
    try:
        f = tar.extractfile(name)
    except KeyError:
        raise InvalidParameter(f"invalid archive: {name} is missing") from None
    if f is None:
        raise NotFound(f"invalid archive: {name} is not a file")
    return f.read()
