"""The ``http`` distribution driver: pull, push, login and search over the
Docker Registry HTTP API v2 / OCI distribution protocol.

Pull
    resolves the reference (a manifest list or OCI index picks linux/<host
    arch>), fetches and verifies the config, then downloads the layers it is
    not told are present, ``max-concurrent-downloads`` (3) at a time.  Each
    download lands in ``<root>/partial/<digest>`` (resumed with a ``Range``
    request after an interruption) while it is decompressed (gzip as it arrives,
    zstd after) into ``<work dir>``; the blob's digest and the tar's diff ID are
    computed beside it in threads and checked.  Each verified layer is handed to
    the caller (``layer_ready``), which applies it while the others download
    (see ``dockyard.transfer``).
Mirrors
    images of Docker Hub and of the default index are asked of the ``registry-mirrors`` first
    (anonymously, as URLs: ``http://`` only when the URL says so), each in turn;
    a mirror that fails or lacks the image passes the pull on to the next
    source, the index last (Docker's ``registry-mirrors``).
Push
    a layer the registry has (known from an earlier pull or push, remembered
    per registry in ``<root>/blobsums.db``) is skipped or mounted from another
    repository; the others are compressed deterministically (same input, same
    digest: gzip with ISA-L on several threads, or zstd with ``compression=zstd``)
    and uploaded, ``max-concurrent-uploads`` (5) at a time; then the config and a
    Docker v2 schema 2 manifest (an OCI manifest for zstd layers).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dockyard import hookimpl
from dockyard.compression import (
    GZIP,
    ZSTD,
    CodecError,
    Decompressor,
    decompressing_reader,
    gzip_writer,
    sniff,
    zstd_writer,
)
from dockyard.pipeline import ThreadedHash
from dockyard.errors import DockyardError, InvalidParameter, NotFound, NotSupportedByDriver, Unauthorized

from .client import RegistryAPIError, RegistryClient, insecure_registries
from dockyard.oci import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_MANIFEST,
    INDEXES,
    OCI_CONFIG,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
    manifest_media_type,
    sha256_digest,
)
from dockyard.reference import DOCKER_HUB, Reference, parse, split_search_term

log = logging.getLogger(__name__)

CHUNK = 1 << 20
PROGRESS_INTERVAL = 0.1
Progress = Callable[[dict], None]


def short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.3g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1000
    return f"{n}B"


def progress_message(status: str, layer_id: str, current: int, total: int) -> dict:
    """A Docker JSON progress message with its text bar."""
    width = 50
    if total > 0:
        filled = min(width, int(width * current / total))
        bar = "[" + "=" * max(filled - 1, 0) + (">" if filled else "") + " " * (width - filled) + "]"
        text = f"{bar} {_human(current):>8}/{_human(total)}"
    else:
        text = f"{_human(current):>8}"
    return {"status": status, "progressDetail": {"current": current, "total": total}, "progress": text, "id": layer_id}


def host_platform() -> tuple[str, str, str | None]:
    machine = platform.machine().lower()
    arch, variant = {
        "x86_64": ("amd64", None),
        "amd64": ("amd64", None),
        "aarch64": ("arm64", "v8"),
        "arm64": ("arm64", "v8"),
        "armv7l": ("arm", "v7"),
        "armv6l": ("arm", "v6"),
        "i686": ("386", None),
        "i386": ("386", None),
        "ppc64le": ("ppc64le", None),
        "s390x": ("s390x", None),
        "riscv64": ("riscv64", None),
    }.get(machine, (machine, None))
    return "linux", arch, variant


def choose_platform(index: dict, wanted: tuple[str, str, str | None] | None = None) -> dict:
    """The manifest of an index for linux/<arch> (Docker's platform matching, simplified)."""
    os_name, arch, variant = wanted or host_platform()
    candidates = [
        m
        for m in index.get("manifests") or []
        if (m.get("platform") or {}).get("os") == os_name and (m.get("platform") or {}).get("architecture") == arch
    ]
    if variant:
        exact = [m for m in candidates if (m.get("platform") or {}).get("variant") in (variant, None)]
        candidates = exact or candidates
    if not candidates:
        available = ", ".join(
            sorted(
                {
                    f"{(m.get('platform') or {}).get('os')}/{(m.get('platform') or {}).get('architecture')}"
                    for m in index.get("manifests") or []
                }
            )
        )
        raise NotFound(
            f"no matching manifest for {os_name}/{arch} in the manifest list entries (available: {available or 'none'})"
        )
    return candidates[0]


class BlobSums:
    """diff ID <-> compressed digest (and its media type), per registry and repository
    (Docker's v2 metadata)."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.lock = threading.Lock()
        with self.lock:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS blobsums (diff_id TEXT, digest TEXT, size INTEGER, "
                "domain TEXT, repo TEXT, PRIMARY KEY (diff_id, digest, domain, repo))"
            )
            columns = [row[1] for row in self.db.execute("PRAGMA table_info(blobsums)")]
            if "media_type" not in columns:  # rows of earlier versions are gzip layers
                self.db.execute(f"ALTER TABLE blobsums ADD COLUMN media_type TEXT NOT NULL DEFAULT '{DOCKER_LAYER}'")

    def add(self, diff_id: str, digest: str, size: int, domain: str, repo: str, media_type: str = DOCKER_LAYER) -> None:
        with self.lock:
            self.db.execute(
                "INSERT OR REPLACE INTO blobsums (diff_id, digest, size, domain, repo, media_type) "
                "VALUES (?,?,?,?,?,?)",
                (diff_id, digest, size, domain, repo, media_type),
            )

    def lookup(self, diff_id: str, domain: str, compression: str | None = None) -> list[tuple[str, int, str]]:
        """(digest, size, repo) known for a diff ID on a registry (only zstd blobs, or only others, when
        ``compression`` is given)."""
        with self.lock:
            rows = list(
                self.db.execute(
                    "SELECT digest, size, repo, media_type FROM blobsums WHERE diff_id=? AND domain=?",
                    (diff_id, domain),
                )
            )
        if compression is not None:
            rows = [r for r in rows if (r[3] == OCI_LAYER_ZSTD) == (compression == ZSTD)]
        return [(digest, size, repo) for digest, size, repo, _ in rows]

    def close(self) -> None:
        self.db.close()


class _Restart(Exception):
    """The registry answered a resumed download from the start."""


class _Inflater:
    """Decompresses a gzip (or plain) layer blob as its bytes arrive, hashing and writing the tar."""

    def __init__(self, out, plain_hash: ThreadedHash, digest: str) -> None:
        self.out, self.hash, self.digest = out, plain_hash, digest
        self.head = b""
        self.z: Decompressor | None = None
        self.plain = False
        self.error: str | None = None

    def __call__(self, data: bytes) -> None:
        if self.error is not None:
            return  # reported by finish(), after the blob's digest was checked (a tampered blob says so)
        if self.z is None and not self.plain:
            self.head += data
            if len(self.head) < 2:
                return
            data, self.head = self.head, b""
            if sniff(data) == GZIP:
                self.z = Decompressor(GZIP)
            elif sniff(data):
                self.error = f"is {sniff(data)}-compressed, its media type says gzip"
                return
            else:
                self.plain = True
        try:
            chunk = self.z.feed(data) if self.z is not None else data
            while chunk:
                self.hash.update(chunk)
                self.out.write(chunk)
                chunk = self.z.more() if self.z is not None else b""
        except CodecError as exc:
            self.error = f"is not a valid gzip stream: {exc}"

    def restart(self) -> None:
        raise InvalidParameter(f"the registry restarted the download of {self.digest}: pull again")

    def finish(self) -> None:
        if self.head:  # a blob of one byte
            self.plain = True
            self(b"")
        if self.error is None and self.z is not None:
            try:
                self.z.finish()
            except CodecError as exc:
                self.error = f"is not a valid gzip stream: {exc}"
        if self.error is not None:
            raise InvalidParameter(f"layer {self.digest} {self.error}")


def _positive(options: dict, key: str, default: int) -> int:
    try:
        value = int(options.get(key, default))
    except (TypeError, ValueError):
        value = 0
    if value < 1:
        raise InvalidParameter(f"{key} must be a positive integer, not {options.get(key)!r}")
    return value


class HttpDistributionDriver:
    name = "http"

    def __init__(self, root: Path, options: dict) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise
        self.partial = self.root / "partial"
        self.partial.mkdir(exist_ok=True)
        self.options = options
        self.index = options.get("index-url") or options.get("index_url")
        self.insecure = insecure_registries(options.get("insecure-registries") or options.get("insecure_registries"))
        self.max_downloads = _positive(options, "max-concurrent-downloads", 3)
        self.max_uploads = _positive(options, "max-concurrent-uploads", 5)
        level = str(options.get("compression-level", 1))
        if not level.isdigit() or int(level) > 9:
            raise InvalidParameter(f"compression-level must be 0-9 (zlib's scale), not {level!r}")
        self.compression_level = int(level)
        self.compression = str(options.get("compression") or GZIP)
        if self.compression not in (GZIP, ZSTD):
            raise InvalidParameter(f"unsupported push compression {self.compression!r} (gzip or zstd)")
        self.mirrors = [
            m.strip().rstrip("/") for m in str(options.get("registry-mirrors") or "").split(",") if m.strip()
        ]
        for mirror in self.mirrors:
            if not mirror.startswith(("http://", "https://")):
                raise InvalidParameter(f"invalid registry mirror {mirror!r}: give an http:// or https:// URL")
        self.blobsums = BlobSums(self.root / "blobsums.db")
        self._partial_locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    @classmethod
    def check_supported(cls) -> None:
        return None

    def _client(self, domain: str, auth: dict | None) -> RegistryClient:
        # credentials for another registry than this one are not sent
        auth = dict(auth or {})
        server = (auth.get("serveraddress") or "").removeprefix("https://").removeprefix("http://").split("/")[0]
        if server and server != domain and not (server.endswith("docker.io") and domain == "docker.io"):
            auth = {}
        return RegistryClient(domain, auth, insecure=self.insecure, index=self.index)

    def _source(self, ref: Reference, auth: dict | None, scope: str) -> tuple[RegistryClient, tuple | None]:
        """Where to pull ``ref`` from: the first mirror that has its manifest (with that manifest), else the
        registry itself (manifest not fetched yet)."""
        if ref.is_default_index or ref.domain == DOCKER_HUB:
            for mirror in self.mirrors:
                scheme, _, host = mirror.partition("://")
                client = RegistryClient(
                    host, {}, insecure=[host] if scheme == "http" else self.insecure, index=f"{scheme}://{host}"
                )
                try:
                    return client, client.get_manifest(ref.path, ref.reference, scope)
                except DockyardError as exc:
                    log.info("mirror %s cannot serve %s (%s): trying the next source", mirror, ref, exc.message)
                    client.close()
        return self._client(ref.domain, auth), None

    # -- pull -------------------------------------------------------------------------------------
    @hookimpl
    def distribution_pull(
        self,
        reference: str,
        auth: dict,
        progress: Progress,
        layer_exists: Callable[[str | None, str], str | None] | None = None,
        work_dir: str | None = None,
        layer_ready: Callable | None = None,
    ) -> dict:
        """See :func:`dockyard.hookspecs.distribution_pull`.

        ``layer_exists(parent_chain, diff_id)`` returns the local layer's chain
        ID if present; ``work_dir`` receives the uncompressed tars, each handed to
        ``layer_ready`` as soon as it is complete.
        """
        ref = parse(reference, index=self.index)
        scope = f"repository:{ref.path}:pull"
        work = Path(work_dir) if work_dir else self.root / "tmp"
        work.mkdir(parents=True, exist_ok=True)
        client, mirrored = self._source(ref, auth, scope)
        with client:
            try:
                body, media_type, digest = mirrored or client.get_manifest(ref.path, ref.reference, scope)
            except NotFound:
                raise NotFound(f"manifest for {ref} not found: manifest unknown: manifest unknown") from None
            except RegistryAPIError as exc:
                raise self._pull_error(ref, exc) from None
            except Unauthorized as exc:
                raise Unauthorized(
                    f"pull access denied for {ref.repository}, repository does not exist or may "
                    f"require 'dockyard login': {exc.message}"
                ) from None
            manifest = self._json(body, "manifest")
            media_type = manifest_media_type(manifest, media_type)
            if media_type in INDEXES:
                chosen = choose_platform(manifest)
                body, media_type, _ = client.get_manifest(ref.path, chosen["digest"], scope)
                manifest = self._json(body, "manifest")
                media_type = manifest_media_type(manifest, media_type)
            if manifest.get("schemaVersion") != 2 or "config" not in manifest:
                raise NotSupportedByDriver(
                    f"unsupported manifest type {media_type} for {ref} (schema 1 images are not supported)"
                )
            config_digest = manifest["config"]["digest"]
            config = client.get_blob(ref.path, config_digest, scope)
            config_json = self._json(config, "image config")
            diff_ids = list((config_json.get("rootfs") or {}).get("diff_ids") or [])
            layers = list(manifest.get("layers") or [])
            if len(diff_ids) != len(layers):
                raise InvalidParameter(
                    f"invalid image {ref}: the manifest has {len(layers)} layers, its config {len(diff_ids)} diff IDs"
                )
            progress({"status": f"Pulling from {ref.remote_name}", "id": ref.tag or ref.digest or "latest"})
            # which layers are already here (a chain: a layer counts only on top of the same parents)
            present: list[bool] = []
            parent: str | None = None
            missing_from = len(layers)
            for index, diff_id in enumerate(diff_ids):
                chain = layer_exists(parent, diff_id) if layer_exists else None
                if chain is None:
                    missing_from = index
                    break
                parent = chain
                present.append(True)
            present += [False] * (len(layers) - len(present))
            for index, layer in enumerate(layers):
                status = "Already exists" if present[index] else "Pulling fs layer"
                progress({"status": status, "progressDetail": {}, "id": short(layer["digest"])})
            results: list[tuple[str, str | None]] = [(d, None) for d in diff_ids]
            produced: list[Path] = []
            try:
                with ThreadPoolExecutor(max_workers=self.max_downloads, thread_name_prefix="pull") as pool:
                    futures = {}
                    for index in range(missing_from, len(layers)):
                        if index >= missing_from + self.max_downloads:
                            progress({"status": "Waiting", "progressDetail": {}, "id": short(layers[index]["digest"])})
                        futures[index] = pool.submit(
                            self._download_layer,
                            client,
                            ref,
                            scope,
                            layers[index],
                            diff_ids[index],
                            work,
                            progress,
                            index,
                            diff_ids,
                            layer_ready,
                        )
                    errors = []
                    for index, future in futures.items():
                        try:
                            path = future.result()
                            produced.append(path)
                            results[index] = (diff_ids[index], str(path))
                        except BaseException as exc:  # noqa: BLE001 - reported below, first one wins
                            errors.append(exc)
                    if errors:
                        raise errors[0]
            except BaseException:
                for path in produced:
                    path.unlink(missing_ok=True)
                raise
            for index, layer in enumerate(layers):
                self.blobsums.add(
                    diff_ids[index],
                    layer["digest"],
                    int(layer.get("size", 0)),
                    ref.domain,
                    ref.path,
                    layer.get("mediaType") or DOCKER_LAYER,
                )
        return {
            "config": config,
            "digest": digest,
            "layers": results,
            "repository": ref.repository,
            "tag": ref.tag if not ref.digest else None,
            "name": str(ref),
            "layer_ids": [short(layer["digest"]) for layer in layers],
        }

    @staticmethod
    def _json(body: bytes, what: str) -> dict:
        try:
            value = json.loads(body)
            if not isinstance(value, dict):
                raise ValueError("not an object")
            return value
        except ValueError as exc:
            raise InvalidParameter(f"invalid {what}: {exc}") from None

    @staticmethod
    def _pull_error(ref: Reference, exc: RegistryAPIError) -> DockyardError:
        if exc.http_status in (401, 403) or "DENIED" in exc.codes or "UNAUTHORIZED" in exc.codes:
            return Unauthorized(
                f"pull access denied for {ref.repository}, repository does not exist or may "
                f"require 'dockyard login': {exc.message}"
            )
        if "NAME_UNKNOWN" in exc.codes or exc.http_status == 404:
            return NotFound(f"manifest for {ref} not found: {exc.message}")
        return exc

    def _partial_lock(self, digest: str) -> threading.Lock:
        with self._locks_lock:
            return self._partial_locks.setdefault(digest, threading.Lock())

    def _download_layer(
        self,
        client: RegistryClient,
        ref: Reference,
        scope: str,
        layer: dict,
        diff_id: str,
        work: Path,
        progress: Progress,
        index: int = 0,
        diff_ids: list[str] | None = None,
        layer_ready: Callable | None = None,
    ) -> Path:
        digest = layer["digest"]
        layer_id = short(digest)
        total = int(layer.get("size") or 0)
        partial = self.partial / digest.replace(":", "-")
        media_type = layer.get("mediaType", DOCKER_LAYER)
        with self._partial_lock(digest):
            target = work / f"pull-{diff_id.split(':')[-1]}-{os.getpid()}-{threading.get_ident()}.tar"
            try:
                with open(target, "wb") as out, ThreadedHash() as plain_hash:
                    # gzip and plain layers are decompressed as they arrive; zstd from the file after
                    sink = None if media_type == OCI_LAYER_ZSTD else _Inflater(out, plain_hash, digest)
                    self._fetch(client, ref, scope, digest, total, partial, layer_id, progress, sink)
                    progress({"status": "Verifying Checksum", "progressDetail": {}, "id": layer_id})
                    if sink is None:
                        self._decompress(partial, out, plain_hash, digest)
                    else:
                        sink.finish()
                    got = "sha256:" + plain_hash.hexdigest()
                if got != diff_id:
                    raise InvalidParameter(
                        f"layer {digest} does not match the diff ID in the image config (expected {diff_id}, got {got})"
                    )
                progress({"status": "Download complete", "progressDetail": {}, "id": layer_id})
            except BaseException:
                target.unlink(missing_ok=True)
                raise
            partial.unlink(missing_ok=True)
        if layer_ready is not None:
            layer_ready(index, list(diff_ids or []), str(target), layer_id)
        return target

    def _fetch(
        self,
        client: RegistryClient,
        ref: Reference,
        scope: str,
        digest: str,
        total: int,
        partial: Path,
        layer_id: str,
        progress: Progress,
        sink: Callable[[bytes], None] | None = None,
    ) -> None:
        """Download a blob into ``partial`` (resuming what is there) and verify its digest; ``sink``
        sees every byte of the blob in order (what was there first)."""
        algorithm = digest.split(":")[0]
        h = ThreadedHash(algorithm if algorithm in ("sha256", "sha512") else "sha256")
        try:
            offset = 0
            if partial.exists() and total and partial.stat().st_size > total:
                partial.unlink()  # not this blob's beginning: start over
            if partial.exists():
                with open(partial, "rb") as f:
                    while data := f.read(CHUNK):
                        h.update(data)
                        if sink is not None:
                            sink(data)
                        offset += len(data)
            if not (total and offset == total):
                response = client.stream_blob(ref.path, digest, scope, offset)
                try:
                    if offset and response.status_code != 206:  # the registry ignored the Range: start over
                        partial.unlink(missing_ok=True)
                        raise _Restart()
                    last = 0.0
                    with open(partial, "ab") as out:
                        for data in response.iter_bytes(CHUNK):
                            out.write(data)
                            h.update(data)
                            if sink is not None:
                                sink(data)
                            offset += len(data)
                            now = time.monotonic()
                            if now - last >= PROGRESS_INTERVAL:
                                last = now
                                progress(progress_message("Downloading", layer_id, offset, total))
                finally:
                    response.close()
            got = f"{algorithm}:{h.hexdigest()}"
        except _Restart:
            h.close()
            if sink is not None:
                sink.restart()
            return self._fetch(client, ref, scope, digest, total, partial, layer_id, progress, sink)
        except InvalidParameter:
            partial.unlink(missing_ok=True)
            raise
        finally:
            h.close()
        if got != digest:
            partial.unlink(missing_ok=True)
            raise InvalidParameter(f"filesystem layer verification failed for digest {digest}")

    @staticmethod
    def _decompress(source: Path, out, plain_hash: ThreadedHash, digest: str) -> None:
        with open(source, "rb") as f:
            try:
                read = decompressing_reader(f.read)
                while data := read(CHUNK):
                    plain_hash.update(data)
                    out.write(data)
            except CodecError as exc:
                raise InvalidParameter(f"layer {digest}: {exc}") from None

    # -- push -------------------------------------------------------------------------------------
    @hookimpl
    def distribution_push(self, reference: str, image: dict, auth: dict, progress: Progress) -> dict:
        """``image``: ``{"config": bytes, "layers": [(diff_id, path of the uncompressed tar)]}``."""
        ref = parse(reference, index=self.index)
        if ref.digest:
            raise InvalidParameter("cannot push a digest reference")
        tag = ref.tag or "latest"
        config: bytes = image["config"]
        layers: list[tuple[str, str]] = list(image["layers"])
        work = Path(image.get("work_dir") or self.root / "tmp")
        work.mkdir(parents=True, exist_ok=True)
        scope = f"repository:{ref.path}:pull,push"
        with self._client(ref.domain, auth) as client:
            progress(
                {
                    "status": f"The push refers to repository [{ref.domain}/{ref.path}]"
                    if not (ref.is_default_index and ref.domain == "docker.io")
                    else f"The push refers to repository [docker.io/{ref.path}]"
                }
            )
            # mounts need pull on the source repositories: ask for them in the same token
            sources = sorted(
                {
                    repo
                    for diff_id, _ in layers
                    for _, _, repo in self.blobsums.lookup(diff_id, ref.domain)
                    if repo != ref.path
                }
            )
            full_scope = " ".join([scope, *(f"repository:{s}:pull" for s in sources[:10])])
            client.ping()
            order = list(reversed(layers))  # Docker lists the top layer first
            for diff_id, _ in order:
                progress({"status": "Preparing", "progressDetail": {}, "id": short(diff_id)})
            for diff_id, _ in order[self.max_uploads :]:
                progress({"status": "Waiting", "progressDetail": {}, "id": short(diff_id)})
            descriptors: dict[str, dict] = {}
            with ThreadPoolExecutor(max_workers=self.max_uploads, thread_name_prefix="push") as pool:
                futures = {
                    diff_id: pool.submit(self._push_layer, client, ref, full_scope, diff_id, Path(path), work, progress)
                    for diff_id, path in order
                }
                errors = []
                for diff_id, future in futures.items():
                    try:
                        descriptors[diff_id] = future.result()
                    except BaseException as exc:  # noqa: BLE001
                        errors.append(exc)
                if errors:
                    raise errors[0]
            config_digest = sha256_digest(config)
            if client.blob_exists(ref.path, config_digest, full_scope) is None:
                client.upload_blob(ref.path, config_digest, len(config), config, full_scope)
            # zstd layers have no Docker media type: their image is an OCI manifest
            manifest_type, config_type = (
                (OCI_MANIFEST, OCI_CONFIG) if self.compression == ZSTD else (DOCKER_MANIFEST, DOCKER_CONFIG)
            )
            manifest = {
                "schemaVersion": 2,
                "mediaType": manifest_type,
                "config": {"mediaType": config_type, "size": len(config), "digest": config_digest},
                "layers": [descriptors[diff_id] for diff_id, _ in layers],
            }
            body = json.dumps(manifest, indent=3).encode()
            digest = sha256_digest(body)
            answered = client.put_manifest(ref.path, tag, body, manifest_type, full_scope)
            if answered and answered != digest:
                log.warning("the registry reports manifest digest %s, we computed %s", answered, digest)
        progress({"status": f"{tag}: digest: {digest} size: {len(body)}"})
        progress({"progressDetail": {}, "aux": {"Tag": tag, "Digest": digest, "Size": len(body)}})
        return {"Digest": digest, "Size": len(body), "Tag": tag}

    def _push_layer(
        self,
        client: RegistryClient,
        ref: Reference,
        scope: str,
        diff_id: str,
        tar: Path,
        work: Path,
        progress: Progress,
    ) -> dict:
        layer_id = short(diff_id)
        media = OCI_LAYER_ZSTD if self.compression == ZSTD else DOCKER_LAYER
        known = self.blobsums.lookup(diff_id, ref.domain, self.compression)
        seen: set[str] = set()
        for digest, _size, _repo in known:  # already in this repository?
            if digest in seen:
                continue
            seen.add(digest)
            found = client.blob_exists(ref.path, digest, scope)
            if found is not None:
                self.blobsums.add(diff_id, digest, found, ref.domain, ref.path, media)
                progress({"status": "Layer already exists", "progressDetail": {}, "id": layer_id})
                return {"mediaType": media, "size": found, "digest": digest}
        for digest, size, repo in known:  # in another repository of the same registry: mount
            if repo != ref.path and client.mount_blob(ref.path, digest, repo, scope):
                self.blobsums.add(diff_id, digest, size, ref.domain, ref.path, media)
                progress({"status": f"Mounted from {repo}", "progressDetail": {}, "id": layer_id})
                return {"mediaType": media, "size": size, "digest": digest}
        compressed = work / f"push-{diff_id.split(':')[-1]}-{os.getpid()}-{threading.get_ident()}.gz"
        try:
            digest, size = self._compress(tar, compressed)
            if client.blob_exists(ref.path, digest, scope) is not None:
                self.blobsums.add(diff_id, digest, size, ref.domain, ref.path, media)
                progress({"status": "Layer already exists", "progressDetail": {}, "id": layer_id})
                return {"mediaType": media, "size": size, "digest": digest}

            def body() -> Iterator[bytes]:
                sent, last = 0, 0.0
                with open(compressed, "rb") as f:
                    while data := f.read(CHUNK):
                        sent += len(data)
                        now = time.monotonic()
                        if now - last >= PROGRESS_INTERVAL:
                            last = now
                            progress(progress_message("Pushing", layer_id, sent, size))
                        yield data
                progress(progress_message("Pushing", layer_id, sent, size))

            client.upload_blob(ref.path, digest, size, body, scope)
        finally:
            compressed.unlink(missing_ok=True)
        self.blobsums.add(diff_id, digest, size, ref.domain, ref.path, media)
        progress({"status": "Pushed", "progressDetail": {}, "id": layer_id})
        return {"mediaType": media, "size": size, "digest": digest}

    def _compress(self, tar: Path, target: Path) -> tuple[str, int]:
        """Deterministic gzip (ISA-L, several threads, no name, mtime 0) or zstd: the same layer
        always gets the same digest."""

        class _Out:
            """Counts and hashes (in a thread) what the compressor writes."""

            def __init__(self, f, digest: ThreadedHash) -> None:
                self.f, self.digest, self.size = f, digest, 0

            def write(self, data) -> int:
                data = bytes(data)
                self.digest.update(data)
                self.size += len(data)
                return self.f.write(data)

            def flush(self) -> None:
                self.f.flush()

        with open(tar, "rb") as src, open(target, "wb") as raw, ThreadedHash() as digest:
            out = _Out(raw, digest)
            if self.compression == ZSTD:
                writer = zstd_writer(out, level=3)
            else:
                writer = gzip_writer(out, level=self.compression_level)
            with writer:
                while data := src.read(CHUNK):  # whole blocks: the output depends on the content only
                    writer.write(data)
            return "sha256:" + digest.hexdigest(), out.size

    # -- login and search -------------------------------------------------------------------------
    @hookimpl
    def distribution_login(self, server: str, username: str, password: str, email: str = "") -> dict:
        """See :func:`dockyard.hookspecs.distribution_login`: an unknown name is registered where the
        registry does that (``accounts = open`` on ``dockyard registry serve``), then logged in."""
        domain = (server or "").removeprefix("https://").removeprefix("http://").split("/")[0]
        if not domain or domain in ("index.docker.io", "registry-1.docker.io"):
            from dockyard.reference import default_index

            domain = default_index(self.index)[0] if not domain else "docker.io"
        with RegistryClient(
            domain,
            {"username": username, "password": password, "serveraddress": domain},
            insecure=self.insecure,
            index=self.index,
        ) as client:
            try:
                client.login()
            except Unauthorized:
                created = client.register(username, password, email) if username and password else None
                if created is None:
                    raise
                client.login()
                return {"Status": f"{created}\nLogin Succeeded", "IdentityToken": ""}
            if email:  # an account not activated yet gets its link (again), at this address
                sent = client.register(username, password, email)
                if sent:
                    return {"Status": f"{sent}\nLogin Succeeded", "IdentityToken": ""}
        return {"Status": "Login Succeeded", "IdentityToken": ""}

    @hookimpl
    def distribution_search(self, term: str, limit: int, auth: dict) -> list[dict]:
        domain, query = split_search_term(term, self.index)
        with self._client(domain, auth) as client:
            answer = client.search(query, limit or 25)
        results = []
        for item in answer.get("results") or []:
            results.append(
                {
                    "description": item.get("description", ""),
                    "is_official": bool(item.get("is_official", False)),
                    "is_automated": bool(item.get("is_automated", False)),
                    "name": item.get("name", ""),
                    "star_count": int(item.get("star_count", 0)),
                }
            )
        return results[:limit] if limit else results
