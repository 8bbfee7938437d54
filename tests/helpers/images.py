"""Test images built in memory: layer tars, configs, docker-archive and OCI layouts."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(files: dict[str, bytes]) -> bytes:
    """An uncompressed layer tar holding ``files`` (paths -> content)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1700000000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def random_layer(size: int, name: str = "data.bin") -> bytes:
    return layer_tar({name: os.urandom(size)})


def image_config(diff_ids: list[str], cmd: list[str] | None = None) -> bytes:
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2023-11-14T22:13:20Z",
        "config": {"Cmd": cmd or ["sh"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2023-11-14T22:13:20Z", "created_by": f"layer {i}"} for i in range(len(diff_ids))],
    }
    return json.dumps(config, separators=(",", ":")).encode()


def docker_archive(layers: list[bytes], tag: str | None = None) -> tuple[bytes, str]:
    """A docker-archive tar of an image made of uncompressed ``layers``; returns (tar, image ID)."""
    diff_ids = [sha256(layer) for layer in layers]
    config = image_config(diff_ids)
    image_id = sha256(config)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add(f"{image_id[7:]}.json", config)
        paths = []
        for layer, diff_id in zip(layers, diff_ids, strict=True):
            add(f"{diff_id[7:]}/layer.tar", layer)
            paths.append(f"{diff_id[7:]}/layer.tar")
        add(
            "manifest.json",
            json.dumps(
                [{"Config": f"{image_id[7:]}.json", "RepoTags": [tag] if tag else None, "Layers": paths}]
            ).encode(),
        )
    return buf.getvalue(), image_id


def schema2(layers: list[bytes], compresslevel: int = 9) -> tuple[bytes, bytes, list[bytes]]:
    """(manifest, config, gzipped layer blobs) of a Docker v2 schema 2 image."""
    blobs = [gzip.compress(layer, compresslevel=compresslevel, mtime=0) for layer in layers]
    config = image_config([sha256(layer) for layer in layers])
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": len(config),
            "digest": sha256(config),
        },
        "layers": [
            {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": len(b), "digest": sha256(b)}
            for b in blobs
        ],
    }
    return json.dumps(manifest, indent=3).encode(), config, blobs


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
