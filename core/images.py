"""Images: import from a tarball, resolve names, list, inspect, tag, delete.

An image is its OCI config blob (whose sha256 is the image ID) plus a chain of
layers in the storage driver.  Layers are named by chain ID, so importing the
same tarball twice shares one layer.  Every path that creates anything writes
layer content first and commits the metadata last, in one transaction; what a
crash leaves behind is unreferenced layer content, which
:meth:`ImageService.reconcile` removes at the next start.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from dockyard import config_changes, ids, reference
from dockyard.compression import CHUNK, CodecError, decompressing_reader
from dockyard.drivers import StorageDriver
from dockyard.errors import Conflict, InvalidParameter, NotFound
from dockyard.filters import Filters
from dockyard.models.container import ContainerConfig
from dockyard.models.image import HistoryEntry, ImageConfig, RootFS
from dockyard.pipeline import HashingReader, ThreadedHash
from dockyard.store import Store
from dockyard.timefmt import iso_now, parse_iso, to_unix

if TYPE_CHECKING:
    from dockyard.events import EventBus

log = logging.getLogger(__name__)


def decompressed(raw: BinaryIO) -> BinaryIO:
    """``raw`` (at its start), decompressed if its magic bytes say it is compressed (gzip, zstd, bzip2, xz)."""
    read = decompressing_reader(raw.read)
    return io.BufferedReader(_ReadStream(read), CHUNK)


class _ReadStream(io.RawIOBase):
    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read = read
        self._rest = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if not self._rest:
            try:
                self._rest = memoryview(self._read(max(len(buffer), CHUNK)))
            except CodecError as exc:
                raise ValueError(str(exc)) from None
        n = min(len(buffer), len(self._rest))
        buffer[:n] = self._rest[:n]
        self._rest = self._rest[n:]
        return n


def stage_layer(raw: BinaryIO, blob_dir: Path) -> tuple[str, Path]:
    """Decompress a layer tar (plain, gzip, zstd, bzip2 or xz) into the blob store, hashed
    in a thread beside the copy; returns (diff ID, path of the uncompressed tar).

    The uncompressed tar is kept, named by its diff ID, so that ``save`` and
    ``push`` can hand out byte-identical layers later (Docker keeps tar-split
    metadata for the same reason).  Its members are not parsed here: the applier
    checks them, in its one pass.  Raises InvalidParameter when the compression is
    corrupt; nothing is left behind then.
    """
    tmp = blob_dir / f".stage-{os.getpid()}-{threading.get_ident()}-{time.monotonic_ns()}"
    try:
        with open(tmp, "wb") as out, ThreadedHash() as digest:
            try:
                read = decompressing_reader(raw.read)
                while chunk := read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            except CodecError as exc:
                raise InvalidParameter(
                    f"archive/tar: invalid tar header: the body is not a valid tar archive ({exc})"
                ) from None
            hexdigest = digest.hexdigest()
        final = blob_dir / hexdigest
        os.replace(tmp, final)
        return "sha256:" + hexdigest, final
    finally:
        tmp.unlink(missing_ok=True)


def chain_id(parent_chain: str | None, diff_id: str) -> str:
    """OCI ChainID, as 64 hex (the storage layer's name)."""
    if parent_chain is None:
        return diff_id.removeprefix("sha256:")
    return hashlib.sha256(f"sha256:{parent_chain} {diff_id}".encode()).hexdigest()


class ImageService:
    def __init__(self, store: Store, storage: StorageDriver, driver_name: str, events: EventBus | None = None) -> None:
        self.store = store
        self.storage = storage
        self.driver_name = driver_name
        self.events = events
        #: image ID -> [(container ID, running)] of the containers made from it; the engine
        #: wires in the container service's view (rmi refuses or only untags such images)
        self.users: Callable[[], dict[str, list[tuple[str, bool]]]] = dict

    def event(self, action: str, actor: str, name: str) -> None:
        """Emit an image event (``docker events``)."""
        if self.events is not None:
            self.events.emit("image", action, actor, {"name": name})

    # -- resolution ----------------------------------------------------------
    def resolve(self, name: str) -> str:
        """Image ID (64 hex) for a name, ``repo:tag``, ``repo@digest``, full or short ID."""
        candidate = name.removeprefix("sha256:")
        if ids.HEX64.match(candidate) and self.store.image_row(candidate):
            return candidate
        try:
            ref: reference.Reference | None = reference.parse(name)
        except InvalidParameter:
            ref = None
        if ref is not None and ref.digest:  # repo@sha256:<manifest digest>, as pulled or pushed
            target = self.store.repo_digest_target((ref.repository,), ref.digest)
            if target:
                return target
            raise NotFound(f"No such image: {name}")
        if ref is not None:
            target = self.store.tag_target(ref.repository, ref.tag or "latest")
            if target:
                return target
        if candidate and all(c in "0123456789abcdef" for c in candidate):
            matches = self.store.image_ids_with_prefix(candidate)
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise InvalidParameter(f"multiple IDs found with provided prefix: {candidate}")
        raise NotFound(f"No such image: {name}")

    def config(self, image_id: str) -> ImageConfig:
        return ImageConfig.model_validate_json(self.store.blob(image_id))

    def top_layer(self, image_id: str) -> str | None:
        row = self.store.image_row(image_id)
        if row is None:
            raise NotFound(f"No such image: {image_id}")
        return row["top_layer"]

    # -- creation ------------------------------------------------------------
    def import_tarball(
        self, raw: BinaryIO, repo: str | None, tag: str | None, comment: str = "", changes: ImageConfig | None = None
    ) -> str:
        """Import a root file system tarball (plain, gzip, bzip2 or xz) as a new
        single-layer image; returns the image ID."""
        if repo:
            repo, tag = reference.parse_repository_tag(repo, tag)
        diff_id, tar_path = stage_layer(raw, self.store.blob_dir)
        layer = chain_id(None, diff_id)
        size = self.ensure_layer(layer, None, diff_id, tar_path)
        now = iso_now()
        config = changes or ImageConfig()
        config = config.model_copy(
            update={
                "created": now,
                "rootfs": RootFS(diff_ids=[diff_id]),
                "history": [HistoryEntry(created=now, created_by="", comment=comment or "Imported from -")],
            }
        )
        image_id = self.record_image(config, layer, size, parent="", repo=repo, tag=tag)
        self.event("import", "sha256:" + image_id, f"{repo}:{tag}" if repo else "")
        return image_id

    def ensure_layer(self, layer: str, parent: str | None, diff_id: str, tar_path: Path) -> int:
        """Apply the kept tar ``tar_path`` as storage layer ``layer`` unless it exists; returns its size.
        On failure the layer goes, and so does the tar unless another layer has that diff ID."""
        row = self.store.layer_row(layer)
        if row is not None and self.storage.exists(layer):
            return row["size"]
        if self.storage.exists(layer):  # content left by a crash before its row committed
            self.storage.remove_layer(layer)
        self.storage.create_layer(layer, parent)
        try:
            with open(tar_path, "rb", buffering=0) as stream:
                size = self.storage.apply_diff(layer, stream)
        except BaseException:
            self.storage.remove_layer(layer)
            if not self.store.diff_id_in_use(diff_id):
                tar_path.unlink(missing_ok=True)
            raise
        self.store.add_layer(layer, parent, diff_id, size, iso_now())
        return size

    def add_verified_layer(
        self, parent: str | None, diff_id: str, read: Callable[[int], bytes], copy: Callable[[int], None] | None = None
    ) -> tuple[str, int]:
        """Store a layer whose diff ID is known beforehand (load, pull), in one pass: the
        uncompressed tar ``read`` gives is applied while a thread hashes it beside the
        applier; a mismatch removes the layer.  The tar is kept for save and push: the
        bytes read are written as they pass, or, when ``copy`` is given, ``copy(fd)``
        writes them into the kept file after the check (a kernel copy from the source).
        Returns (layer, size).
        """
        layer = chain_id(parent, diff_id)
        row = self.store.layer_row(layer)
        if row is not None and self.storage.exists(layer):
            return layer, row["size"]
        if self.storage.exists(layer):  # content left by a crash before its row committed
            self.storage.remove_layer(layer)
        kept = self.store.blob_dir / diff_id.removeprefix("sha256:")
        tmp = self.store.blob_dir / f".stage-{os.getpid()}-{threading.get_ident()}-{time.monotonic_ns()}"
        self.storage.create_layer(layer, parent)
        try:
            with open(tmp, "wb") as out:
                with ThreadedHash() as digest:
                    stream = HashingReader(read, digest, copy_to=out if copy is None else None)
                    size = self.storage.apply_diff(layer, stream)  # type: ignore[arg-type]  # reads as a file
                    stream.drain()  # what a driver left unread still belongs to the digest
                    got = "sha256:" + digest.hexdigest()
                if got != diff_id:
                    raise InvalidParameter(f"layer content has diff ID {got}, the image config says {diff_id}")
                if copy is not None:
                    out.flush()
                    copy(out.fileno())
            os.replace(tmp, kept)
        except BaseException:
            self.storage.remove_layer(layer)
            raise
        finally:
            tmp.unlink(missing_ok=True)
        self.store.add_layer(layer, parent, diff_id, size, iso_now())
        return layer, size

    def record_image(
        self,
        config: ImageConfig,
        top_layer: str | None,
        size: int,
        parent: str,
        repo: str | None,
        tag: str | None,
        blob: bytes | None = None,
    ) -> str:
        """Record an image whose layers exist.  ``blob`` keeps a config's original
        bytes (a loaded or pulled image's ID is the digest of exactly those)."""
        blob = blob if blob is not None else config.canonical_json()
        image_id = self.store.put_blob(blob)
        self.store.add_image(image_id, top_layer, parent, size, config.created or iso_now(), repo, tag)
        return image_id

    def commit(
        self,
        container_layer: str,
        base_image: str,
        container_config: ContainerConfig,
        created_by: str,
        repo: str | None,
        tag: str | None,
        comment: str = "",
        author: str = "",
        changes: Sequence[str] = (),
    ) -> str:
        """A new image from a container's read-write layer on top of its image."""
        if repo:
            repo, tag = reference.parse_repository_tag(repo, tag)
        return self.child_image(
            base_image,
            config_changes.apply(container_config, list(changes)),
            created_by,
            container_layer,
            author=author,
            comment=comment,
            repo=repo,
            tag=tag,
        )

    def child_image(
        self,
        base_image: str | None,
        container_config: ContainerConfig,
        created_by: str,
        diff_layer: str | None,
        *,
        author: str = "",
        comment: str = "",
        repo: str | None = None,
        tag: str | None = None,
        skip_empty_diff: bool = False,
        base_config: ImageConfig | None = None,
    ) -> str:
        """An image on ``base_image`` (None: ``FROM scratch``) with ``container_config``.

        ``diff_layer``'s changes (a container or scratch storage layer) become a new
        layer; with None, or an empty diff when ``skip_empty_diff``, the image only
        adds an ``empty_layer`` history entry and shares its parent's layers, as
        Docker's metadata-only build steps do.
        """
        base = self.config(base_image) if base_image else (base_config or ImageConfig())
        row = self.store.image_row(base_image) if base_image else None
        top, size = (row["top_layer"], row["size"]) if row else (None, 0)
        diff_id = None
        if diff_layer is not None:
            diff = self.storage.diff(diff_layer)
            try:
                diff_id, tar_path, empty = _stage_diff(diff, self.store.blob_dir)
            finally:
                diff.close()
            if skip_empty_diff and empty:
                if not self.store.diff_id_in_use(diff_id):
                    tar_path.unlink(missing_ok=True)
                diff_id = None
            else:
                layer = chain_id(top, diff_id)
                size += self.ensure_layer(layer, top, diff_id, tar_path)
                top = layer
        now = iso_now()
        config = base.model_copy(deep=True)
        config.config = container_config
        config.created = now
        if author:
            config.author = author
        entry = HistoryEntry(created=now, created_by=created_by, comment=comment or None)
        if diff_id is None:
            entry.empty_layer = True
        else:
            config.rootfs = RootFS(diff_ids=[*base.rootfs.diff_ids, diff_id])
        config.history = [*base.history, entry]
        return self.record_image(config, top, size, parent=base_image or "", repo=repo, tag=tag)

    def history(self, image_id: str) -> list[dict]:
        """``docker history``: newest first; IDs where an image in the chain starts."""
        config = self.config(image_id)
        entries = list(config.history)
        layers = self.layer_chain(self.store.image(image_id)["top_layer"])  # top first
        sizes = [self.store.layer(layer)["size"] for layer in layers]
        owners: dict[int, str] = {}
        current: str | None = image_id
        end = len(entries)
        while current and end > 0:
            owners[end - 1] = current
            row = self.store.image_row(current)
            parent = row["parent"] if row else ""
            end = len(self.config(parent).history) if parent and self.store.image_row(parent) else 0
            current = parent or None
        result = []
        for index in range(len(entries) - 1, -1, -1):
            entry = entries[index]
            size = 0
            if not entry.empty_layer and sizes:
                size = sizes.pop(0)
            owner = owners.get(index)
            result.append(
                {
                    "Id": "sha256:" + owner if owner else "<missing>",
                    "Created": to_unix(entry.created or ""),
                    "CreatedBy": entry.created_by or "",
                    "Tags": self.repo_tags(owner) if owner else None,
                    "Size": size,
                    "Comment": entry.comment or "",
                }
            )
        return result

    def layer_chain(self, top: str | None) -> list[str]:
        chain = []
        while top:
            chain.append(top)
            top = self.store.layer(top)["parent"]
        return chain

    def layer_tar(self, layer: str) -> Path:
        """The uncompressed tar a layer was made from (see :func:`stage_layer`)."""
        row = self.store.layer_row(layer)
        if row is None:
            raise NotFound(f"no such layer: {layer}")
        path = self.store.blob_dir / row["diff_id"].removeprefix("sha256:")
        if not path.exists():
            raise NotFound(f"layer tar {row['diff_id']} is missing from the store")
        return path

    def tag(self, name: str, repo: str, tag: str, *, event: bool = True) -> None:
        """Point ``repo:tag`` at the image ``name`` resolves to (``docker tag``, build ``-t``)."""
        image_id = self.resolve(name)
        repo, tag = reference.parse_repository_tag(repo, tag)
        self.store.set_tag(repo, tag, image_id)
        if event:
            self.event("tag", "sha256:" + image_id, f"{repo}:{tag}")

    def push_tags(self, name: str, tag: str = "") -> list[str]:
        """The tags ``docker push name[:tag]`` sends: the one given, or every tag of the repository."""
        if tag:
            try:
                self.resolve(f"{name}:{tag}")
            except NotFound:
                raise NotFound(f"tag does not exist: {name}:{tag}") from None
            return [tag]
        tags = self.store.tags_in(reference.parse_repository_tag(name)[0])
        if not tags:
            raise NotFound(f"An image does not exist locally with the tag: {name}")
        return tags

    # -- views -----------------------------------------------------------------
    def repo_tags(self, image_id: str) -> list[str]:
        return [f"{r}:{t}" for r, t in self.store.tags_of(image_id)]

    def repo_digests(self, image_id: str) -> list[str]:
        return [f"{repo}@{digest}" for repo, digest in self.store.repo_digests_of(image_id)]

    def add_repo_digest(self, repo: str, digest: str, image_id: str) -> None:
        """Record the manifest digest an image has in a registry repository (pull, push)."""
        self.store.add_repo_digest(repo, digest, image_id)

    def summaries(self, all_images: bool = False, filters: Filters | None = None, extra: bool = False) -> list[dict]:
        """``GET /images/json`` with moby's filter rules; ``extra`` adds what ``system df`` shows
        (``Containers``, ``SharedSize``).  Blocks (SQLite): call from a worker thread."""
        filters = filters or Filters()
        dangling = filters.bool_value("dangling")
        # a key with no values filters nothing, as moby's WalkValues (schemathesis sent {"before": []}: a 500)
        before = self.config(self.resolve(filters.get("before")[-1])).created if filters.get("before") else None
        since = self.config(self.resolve(filters.get("since")[-1])).created if filters.get("since") else None
        rows = self.store.image_rows()
        parents = {r["parent"] for r in rows if r["parent"]}
        users = self.users() if extra else {}
        layer_refs: dict[str, int] = {}
        chains: dict[str, list[str]] = {}
        if extra:
            for row in rows:
                chains[row["id"]] = self.layer_chain(row["top_layer"])
                for layer in chains[row["id"]]:
                    layer_refs[layer] = layer_refs.get(layer, 0) + 1
        result = []
        for row in sorted(rows, key=lambda r: r["created"], reverse=True):
            is_head = row["id"] not in parents
            if dangling and not is_head:
                continue  # Docker lists only the heads of the image graph for dangling=true
            config = self.config(row["id"])
            created = config.created or row["created"]
            if before is not None and parse_iso(created) >= parse_iso(before):
                continue
            if since is not None and parse_iso(created) <= parse_iso(since):
                continue
            if filters.contains("label") and not filters.match_kv_list("label", config.config.labels):
                continue
            tags = self.repo_tags(row["id"])
            digests = self.repo_digests(row["id"])
            if filters.contains("reference"):
                patterns = filters.get("reference")
                tags = [t for t in tags if any(_matches(p, t) for p in patterns)]
                digests = [d for d in digests if any(_matches(p, d.split("@")[0] + ":") for p in patterns)]
            if not tags and not digests:
                if filters.contains("reference"):
                    continue  # only images with a matching name
                if not (all_images or is_head):
                    continue  # an intermediate image: shown only with -a
                if dangling is False:
                    continue
                tags, digests = ["<none>:<none>"], ["<none>@<none>"]
            elif dangling and tags:
                continue
            item = {
                "Id": "sha256:" + row["id"],
                "ParentId": "sha256:" + row["parent"] if row["parent"] else "",
                "RepoTags": tags,
                "RepoDigests": digests,
                "Created": to_unix(created),
                "Size": row["size"],
                "VirtualSize": row["size"],
                "SharedSize": -1,
                "Labels": config.config.labels or {},
                "Containers": -1,
            }
            if extra:
                item["Containers"] = len(users.get(row["id"], []))
                item["SharedSize"] = sum(
                    self._layer_size(layer) for layer in chains[row["id"]] if layer_refs.get(layer, 0) > 1
                )
            result.append(item)
        return result

    def _layer_size(self, layer: str) -> int:
        row = self.store.layer_row(layer)
        return row["size"] if row else 0

    def layers_size(self) -> int:
        """Bytes of every image layer (``system df``'s LayersSize)."""
        return sum(row["size"] for row in self.store.layer_rows())

    def descendants(self, image_id: str) -> set[str]:
        """The image and every image built on it (``docker ps --filter ancestor=``)."""
        found, todo = set(), [image_id]
        while todo:
            current = todo.pop()
            if current not in found:
                found.add(current)
                todo += self.store.image_children(current)
        return found

    def prune(self, filters: Filters) -> tuple[list[dict], int]:
        """``docker image prune``: dangling images (``dangling=false``: every image no container
        uses), created before ``until``, with the labels asked for; returns the untag and delete
        lines and the bytes freed.  Blocks: call from a worker thread."""
        dangling = filters.bool_value("dangling")
        dangling_only = dangling is not False
        until = filters.until()
        rows = self.store.image_rows()
        parents = {r["parent"] for r in rows if r["parent"]}
        sizes_before = {r["chain_id"]: r["size"] for r in self.store.layer_rows()}
        in_use = self.users()
        deleted: list[dict] = []
        for row in rows:
            image_id = row["id"]
            if self.store.image_row(image_id) is None:
                continue  # removed with an earlier one
            tags, digests = self.store.tags_of(image_id), self.repo_digests(image_id)
            if dangling_only and row["id"] in parents:
                continue
            if not tags and not digests and image_id in parents:
                continue
            config = self.config(image_id)
            if until is not None and parse_iso(config.created or row["created"]) >= until:
                continue
            if not filters.match_labels(config.config.labels):
                continue
            if dangling_only and tags:
                continue
            if in_use.get(image_id):
                continue
            try:
                if tags and not dangling_only:
                    for repo, tag in tags:
                        deleted += self.delete(f"{repo}:{tag}", force=False, prune=True)
                else:
                    deleted += self.delete(image_id, force=False, prune=True)
            except Conflict:
                continue
        remaining = self.store.layer_ids()
        reclaimed = sum(size for layer, size in sizes_before.items() if layer not in remaining)
        if self.events is not None:
            self.events.emit("image", "prune", "", {"reclaimed": str(reclaimed)})
        return deleted, reclaimed

    def inspect(self, image_id: str) -> dict:
        row = self.store.image_row(image_id)
        if row is None:
            raise NotFound(f"No such image: {image_id}")
        config = self.config(image_id)
        history = config.history[-1] if config.history else HistoryEntry()
        return {
            "Id": "sha256:" + image_id,
            "RepoTags": self.repo_tags(image_id),
            "RepoDigests": self.repo_digests(image_id),
            "Parent": "sha256:" + row["parent"] if row["parent"] else "",
            "Comment": history.comment or "",
            "Created": config.created or row["created"],
            "Container": "",
            "ContainerConfig": config.config.api(),
            "DockerVersion": "",
            "Author": config.author or "",
            "Config": config.config.api(),
            "Architecture": config.architecture,
            "Os": config.os,
            "Size": row["size"],
            "VirtualSize": row["size"],
            "GraphDriver": {"Name": self.driver_name, "Data": {}},
            "RootFS": {"Type": config.rootfs.type, "Layers": list(config.rootfs.diff_ids)},
            "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
        }

    # -- deletion ------------------------------------------------------------
    def delete(self, name: str, force: bool = False, prune: bool = True) -> list[dict]:
        """``docker rmi``: untag, and delete the image once no tag is left; emits an event per line.

        Images containers were made from (:attr:`users`) are only untagged, or refused.
        """
        result = self._delete(name, force, self.users(), prune)
        for item in result:
            line, ref = next(iter(item.items()))
            self.event({"Untagged": "untag", "Deleted": "delete"}[line], ref, name)
        return result

    def _delete(self, name: str, force: bool, users: dict[str, list[tuple[str, bool]]], prune: bool) -> list[dict]:
        image_id = self.resolve(name)
        tags = self.store.tags_of(image_id)
        by_reference = not ids.HEX64.match(name.removeprefix("sha256:")) and not image_id.startswith(
            name.removeprefix("sha256:")
        )
        result: list[dict] = []
        in_use = users.get(image_id, [])
        ref = reference.parse(name) if by_reference else None
        if ref is not None and ref.digest:  # drop the digest; the image goes only if nothing else names it
            self.store.delete_repo_digest(image_id, ref.digest, (ref.repository,))
            result.append({"Untagged": name})
            if tags or self.repo_digests(image_id) or in_use:
                return result
            by_reference = False
        if by_reference:
            repo, tag = reference.parse_repository_tag(name)
            if len(tags) == 1 and in_use and not force:
                container_id = in_use[0][0]
                raise Conflict(
                    f'conflict: unable to remove repository reference "{name}" (must force) - '
                    f"container {ids.short(container_id)} is using its referenced image "
                    f"{ids.short(image_id)}"
                )
            if len(tags) > 1 or in_use:
                # other names still point at it, or a container still uses it: untag only
                self.store.delete_tag(repo, tag)
                return [{"Untagged": f"{repo}:{tag}"}]
        elif len(tags) > 1 and not force:
            raise Conflict(
                f"conflict: unable to delete {ids.short(image_id)} (must be forced) - "
                "image is referenced in multiple repositories"
            )
        for container_id, running in in_use:
            if running:
                raise Conflict(
                    f"conflict: unable to delete {ids.short(image_id)} (cannot be forced) - "
                    f"image is being used by running container {ids.short(container_id)}"
                )
            if not force:
                raise Conflict(
                    f"conflict: unable to delete {ids.short(image_id)} (must be forced) - "
                    f"image is being used by stopped container {ids.short(container_id)}"
                )
        children = self.store.image_children(image_id)
        if children and not force:
            raise Conflict(
                f"conflict: unable to delete {ids.short(image_id)} (cannot be forced) - "
                "image has dependent child images"
            )
        row = self.store.image(image_id)
        self.store.delete_image(image_id)
        result += [{"Untagged": f"{r}:{t}"} for r, t in tags]
        result.append({"Deleted": "sha256:" + image_id})
        self.release_layers(row["top_layer"])
        if prune:
            result += self._prune_parents(row["parent"], users)
        return result

    def _prune_parents(self, parent: str, users: dict[str, list[tuple[str, bool]]]) -> list[dict]:
        """Delete untagged parents nothing else needs (Docker's rmi without --no-prune):
        the intermediate images a build or commit left below the image just removed."""
        deleted = []
        while parent:
            row = self.store.image_row(parent)
            if row is None or self.store.tags_of(parent) or users.get(parent) or self.store.image_children(parent):
                break
            self.store.delete_image(parent)
            deleted.append({"Deleted": "sha256:" + parent})
            self.release_layers(row["top_layer"])
            parent = row["parent"]
        return deleted

    def release_layers(self, layer: str | None) -> None:
        """Remove a layer chain from the top while no image or layer still uses it."""
        while layer:
            if self.store.layer_in_use(layer):
                return
            row = self.store.layer(layer)
            parent = row["parent"]
            if self.storage.exists(layer):
                self.storage.remove_layer(layer)
            self.store.delete_layer(layer)
            if not self.store.diff_id_in_use(row["diff_id"]):
                (self.store.blob_dir / row["diff_id"].removeprefix("sha256:")).unlink(missing_ok=True)
            layer = parent

    def reconcile(self, container_ids: set[str]) -> list[str]:
        """Remove storage layers no metadata refers to (left by a crash)."""
        wanted = self.store.layer_ids() | container_ids
        removed: list[str] = []
        progress = True
        while progress:
            progress = False
            for layer in self.storage.layers():
                if layer in wanted or layer in removed:
                    continue
                try:
                    self.storage.remove_layer(layer)
                except Conflict:
                    continue  # has an orphan child: removed on a later pass
                removed.append(layer)
                progress = True
        if removed:
            log.warning("removed %d unreferenced layer(s) left by an earlier crash", len(removed))
        return removed


def _stage_diff(diff: BinaryIO, blob_dir: Path) -> tuple[str, Path, bool]:
    """Keep a diff a storage driver writes (an uncompressed tar of its own making), hashed
    beside the copy: (diff ID, path, whether the tar has no members)."""
    tmp = blob_dir / f".stage-{os.getpid()}-{threading.get_ident()}-{time.monotonic_ns()}"
    try:
        with open(tmp, "wb") as out, ThreadedHash() as digest:
            first = diff.read(CHUNK)
            while 0 < len(first) < 512 and (more := diff.read(CHUNK)):
                first += more
            empty = len(first) < 512 or first[:512] == bytes(512)  # an end-of-archive block first
            chunk = first
            while chunk:
                digest.update(chunk)
                out.write(chunk)
                chunk = diff.read(CHUNK)
            hexdigest = digest.hexdigest()
        final = blob_dir / hexdigest
        os.replace(tmp, final)
        return "sha256:" + hexdigest, final, empty
    finally:
        tmp.unlink(missing_ok=True)


def _matches(pattern: str, repo_tag: str) -> bool:
    import fnmatch

    if ":" in pattern.rsplit("/", 1)[-1]:
        return fnmatch.fnmatch(repo_tag, pattern)
    return fnmatch.fnmatch(repo_tag.rsplit(":", 1)[0], pattern)


__all__ = ["ImageService", "chain_id", "decompressed", "stage_layer"]
