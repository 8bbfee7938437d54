"""Moving images between the image store and a registry, over the distribution driver.

The driver downloads, uploads and verifies; the store is written here: layers
first, the image (config blob byte for byte, so its ID is the config's digest,
as ``docker save`` expects) last.  A failed pull leaves no image and releases
the layers it added.  Both functions block: call them from a worker thread.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Callable

from dockyard import reference
from dockyard.images import chain_id
from dockyard.models.image import ImageConfig

log = logging.getLogger(__name__)

Progress = Callable[[dict], None]


def pull_image(engine, reference: str, auth: dict, progress: Progress) -> str:
    """Pull into the image store; returns the image ID.  Runs in a worker thread."""
    images = engine.images

    def layer_exists(parent: str | None, diff_id: str) -> str | None:
        chain = chain_id(parent, diff_id)
        if images.store.layer_row(chain) is not None and images.storage.exists(chain):
            return chain
        return None

    tmp = engine.data_root / "tmp"
    result = engine.distribution.pull(reference, auth, progress, layer_exists, str(tmp))
    blob: bytes = result["config"]
    image_id = hashlib.sha256(blob).hexdigest()
    config = ImageConfig.model_validate_json(blob)
    repo, tag = result.get("repository"), result.get("tag")
    pending = [Path(p) for _, p in result["layers"] if p]
    parent: str | None = None
    size = 0
    try:
        for (diff_id, path), layer_id in zip(result["layers"], result.get("layer_ids") or [""] * len(pending)):
            chain = chain_id(parent, diff_id)
            stored = images.store.blob_dir / diff_id.removeprefix("sha256:")
            if path:
                progress({"status": "Extracting", "progressDetail": {}, "id": layer_id})
                os.replace(path, stored)  # the uncompressed tar is kept by diff ID (save, push)
            size += images.ensure_layer(chain, parent, diff_id, stored)
            if path:
                progress({"status": "Pull complete", "progressDetail": {}, "id": layer_id})
            parent = chain
        previous = images.store.tag_target(repo, tag) if tag else None
        images.record_image(config, parent, size, "", repo if tag else None, tag, blob=blob)
    except BaseException:
        if images.store.image_row(image_id) is None:
            images.release_layers(parent)
        raise
    finally:
        for path in pending:
            path.unlink(missing_ok=True)
    if repo:
        images.add_repo_digest(repo, result["digest"], image_id)
    progress({"status": f"Digest: {result['digest']}"})
    name = f"{repo}:{tag}" if tag else f"{repo}@{result['digest']}"
    if tag and previous == image_id:
        progress({"status": f"Status: Image is up to date for {name}"})
    else:
        progress({"status": f"Status: Downloaded newer image for {name}"})
    engine.events.emit("image", "pull", name, {"name": name})
    return image_id


def push_image(engine, name: str, tags: list[str], auth: dict, progress: Progress) -> None:
    images = engine.images
    for tag in tags:
        image_id = images.resolve(f"{name}:{tag}")
        chain = list(reversed(images.layer_chain(images.top_layer(image_id))))
        layers = []
        for layer in chain:
            row = images.store.layer_row(layer)
            layers.append((row["diff_id"], str(images.layer_tar(layer))))
        image = {"config": images.store.blob(image_id), "layers": layers, "work_dir": str(engine.data_root / "tmp")}
        result = engine.distribution.push(f"{name}:{tag}", image, auth, progress)
        if result.get("Digest"):
            images.add_repo_digest(reference.parse_repository_tag(name)[0], result["Digest"], image_id)
        engine.events.emit("image", "push", f"{name}:{tag}", {"name": f"{name}:{tag}"})
        if result.get("Digest"):
            engine.observers.image_pushed(f"{name}:{tag}", result["Digest"])
        log.info("pushed %s:%s as %s", name, tag, result.get("Digest"))
