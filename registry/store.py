"""Repositories, blobs, manifests, tags and upload sessions over a storage backend.

Layout (distribution's, under ``docker/registry/v2/``)::

    blobs/sha256/<hh>/<hex>/data                                   content, shared by all repositories
    repositories/<name>/_layers/sha256/<hex>/link                  a blob belongs to <name>
    repositories/<name>/_manifests/revisions/sha256/<hex>/link     a manifest belongs to <name>
    repositories/<name>/_manifests/tags/<tag>/current/link         what <tag> points at
    repositories/<name>/_manifests/tags/<tag>/index/sha256/<hex>/link
    repositories/<name>/_meta/dockyard.json                        owner, private, description (ours)

Visibility: content is verified and written whole to ``blobs/`` first; only
then is the repository link written (one atomic object write).  A blob or
manifest is visible in a repository exactly when its link exists, so an
interrupted upload or a crash never exposes partial or unverified content.

Upload sessions live on local disk (``<state dir>/_uploads/<uuid>/``), hashed as
they arrive; on the file system backend the finished file is renamed into
``blobs/``, on S3 it is uploaded.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import time
import uuid as uuidlib
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from dockyard.oci import (ALL_MANIFESTS, DIGEST_RE, DOCKER_FOREIGN_LAYER, DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED,
                          INDEXES, IMAGE_MANIFESTS, TAG_RE, hasher, manifest_media_type, sha256_digest, valid_name)
from .errors import RegistryError
from .storage import CHUNK, StorageBackend

BASE = "docker/registry/v2"
MAX_MANIFEST = 4 << 20
UPLOAD_MAX_AGE = 24 * 3600


def _split(digest: str) -> tuple[str, str]:
    if not DIGEST_RE.match(digest):
        raise RegistryError("DIGEST_INVALID", f"invalid digest {digest!r}")
    algorithm, hexa = digest.split(":", 1)
    return algorithm, hexa


@dataclass
class Upload:
    """An upload session: a local file and the running hash of what it holds."""

    uuid: str
    name: str
    directory: Path
    started: float
    hashes: dict = field(default_factory=dict)  # algorithm -> hash object over the whole file
    offset: int = 0  # bytes covered by the hashes
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def size(self) -> int:
        try:
            return self.data.stat().st_size
        except FileNotFoundError:
            return 0


class UploadWriter:
    """Appends to an upload's file while hashing; used under the upload's lock."""

    def __init__(self, upload: Upload) -> None:
        self.upload = upload
        self.file = open(upload.data, "ab")
        self.written = 0
        if upload.offset != upload.size():  # a restart lost the hash state: rebuild it
            upload.hashes = {"sha256": hashlib.sha256()}
            upload.offset = 0
            with open(upload.data, "rb") as f:
                while data := f.read(CHUNK):
                    upload.hashes["sha256"].update(data)
                    upload.offset += len(data)

    def write(self, data: bytes) -> None:
        self.file.write(data)
        for h in self.upload.hashes.values():
            h.update(data)
        self.upload.offset += len(data)
        self.written += len(data)

    def close(self) -> None:
        self.file.close()


class RegistryStore:
    def __init__(self, backend: StorageBackend, state_dir: Path, delete_enabled: bool = True) -> None:
        self.backend = backend
        self.state_dir = Path(state_dir)
        self.upload_dir = self.state_dir / "_uploads"
        self.upload_dir.mkdir(parents=True, exist_ok=True)
        self.delete_enabled = delete_enabled
        self._uploads: dict[str, Upload] = {}
        self._uploads_lock = threading.Lock()
        self._manifest_cache: OrderedDict[str, tuple[bytes, str]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self.purge_uploads()

    # -- keys -------------------------------------------------------------------------------------
    @staticmethod
    def blob_key(digest: str) -> str:
        algorithm, hexa = _split(digest)
        return f"{BASE}/blobs/{algorithm}/{hexa[:2]}/{hexa}/data"

    @staticmethod
    def repo_key(name: str, *parts: str) -> str:
        return "/".join((BASE, "repositories", name, *parts))

    def _layer_link(self, name: str, digest: str) -> str:
        algorithm, hexa = _split(digest)
        return self.repo_key(name, "_layers", algorithm, hexa, "link")

    def _revision_link(self, name: str, digest: str) -> str:
        algorithm, hexa = _split(digest)
        return self.repo_key(name, "_manifests", "revisions", algorithm, hexa, "link")

    def _tag_link(self, name: str, tag: str) -> str:
        return self.repo_key(name, "_manifests", "tags", tag, "current", "link")

    @staticmethod
    def check_name(name: str) -> None:
        if not valid_name(name):
            raise RegistryError("NAME_INVALID", detail={"name": name})

    # -- repositories -----------------------------------------------------------------------------
    def repo_exists(self, name: str) -> bool:
        children = self.backend.list(self.repo_key(name))
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
            return json.loads(self.backend.get(self.repo_key(name, "_meta", "dockyard.json")))
        except (KeyError, ValueError):
            return {}

    def set_meta(self, name: str, meta: dict) -> None:
        self.backend.put(self.repo_key(name, "_meta", "dockyard.json"), json.dumps(meta, sort_keys=True).encode())

    def delete_repository(self, name: str) -> None:
        for part in ("_manifests", "_layers", "_meta", "_uploads"):
            self.backend.delete_tree(self.repo_key(name, part))

    # -- blobs ------------------------------------------------------------------------------------
    def blob_size(self, digest: str) -> int | None:
        return self.backend.size(self.blob_key(digest))

    def repo_blob_size(self, name: str, digest: str) -> int:
        """Size of a blob linked into ``name``; BLOB_UNKNOWN otherwise."""
        if not self.backend.exists(self._layer_link(name, digest)):
            raise RegistryError("BLOB_UNKNOWN", detail=digest)
        size = self.blob_size(digest)
        if size is None:
            raise RegistryError("BLOB_UNKNOWN", detail=digest)
        return size

    def link_blob(self, name: str, digest: str) -> None:
        self.backend.put(self._layer_link(name, digest), digest.encode())

    def unlink_blob(self, name: str, digest: str) -> None:
        if not self.backend.delete(self._layer_link(name, digest)):
            raise RegistryError("BLOB_UNKNOWN", detail=digest)

    def mount_blob(self, name: str, source: str, digest: str) -> bool:
        """Link a blob of ``source`` into ``name``; False if ``source`` does not have it."""
        if not valid_name(source):
            return False
        try:
            self.repo_blob_size(source, digest)
        except RegistryError:
            return False
        self.link_blob(name, digest)
        return True

    def start_upload(self, name: str) -> Upload:
        upload_id = str(uuidlib.uuid4())
        directory = self.upload_dir / upload_id
        directory.mkdir(parents=True)
        (directory / "data").touch()
        (directory / "info.json").write_text(json.dumps({"name": name, "started": time.time()}))
        upload = Upload(upload_id, name, directory, time.time(), {"sha256": hashlib.sha256()}, 0)
        with self._uploads_lock:
            self._uploads[upload_id] = upload
        return upload

    def get_upload(self, name: str, upload_id: str) -> Upload:
        with self._uploads_lock:
            upload = self._uploads.get(upload_id)
        if upload is None:
            # known on disk (e.g. after a restart)?
            directory = self.upload_dir / upload_id
            try:
                if "/" in upload_id or upload_id.startswith("."):
                    raise FileNotFoundError
                info = json.loads((directory / "info.json").read_text())
            except (FileNotFoundError, ValueError, NotADirectoryError):
                raise RegistryError("BLOB_UPLOAD_UNKNOWN", detail={"uuid": upload_id}) from None
            upload = Upload(upload_id, info["name"], directory, info["started"], {}, -1)
            with self._uploads_lock:
                upload = self._uploads.setdefault(upload_id, upload)
        if upload.name != name:
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", detail={"uuid": upload_id})
        return upload

    def cancel_upload(self, upload: Upload) -> None:
        with self._uploads_lock:
            self._uploads.pop(upload.uuid, None)
        shutil.rmtree(upload.directory, ignore_errors=True)

    def finish_upload(self, upload: Upload, digest: str) -> str:
        """Verify the session's content against ``digest`` and make it visible in the repository."""
        _split(digest)
        algorithm = digest.split(":", 1)[0]
        size = upload.size()
        h = upload.hashes.get(algorithm) if upload.offset == size else None
        if h is None:
            h = hasher(digest)
            with open(upload.data, "rb") as f:
                while data := f.read(CHUNK):
                    h.update(data)
        actual = f"{algorithm}:{h.hexdigest()}"
        if actual != digest:
            self.cancel_upload(upload)
            raise RegistryError("DIGEST_INVALID", detail={"expected": digest, "actual": actual})
        if self.blob_size(digest) is None:
            self.backend.put_file(self.blob_key(digest), upload.data)
        self.link_blob(upload.name, digest)
        self.cancel_upload(upload)
        return digest

    def purge_uploads(self, max_age: float = UPLOAD_MAX_AGE) -> int:
        """Remove upload sessions older than ``max_age`` seconds (abandoned pushes)."""
        removed = 0
        now = time.time()
        for directory in list(self.upload_dir.iterdir()) if self.upload_dir.exists() else []:
            try:
                started = json.loads((directory / "info.json").read_text())["started"]
            except (OSError, ValueError, KeyError):
                started = directory.stat().st_mtime
            if now - started > max_age:
                shutil.rmtree(directory, ignore_errors=True)
                with self._uploads_lock:
                    self._uploads.pop(directory.name, None)
                removed += 1
        return removed

    # -- manifests --------------------------------------------------------------------------------
    def resolve_tag(self, name: str, tag: str) -> str:
        try:
            digest = self.backend.get(self._tag_link(name, tag)).decode().strip()
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
            body = self.backend.get(self.blob_key(digest))
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
        """(body, media type, digest) of a manifest of ``name`` by tag or digest."""
        if DIGEST_RE.match(reference):
            digest = reference
        elif TAG_RE.match(reference):
            digest = self.resolve_tag(name, reference)
        else:
            raise RegistryError("MANIFEST_INVALID", f"invalid tag or digest {reference!r}")
        if not self.backend.exists(self._revision_link(name, digest)):
            raise RegistryError("MANIFEST_UNKNOWN", detail={"Digest": digest})
        body, media_type = self._manifest_blob(digest)
        return body, media_type, digest

    def manifest_exists_in(self, name: str, digest: str) -> bool:
        return self.backend.exists(self._revision_link(name, digest))

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
            raise RegistryError("MANIFEST_INVALID", f"mediaType in manifest ({declared}) does not match the "
                                                    f"Content-Type ({header})")
        if media_type in (DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED) or manifest.get("schemaVersion") != 2:
            raise RegistryError("MANIFEST_INVALID", "only schema version 2 manifests (Docker v2 schema 2, OCI) "
                                                    "are accepted")
        missing: list[str] = []
        if media_type in IMAGE_MANIFESTS:
            config = manifest.get("config")
            if not isinstance(config, dict) or "digest" not in config:
                raise RegistryError("MANIFEST_INVALID", "manifest has no config")
            descriptors = [config, *(manifest.get("layers") or [])]
            for descriptor in descriptors:
                digest = descriptor.get("digest", "")
                if not DIGEST_RE.match(str(digest)):
                    raise RegistryError("MANIFEST_INVALID", f"invalid digest {digest!r} in manifest")
                if descriptor.get("mediaType") == DOCKER_FOREIGN_LAYER or descriptor.get("urls"):
                    continue
                if not self.backend.exists(self._layer_link(name, digest)) or self.blob_size(digest) is None:
                    missing.append(digest)
        elif media_type in INDEXES:
            for descriptor in manifest.get("manifests") or []:
                digest = descriptor.get("digest", "")
                if not DIGEST_RE.match(str(digest)):
                    raise RegistryError("MANIFEST_INVALID", f"invalid digest {digest!r} in index")
                if not self.manifest_exists_in(name, digest):
                    missing.append(digest)
        else:
            raise RegistryError("MANIFEST_INVALID", f"unsupported manifest media type {media_type!r}")
        if missing:
            raise RegistryError("MANIFEST_BLOB_UNKNOWN", detail=[{"digest": d} for d in missing])
        if is_digest:
            h = hasher(reference)
            h.update(body)
            digest = f"{reference.split(':')[0]}:{h.hexdigest()}"
            if digest != reference:
                raise RegistryError("DIGEST_INVALID", detail={"expected": reference, "actual": digest})
        else:
            digest = sha256_digest(body)
        if self.blob_size(digest) is None:
            self.backend.put(self.blob_key(digest), body)
        self.backend.put(self._revision_link(name, digest), digest.encode())
        if not is_digest:
            algorithm, hexa = _split(digest)
            self.backend.put(self.repo_key(name, "_manifests", "tags", reference, "index", algorithm, hexa, "link"),
                             digest.encode())
            self.backend.put(self._tag_link(name, reference), digest.encode())
        return digest

    def delete_manifest(self, name: str, reference: str) -> None:
        if not DIGEST_RE.match(reference):
            # deleting a tag (OCI distribution 1.1)
            if not TAG_RE.match(reference):
                raise RegistryError("MANIFEST_INVALID", f"invalid reference {reference!r}")
            self.resolve_tag(name, reference)
            self.backend.delete_tree(self.repo_key(name, "_manifests", "tags", reference))
            return
        if not self.backend.delete(self._revision_link(name, reference)):
            raise RegistryError("MANIFEST_UNKNOWN", detail={"Digest": reference})
        for tag in self.tags(name, must_exist=False):
            try:
                if self.resolve_tag(name, tag) == reference:
                    self.backend.delete_tree(self.repo_key(name, "_manifests", "tags", tag))
            except RegistryError:
                continue

    def tags(self, name: str, must_exist: bool = True) -> list[str]:
        tags = [t for t in self.backend.list(self.repo_key(name, "_manifests", "tags"))
                if self.backend.exists(self._tag_link(name, t))]
        if not tags and must_exist and not self.repo_exists(name):
            raise RegistryError("NAME_UNKNOWN", detail={"name": name})
        return sorted(tags)


__all__ = ["RegistryStore", "Upload", "UploadWriter", "BASE"]
