"""Image data paths side by side with a reference Docker daemon (see main's docstring)."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def docker_archive_file(layers: list[Path], out: Path, tag: str) -> str:
    """Write a docker-archive (``docker save`` format) of uncompressed layer tars; returns the image ID."""
    diff_ids = [_sha256_file(p) for p in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                         "created": "2026-01-01T00:00:00Z",
                         "history": [{"created": "2026-01-01T00:00:00Z", "created_by": f"layer {i}"}
                                     for i in range(len(layers))],
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    image_id = hashlib.sha256(config).hexdigest()
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        names = []
        for path, diff_id in zip(layers, diff_ids):
            name = f"{diff_id[7:]}/layer.tar"
            tar.add(str(path), arcname=name)
            names.append(name)
        for name, data in ((f"{image_id}.json", config),
                           ("manifest.json", json.dumps([{"Config": f"{image_id}.json", "RepoTags": [tag],
                                                          "Layers": names}]).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            import io

            tar.addfile(info, io.BytesIO(data))
    return image_id
