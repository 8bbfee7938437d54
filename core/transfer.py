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
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from dockyard import reference
from dockyard.errors import InvalidParameter
from dockyard.images import chain_id
from dockyard.models.image import ImageConfig

if TYPE_CHECKING:
    from dockyard.engine import Engine
    from dockyard.images import ImageService
    from dockyard.filters import Filters

log = logging.getLogger(__name__)

Progress = Callable[[dict], None]


class _LayerApplier:
    """Applies pulled layers bottom first, each as soon as it and every layer below it are
    here, in a thread of its own while later layers still download (the driver's
    ``layer_ready``).  Layers the driver did not hand over are given by :meth:`finish`."""

    def __init__(self, images: ImageService, progress: Progress) -> None:
        self.images = images
        self.progress = progress
        self.cond = threading.Condition()
        self.ready: dict[int, tuple[str, str]] = {}  # index -> (tar path, progress id)
        self.diff_ids: list[str] | None = None
        self.stopping = False
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.top: str | None = None  # the last layer of the chain present or applied
        self.size = 0
        self.added: list[str] = []

    def layer_ready(self, index: int, diff_ids: list[str], path: str, progress_id: str = "") -> None:
        with self.cond:
            if self.diff_ids is None:
                self.diff_ids = list(diff_ids)
                self.thread = threading.Thread(target=self._run, name="pull-apply", daemon=True)
                self.thread.start()
            self.ready[index] = (path, progress_id)
            self.cond.notify_all()

    def _run(self) -> None:
        images = self.images
        try:
            for index, diff_id in enumerate(self.diff_ids or []):
                chain = chain_id(self.top, diff_id)
                row = images.store.layer_row(chain)
                if row is not None and images.storage.exists(chain):
                    self.top, self.size = chain, self.size + row["size"]
                    continue
                with self.cond:
                    while index not in self.ready and not self.stopping:
                        self.cond.wait()
                    if index not in self.ready:
                        return
                    path, layer_id = self.ready.pop(index)
                stored = images.store.blob_dir / diff_id.removeprefix("sha256:")
                self.progress({"status": "Extracting", "progressDetail": {}, "id": layer_id})
                os.replace(path, stored)  # the uncompressed tar is kept by diff ID (save, push)
                self.size += images.ensure_layer(chain, self.top, diff_id, stored)
                self.added.append(chain)
                self.top = chain
                self.progress({"status": "Pull complete", "progressDetail": {}, "id": layer_id})
        except BaseException as exc:  # noqa: BLE001 - raised by finish()
            self.error = exc

    def finish(self, result: dict | None) -> None:
        """Hand over what the driver returned (None: it failed) and wait for the thread."""
        with self.cond:
            if result is not None:
                layer_ids = result.get("layer_ids") or [""] * len(result["layers"])
                diff_ids = [d for d, _ in result["layers"]]
                if self.diff_ids is None:
                    self.diff_ids = diff_ids
                    self.thread = threading.Thread(target=self._run, name="pull-apply", daemon=True)
                    self.thread.start()
                for index, ((_, path), layer_id) in enumerate(zip(result["layers"], layer_ids, strict=True)):
                    if path and index not in self.ready and os.path.exists(path):
                        self.ready[index] = (path, layer_id)
            else:
                self.stopping = True
            self.cond.notify_all()
        if self.thread is not None:
            self.thread.join()
        if result is not None and self.error is None and self.ready:
            self.error = RuntimeError(f"pulled layers were never applied: {sorted(self.ready)}")

    def discard(self) -> None:
        """Delete the tars nobody applied."""
        for path, _ in self.ready.values():
            Path(path).unlink(missing_ok=True)


def pull_image(engine: Engine, reference: str, auth: dict, progress: Progress) -> str:
    """Pull into the image store; returns the image ID.  Runs in a worker thread.

    Layers are applied in order while later ones still download; a failure leaves no
    image and releases the layers this pull added."""
    images = engine.images

    def layer_exists(parent: str | None, diff_id: str) -> str | None:
        chain = chain_id(parent, diff_id)
        if images.store.layer_row(chain) is not None and images.storage.exists(chain):
            return chain
        return None

    tmp = engine.data_root / "tmp"
    applier = _LayerApplier(images, progress)
    result = None
    try:
        try:
            result = engine.distribution.pull(reference, auth, progress, layer_exists, str(tmp), applier.layer_ready)
        finally:
            applier.finish(result)
        if applier.error is not None:
            raise applier.error
        blob: bytes = result["config"]
        image_id = hashlib.sha256(blob).hexdigest()
        config = ImageConfig.model_validate_json(blob)
        repo, tag = result.get("repository"), result.get("tag")
        previous = images.store.tag_target(repo, tag) if repo and tag else None
        images.record_image(config, applier.top, applier.size, "", repo if tag else None, tag, blob=blob)
    except BaseException:
        if result is None or images.store.image_row(hashlib.sha256(result["config"]).hexdigest()) is None:
            images.release_layers(applier.top)
        raise
    finally:
        applier.discard()
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


SEARCH_FILTERS = ("is-automated", "is-official", "stars")


def search_images(engine: Engine, term: str, limit: int, auth: dict, filters: Filters) -> list[dict]:
    """``docker search``: the index's answer, filtered by ``is-official``, ``is-automated`` and ``stars``."""
    if not term:
        raise InvalidParameter("term must be given")
    if limit < 1 or limit > 100:
        raise InvalidParameter(f"limit {limit} is outside the range of [1, 100]")
    filters.validate(SEARCH_FILTERS)
    official, automated = filters.bool_value("is-official"), filters.bool_value("is-automated")
    stars = filters.get("stars")
    try:
        minimum = max((int(v) for v in stars), default=0)
    except ValueError:
        raise InvalidParameter(f"Invalid filter 'stars={stars[0]}'") from None
    results = engine.distribution.search(term, limit, auth)
    return [
        r
        for r in results
        if (official is None or r["is_official"] == official)
        and (automated is None or r["is_automated"] == automated)
        and r["star_count"] >= minimum
    ]


def push_image(engine: Engine, name: str, tags: list[str], auth: dict, progress: Progress) -> None:
    images = engine.images
    for tag in tags:
        image_id = images.resolve(f"{name}:{tag}")
        chain = list(reversed(images.layer_chain(images.top_layer(image_id))))
        layers = []
        for layer in chain:
            layers.append((images.store.layer(layer)["diff_id"], str(images.layer_tar(layer))))
        image = {"config": images.store.blob(image_id), "layers": layers, "work_dir": str(engine.data_root / "tmp")}
        result = engine.distribution.push(f"{name}:{tag}", image, auth, progress)
        if result.get("Digest"):
            images.add_repo_digest(reference.parse_repository_tag(name)[0], result["Digest"], image_id)
        engine.events.emit("image", "push", f"{name}:{tag}", {"name": f"{name}:{tag}"})
        if result.get("Digest"):
            engine.observers.image_pushed(f"{name}:{tag}", result["Digest"])
        log.info("pushed %s:%s as %s", name, tag, result.get("Digest"))
