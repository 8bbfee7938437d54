"""Repositories, blobs, manifests and tags over a storage backend.

The key layout is distribution's (see :mod:`.layout`).  Visibility: content is
verified and written whole to ``blobs/`` first; only then is the repository
link written (one atomic object write).  A blob or manifest is visible in a
repository exactly when its link exists, so an interrupted upload or a crash
never exposes partial or unverified content.  Upload sessions are objects in
the backend too (:mod:`.uploads`), so every replica sees every session.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict

from dockyard.oci import (
    ALL_MANIFESTS,
    DIGEST_RE,
    DOCKER_FOREIGN_LAYER,
    DOCKER_SCHEMA1,
    DOCKER_SCHEMA1_SIGNED,
    IMAGE_MANIFESTS,
    INDEXES,
    TAG_RE,
    hasher,
    manifest_media_type,
    sha256_digest,
    valid_name,
)
from .errors import RegistryError
from .layout import (
    BASE,
    blob_key,
    layer_link,
    meta_key,
    repo_key,
    revision_link,
    split_digest,
    tag_index_link,
    tag_link,
)
from .storage import StorageBackend
from .gc import Fence
from .uploads import Upload, UploadSessions

MAX_MANIFEST = 4 << 20


class RegistryStore:
    def __init__(self, backend: StorageBackend, fence: Fence | None = None) -> None:
        self.backend = backend
        self.uploads = UploadSessions(backend)
        self.fence = fence or Fence(backend)
        self._manifest_cache: OrderedDict[str, tuple[bytes, str]] = OrderedDict()
        self._cache_lock = threading.Lock()

    # -- repositories -----------------------------------------------------------------------------
    def repo_exists(self, name: str) -> bool:
        children = self.backend.list(repo_key(name))
        return "_manifests" in children or "_layers" in children

    def repositories(self) -> list[str]:
        found: list[str] = []

        def walk(prefix: str, path: str) -> None:
            children = self.backend.list(prefix)
            if "_manifests" in children or "_layers" in children:
                found.append(path)
            for child in children:
                if not child.startswith("_"):
                    walk(f"{prefix}/{child}", f"{path}/{child}" if path else child)

        walk(f"{BASE}/repositories", "")
        return sorted(found)

    def meta(self, name: str) -> dict:
        try:
            return json.loads(self.backend.get(meta_key(name)))
        except (KeyError, ValueError):
            return {}

    def set_meta(self, name: str, meta: dict) -> None:
        self.backend.put(meta_key(name), json.dumps(meta, sort_keys=True).encode())

    def delete_repository(self, name: str) -> None:
        for part in ("_manifests", "_layers", "_meta", "_uploads"):
            self.backend.delete_tree(repo_key(name, part))

    # -- blobs ------------------------------------------------------------------------------------
    @staticmethod
    def blob_key(digest: str) -> str:
        return blob_key(digest)

    def blob_size(self, digest: str) -> int | None:
        return self.backend.size(blob_key(digest))

    def repo_blob_size(self, name: str, digest: str) -> int:
        """Size of a blob linked into ``name``; BLOB_UNKNOWN otherwise."""
        if not self.backend.exists(layer_link(name, digest)):
            raise RegistryError("BLOB_UNKNOWN", detail=digest)
        size = self.blob_size(digest)
        if size is None:
            raise RegistryError("BLOB_UNKNOWN", detail=digest)
        return size

    def check_blob_for_push(self, name: str, digest: str) -> int:
        """A blob HEAD: its size, unless a garbage collection is deleting it (then BLOB_UNKNOWN, so the
        client uploads it again rather than relying on it)."""
        size = self.repo_blob_size(name, digest)
        if self.fence.guard([digest]).is_doomed(digest):
            raise RegistryError("BLOB_UNKNOWN", detail=digest)
        return size

    def link_blob(self, name: str, digest: str) -> None:
        self.backend.put(layer_link(name, digest), digest.encode())

    def unlink_blob(self, name: str, digest: str) -> None:
        if not self.backend.delete(layer_link(name, digest)):
            raise RegistryError("BLOB_UNKNOWN", detail=digest)

    def mount_blob(self, name: str, source: str, digest: str) -> bool:
        """Link a blob of ``source`` into ``name``; False if ``source`` does not have it."""
        if not valid_name(source):
            return False
        try:
            self.repo_blob_size(source, digest)
        except RegistryError:
            return False
        guard = self.fence.guard([digest])
        if guard.is_doomed(digest):
            return False
        guard.confirm()
        self.link_blob(name, digest)
        return True

    def _store_blob(self, digest: str, write) -> None:
        """Make ``blobs/<digest>`` exist: ``write()`` stores it unless it is there already.  Stored content
        is relied on through the gc fence; content a collection is deleting is written after it is done."""
        guard = self.fence.guard([digest])
        while True:
            guard.wait_until_spared([digest])
            if self.blob_size(digest) is None:
                write()
            guard.confirm()
            if not guard.is_doomed(digest):
                return

    # -- uploads ----------------------------------------------------------------------------------
    def start_upload(self, name: str) -> Upload:
        return self.uploads.start(name)

    def get_upload(self, name: str, upload_id: str) -> Upload:
        return self.uploads.get(name, upload_id)

    def cancel_upload(self, upload: Upload) -> None:
        self.uploads.cancel(upload)

    def finish_upload(self, upload: Upload, digest: str) -> str:
        """Verify the session's content against ``digest`` and make it visible in the repository."""
        split_digest(digest)
        actual = self.uploads.digest_of(upload, digest)
        if actual != digest:
            self.cancel_upload(upload)
            raise RegistryError("DIGEST_INVALID", detail={"expected": digest, "actual": actual})
        self._store_blob(digest, lambda: self.uploads.compose_into(upload, blob_key(digest)))
        self.link_blob(upload.name, digest)
        self.cancel_upload(upload)
        return digest

    def cache_manifest(self, name: str, reference: str, body: bytes, digest: str) -> None:
        """Store a manifest the pull-through cache fetched (verified by the caller, its blobs fetched later)."""
        h = hasher(digest)
        h.update(body)
        if f"{digest.split(':')[0]}:{h.hexdigest()}" != digest:
            raise RegistryError("DIGEST_INVALID", detail={"expected": digest})
        self._store_blob(digest, lambda: self.backend.put(blob_key(digest), body))
        self.backend.put(revision_link(name, digest), digest.encode())
        if not DIGEST_RE.match(reference):
            self.backend.put(tag_index_link(name, reference, digest), digest.encode())
            self.backend.put(tag_link(name, reference), digest.encode())

    # -- manifests --------------------------------------------------------------------------------
    def resolve_tag(self, name: str, tag: str) -> str:
        try:
            digest = self.backend.get(tag_link(name, tag)).decode().strip()
        except KeyError:
            raise RegistryError("MANIFEST_UNKNOWN", detail={"Tag": tag}) from None
        return digest

    def _manifest_blob(self, digest: str) -> tuple[bytes, str]:
        with self._cache_lock:
            cached = self._manifest_cache.get(digest)
            if cached is not None:
                self._manifest_cache.move_to_end(digest)
                return cached
        try:
            body = self.backend.get(blob_key(digest))
        except KeyError:
            raise RegistryError("MANIFEST_UNKNOWN", detail={"Digest": digest}) from None
        try:
            media_type = manifest_media_type(json.loads(body))
        except ValueError:
            media_type = "application/octet-stream"
        with self._cache_lock:
            self._manifest_cache[digest] = (body, media_type)
            while len(self._manifest_cache) > 4096:
                self._manifest_cache.popitem(last=False)
        return body, media_type

    def get_manifest(self, name: str, reference: str) -> tuple[bytes, str, str]:
        """(body, media type, digest) of a manifest of ``name`` by tag or digest.

        By tag it is one read of the tag's link: a tag only ever points at a revision of the
        repository (a push writes the revision before the tag, a deletion removes the tags before
        the revision, and gc removes only revisions no tag reaches)."""
        if DIGEST_RE.match(reference):
            digest = reference
            if not self.backend.exists(revision_link(name, digest)):
                raise RegistryError("MANIFEST_UNKNOWN", detail={"Digest": digest})
        elif TAG_RE.match(reference):
            digest = self.resolve_tag(name, reference)
        else:
            raise RegistryError("MANIFEST_INVALID", f"invalid tag or digest {reference!r}")
        body, media_type = self._manifest_blob(digest)
        return body, media_type, digest

    def manifest_exists_in(self, name: str, digest: str) -> bool:
        return self.backend.exists(revision_link(name, digest))

    def put_manifest(self, name: str, reference: str, body: bytes, content_type: str | None) -> str:
        """Verify and store a manifest; returns its digest."""
        if len(body) > MAX_MANIFEST:
            raise RegistryError("MANIFEST_INVALID", "manifest too large", status=413)
        is_digest = bool(DIGEST_RE.match(reference))
        if not is_digest and not TAG_RE.match(reference):
            raise RegistryError("TAG_INVALID", detail={"Tag": reference})
        try:
            manifest = json.loads(body)
            if not isinstance(manifest, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            raise RegistryError("MANIFEST_INVALID", f"manifest invalid: {exc}") from None
        media_type = manifest_media_type(manifest, content_type)
        declared = manifest.get("mediaType")
        header = (content_type or "").split(";")[0].strip()
        if declared and header in ALL_MANIFESTS and header != declared:
            raise RegistryError(
                "MANIFEST_INVALID", f"mediaType in manifest ({declared}) does not match the Content-Type ({header})"
            )
        if media_type in (DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED) or manifest.get("schemaVersion") != 2:
            raise RegistryError(
                "MANIFEST_INVALID", "only schema version 2 manifests (Docker v2 schema 2, OCI) are accepted"
            )
        blobs: list[str] = []  # what this manifest references, and must exist in the repository
        children: list[str] = []
        if media_type in IMAGE_MANIFESTS:
            config = manifest.get("config")
            if not isinstance(config, dict) or "digest" not in config:
                raise RegistryError("MANIFEST_INVALID", "manifest has no config")
            for descriptor in [config, *(manifest.get("layers") or [])]:
                digest = descriptor.get("digest", "") if isinstance(descriptor, dict) else ""
                if not DIGEST_RE.match(str(digest)):
                    raise RegistryError("MANIFEST_INVALID", f"invalid digest {digest!r} in manifest")
                if descriptor.get("mediaType") == DOCKER_FOREIGN_LAYER or descriptor.get("urls"):
                    continue
                blobs.append(digest)
        elif media_type in INDEXES:
            for descriptor in manifest.get("manifests") or []:
                digest = descriptor.get("digest", "") if isinstance(descriptor, dict) else ""
                if not DIGEST_RE.match(str(digest)):
                    raise RegistryError("MANIFEST_INVALID", f"invalid digest {digest!r} in index")
                children.append(digest)
        else:
            raise RegistryError("MANIFEST_INVALID", f"unsupported manifest media type {media_type!r}")
        if is_digest:
            h = hasher(reference)
            h.update(body)
            digest = f"{reference.split(':')[0]}:{h.hexdigest()}"
            if digest != reference:
                raise RegistryError("DIGEST_INVALID", detail={"expected": reference, "actual": digest})
        else:
            digest = sha256_digest(body)
        own = f"{name}@{digest}"
        guard = self.fence.guard([*blobs, digest], [*(f"{name}@{c}" for c in children), own])
        missing = [
            d
            for d in blobs
            if guard.is_doomed(d) or not self.backend.exists(layer_link(name, d)) or self.blob_size(d) is None
        ]
        missing += [c for c in children if guard.is_doomed(f"{name}@{c}") or not self.manifest_exists_in(name, c)]
        if missing:
            raise RegistryError("MANIFEST_BLOB_UNKNOWN", detail=[{"digest": d} for d in missing])
        while True:  # content this request writes itself: after any collection deleting it is done
            guard.wait_until_spared([digest, own])
            if self.blob_size(digest) is None:
                self.backend.put(blob_key(digest), body)
            guard.confirm()
            if not (guard.is_doomed(digest) or guard.is_doomed(own)):
                break
        if any(guard.is_doomed(d) for d in [*blobs, *(f"{name}@{c}" for c in children)]):
            raise RegistryError(
                "MANIFEST_BLOB_UNKNOWN",
                "a garbage collection is deleting content this manifest references: push it again",
            )
        self.backend.put(revision_link(name, digest), digest.encode())
        if not is_digest:
            self.backend.put(tag_index_link(name, reference, digest), digest.encode())
            self.backend.put(tag_link(name, reference), digest.encode())
        return digest

    def delete_manifest(self, name: str, reference: str) -> None:
        if not DIGEST_RE.match(reference):
            # deleting a tag (OCI distribution 1.1)
            if not TAG_RE.match(reference):
                raise RegistryError("MANIFEST_INVALID", f"invalid reference {reference!r}")
            self.resolve_tag(name, reference)
            self._delete_tag(name, reference)
            return
        if not self.backend.exists(revision_link(name, reference)):
            raise RegistryError("MANIFEST_UNKNOWN", detail={"Digest": reference})
        for tag in self.tags(name, must_exist=False):  # the tags first: a tag never points at a missing revision
            try:
                if self.resolve_tag(name, tag) == reference:
                    self._delete_tag(name, tag)
            except RegistryError:
                continue
        self.backend.delete(revision_link(name, reference))

    def _delete_tag(self, name: str, tag: str) -> None:
        self.backend.delete(tag_link(name, tag))  # what readers look at goes first
        self.backend.delete_tree(repo_key(name, "_manifests", "tags", tag))

    def tags(self, name: str, must_exist: bool = True) -> list[str]:
        tags = [
            t for t in self.backend.list(repo_key(name, "_manifests", "tags")) if self.backend.exists(tag_link(name, t))
        ]
        if not tags and must_exist and not self.repo_exists(name):
            raise RegistryError("NAME_UNKNOWN", detail={"name": name})
        return sorted(tags)


__all__ = ["RegistryStore"]
