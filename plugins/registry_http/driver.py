"""The ``http`` distribution driver: pull, push, login and search over the
Docker Registry HTTP API v2 / OCI distribution protocol.

Pull
    resolves the reference (a manifest list or OCI index picks linux/<host
    arch>), fetches and verifies the config, then downloads the layers it is
    not told are present, three at a time.  Each download lands in
    ``<root>/partial/<digest>`` (resumed with a ``Range`` request after an
    interruption), is verified against its digest, then decompressed into
    ``<work dir>`` while its diff ID is computed and checked against the
    config.  Nothing reaches the image store here: the caller adds the layers
    and the image (see ``dockyard.daemon.routes.distribution``).
Mirrors
    images of Docker Hub and of the default index are asked of the ``registry-mirrors`` first
    (anonymously, as URLs: ``http://`` only when the URL says so), each in turn;
    a mirror that fails or lacks the image passes the pull on to the next
    source, the index last (Docker's ``registry-mirrors``).
Push
    a layer the registry has (known from an earlier pull or push, remembered
    per registry in ``<root>/blobsums.db``) is skipped or mounted from another
    repository; the others are gzip-compressed deterministically (same input,
    same digest) and uploaded, five at a time; then the config and a Docker
    v2 schema 2 manifest.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import platform
import shutil
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dockyard import hookimpl
from dockyard.errors import DockyardError, InvalidParameter, NotFound, NotSupportedByDriver, Unauthorized

from .client import RegistryAPIError, RegistryClient, insecure_registries
from dockyard.oci import (DOCKER_CONFIG, DOCKER_LAYER, DOCKER_MANIFEST, INDEXES, OCI_LAYER_ZSTD, hasher,
                     manifest_media_type, sha256_digest)
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
    return {"status": status, "progressDetail": {"current": current, "total": total}, "progress": text,
            "id": layer_id}


def host_platform() -> tuple[str, str, str | None]:
    machine = platform.machine().lower()
    arch, variant = {"x86_64": ("amd64", None), "amd64": ("amd64", None), "aarch64": ("arm64", "v8"),
                     "arm64": ("arm64", "v8"), "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"),
                     "i686": ("386", None), "i386": ("386", None), "ppc64le": ("ppc64le", None),
                     "s390x": ("s390x", None), "riscv64": ("riscv64", None)}.get(machine, (machine, None))
    return "linux", arch, variant


def choose_platform(index: dict, wanted: tuple[str, str, str | None] | None = None) -> dict:
    """The manifest of an index for linux/<arch> (Docker's platform matching, simplified)."""
    os_name, arch, variant = wanted or host_platform()
    candidates = [m for m in index.get("manifests") or []
                  if (m.get("platform") or {}).get("os") == os_name
                  and (m.get("platform") or {}).get("architecture") == arch]
    if variant:
        exact = [m for m in candidates if (m.get("platform") or {}).get("variant") in (variant, None)]
        candidates = exact or candidates
    if not candidates:
        available = ", ".join(sorted({f"{(m.get('platform') or {}).get('os')}/"
                                      f"{(m.get('platform') or {}).get('architecture')}"
                                      for m in index.get("manifests") or []}))
        raise NotFound(f"no matching manifest for {os_name}/{arch} in the manifest list entries "
                       f"(available: {available or 'none'})")
    return candidates[0]


class BlobSums:
    """diff ID <-> compressed digest, per registry and repository (Docker's v2 metadata)."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.lock = threading.Lock()
        with self.lock:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("CREATE TABLE IF NOT EXISTS blobsums (diff_id TEXT, digest TEXT, size INTEGER, "
                            "domain TEXT, repo TEXT, PRIMARY KEY (diff_id, digest, domain, repo))")

    def add(self, diff_id: str, digest: str, size: int, domain: str, repo: str) -> None:
        with self.lock:
            self.db.execute("INSERT OR REPLACE INTO blobsums VALUES (?,?,?,?,?)", (diff_id, digest, size, domain,
                                                                                  repo))

    def lookup(self, diff_id: str, domain: str) -> list[tuple[str, int, str]]:
        """(digest, size, repo) known for a diff ID on a registry."""
        with self.lock:
            return list(self.db.execute("SELECT digest, size, repo FROM blobsums WHERE diff_id=? AND domain=?",
                                        (diff_id, domain)))

    def close(self) -> None:
        self.db.close()


class _Decompressor:
    """Streams a layer blob (gzip or plain tar) into an uncompressed tar, hashing it."""

    def __init__(self, media_type: str, head: bytes) -> None:
        if media_type == OCI_LAYER_ZSTD or head.startswith(b"\x28\xb5\x2f\xfd"):
            try:
                import zstandard
            except ImportError:
                raise NotSupportedByDriver("zstd-compressed layers need the 'zstandard' package") from None
            self._z = zstandard.ZstdDecompressor().decompressobj()
            self.kind = "zstd"
        elif head.startswith(b"\x1f\x8b"):
            self._z = zlib.decompressobj(wbits=31)
            self.kind = "gzip"
        else:
            self._z = None
            self.kind = "tar"

    def feed(self, data: bytes) -> bytes:
        if self._z is None:
            return data
        out = self._z.decompress(data)
        if self.kind == "gzip":
            # concatenated gzip members (pigz, some builders)
            while self._z.eof and self._z.unused_data:
                rest = self._z.unused_data
                self._z = zlib.decompressobj(wbits=31)
                out += self._z.decompress(rest)
        return out

    def flush(self) -> bytes:
        if self._z is None or self.kind == "zstd":
            return b""
        return self._z.flush()


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
        self.max_downloads = int(options.get("max-concurrent-downloads", 3))
        self.max_uploads = int(options.get("max-concurrent-uploads", 5))
        self.compression_level = int(options.get("compression-level", 1))
        self.mirrors = [m.strip().rstrip("/") for m in str(options.get("registry-mirrors") or "").split(",")
                        if m.strip()]
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
                client = RegistryClient(host, {}, insecure=[host] if scheme == "http" else self.insecure,
                                        index=f"{scheme}://{host}")
                try:
                    return client, client.get_manifest(ref.path, ref.reference, scope)
                except DockyardError as exc:
                    log.info("mirror %s cannot serve %s (%s): trying the next source", mirror, ref, exc.message)
                    client.close()
        return self._client(ref.domain, auth), None

    # -- pull -------------------------------------------------------------------------------------
    @hookimpl
    def distribution_pull(self, reference: str, auth: dict, progress: Progress,
                          layer_exists: Callable[[str | None, str], str | None] | None = None,
                          work_dir: str | None = None) -> dict:
        """See :func:`dockyard.hookspecs.distribution_pull`.

        ``layer_exists(parent_chain, diff_id)`` returns the local layer's chain
        ID if present; ``work_dir`` receives the uncompressed tars.
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
                raise Unauthorized(f"pull access denied for {ref.repository}, repository does not exist or may "
                                   f"require 'dockyard login': {exc.message}") from None
            manifest = self._json(body, "manifest")
            media_type = manifest_media_type(manifest, media_type)
            if media_type in INDEXES:
                chosen = choose_platform(manifest)
                body, media_type, _ = client.get_manifest(ref.path, chosen["digest"], scope)
                manifest = self._json(body, "manifest")
                media_type = manifest_media_type(manifest, media_type)
            if manifest.get("schemaVersion") != 2 or "config" not in manifest:
                raise NotSupportedByDriver(f"unsupported manifest type {media_type} for {ref} (schema 1 images are "
                                           "not supported)")
            config_digest = manifest["config"]["digest"]
            config = client.get_blob(ref.path, config_digest, scope)
            config_json = self._json(config, "image config")
            diff_ids = list((config_json.get("rootfs") or {}).get("diff_ids") or [])
            layers = list(manifest.get("layers") or [])
            if len(diff_ids) != len(layers):
                raise InvalidParameter(f"invalid image {ref}: the manifest has {len(layers)} layers, its config "
                                       f"{len(diff_ids)} diff IDs")
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
                        futures[index] = pool.submit(self._download_layer, client, ref, scope, layers[index],
                                                     diff_ids[index], work, progress)
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
                self.blobsums.add(diff_ids[index], layer["digest"], int(layer.get("size", 0)), ref.domain, ref.path)
        return {"config": config, "digest": digest, "layers": results, "repository": ref.repository,
                "tag": ref.tag if not ref.digest else None, "name": str(ref),
                "layer_ids": [short(layer["digest"]) for layer in layers]}

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
            return Unauthorized(f"pull access denied for {ref.repository}, repository does not exist or may "
                                f"require 'dockyard login': {exc.message}")
        if "NAME_UNKNOWN" in exc.codes or exc.http_status == 404:
            return NotFound(f"manifest for {ref} not found: {exc.message}")
        return exc

    def _partial_lock(self, digest: str) -> threading.Lock:
        with self._locks_lock:
            return self._partial_locks.setdefault(digest, threading.Lock())

    def _download_layer(self, client: RegistryClient, ref: Reference, scope: str, layer: dict, diff_id: str,
                        work: Path, progress: Progress) -> Path:
        digest = layer["digest"]
        layer_id = short(digest)
        total = int(layer.get("size") or 0)
        partial = self.partial / digest.replace(":", "-")
        with self._partial_lock(digest):
            self._fetch(client, ref, scope, digest, total, partial, layer_id, progress)
            progress({"status": "Verifying Checksum", "progressDetail": {}, "id": layer_id})
            progress({"status": "Download complete", "progressDetail": {}, "id": layer_id})
            target = work / f"pull-{diff_id.split(':')[-1]}-{os.getpid()}-{threading.get_ident()}.tar"
            try:
                self._decompress(partial, layer.get("mediaType", DOCKER_LAYER), target, diff_id, digest)
            except BaseException:
                target.unlink(missing_ok=True)
                raise
            partial.unlink(missing_ok=True)
        return target

    def _fetch(self, client: RegistryClient, ref: Reference, scope: str, digest: str, total: int, partial: Path,
               layer_id: str, progress: Progress) -> None:
        """Download a blob into ``partial`` (resuming what is there) and verify its digest."""
        h = hasher(digest)
        offset = 0
        if partial.exists():
            with open(partial, "rb") as f:
                while data := f.read(CHUNK):
                    h.update(data)
                    offset += len(data)
            if total and offset > total:
                partial.unlink()
                h, offset = hasher(digest), 0
        expected = f"{digest.split(':')[0]}:"
        if not (total and offset == total):
            response = client.stream_blob(ref.path, digest, scope, offset)
            try:
                if offset and response.status_code != 206:  # the registry ignored the Range: start over
                    h, offset = hasher(digest), 0
                    mode = "wb"
                else:
                    mode = "ab"
                last = 0.0
                with open(partial, mode) as out:
                    for data in response.iter_bytes(CHUNK):
                        out.write(data)
                        h.update(data)
                        offset += len(data)
                        now = time.monotonic()
                        if now - last >= PROGRESS_INTERVAL:
                            last = now
                            progress(progress_message("Downloading", layer_id, offset, total))
            finally:
                response.close()
        if f"{expected}{h.hexdigest()}" != digest:
            partial.unlink(missing_ok=True)
            raise InvalidParameter(f"filesystem layer verification failed for digest {digest}")

    @staticmethod
    def _decompress(source: Path, media_type: str, target: Path, diff_id: str, digest: str) -> None:
        h = hashlib.sha256()
        with open(source, "rb") as f, open(target, "wb") as out:
            head = f.read(8)
            f.seek(0)
            decompressor = _Decompressor(media_type, head)
            try:
                while data := f.read(CHUNK):
                    plain = decompressor.feed(data)
                    h.update(plain)
                    out.write(plain)
                tail = decompressor.flush()
            except zlib.error as exc:
                raise InvalidParameter(f"layer {digest} is not a valid gzip stream: {exc}") from None
            h.update(tail)
            out.write(tail)
        if "sha256:" + h.hexdigest() != diff_id:
            raise InvalidParameter(f"layer {digest} does not match the diff ID in the image config "
                                   f"(expected {diff_id}, got sha256:{h.hexdigest()})")

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
            progress({"status": f"The push refers to repository [{ref.domain}/{ref.path}]"
                      if not (ref.is_default_index and ref.domain == "docker.io")
                      else f"The push refers to repository [docker.io/{ref.path}]"})
            # mounts need pull on the source repositories: ask for them in the same token
            sources = sorted({repo for diff_id, _ in layers for _, _, repo in self.blobsums.lookup(diff_id, ref.domain)
                              if repo != ref.path})
            full_scope = " ".join([scope, *(f"repository:{s}:pull" for s in sources[:10])])
            client.ping()
            order = list(reversed(layers))  # Docker lists the top layer first
            for diff_id, _ in order:
                progress({"status": "Preparing", "progressDetail": {}, "id": short(diff_id)})
            for diff_id, _ in order[self.max_uploads:]:
                progress({"status": "Waiting", "progressDetail": {}, "id": short(diff_id)})
            descriptors: dict[str, dict] = {}
            with ThreadPoolExecutor(max_workers=self.max_uploads, thread_name_prefix="push") as pool:
                futures = {diff_id: pool.submit(self._push_layer, client, ref, full_scope, diff_id, Path(path),
                                                work, progress)
                           for diff_id, path in order}
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
            manifest = {
                "schemaVersion": 2,
                "mediaType": DOCKER_MANIFEST,
                "config": {"mediaType": DOCKER_CONFIG, "size": len(config), "digest": config_digest},
                "layers": [descriptors[diff_id] for diff_id, _ in layers],
            }
            body = json.dumps(manifest, indent=3).encode()
            digest = sha256_digest(body)
            answered = client.put_manifest(ref.path, tag, body, DOCKER_MANIFEST, full_scope)
            if answered and answered != digest:
                log.warning("the registry reports manifest digest %s, we computed %s", answered, digest)
        progress({"status": f"{tag}: digest: {digest} size: {len(body)}"})
        progress({"progressDetail": {}, "aux": {"Tag": tag, "Digest": digest, "Size": len(body)}})
        return {"Digest": digest, "Size": len(body), "Tag": tag}

    def _push_layer(self, client: RegistryClient, ref: Reference, scope: str, diff_id: str, tar: Path,
                    work: Path, progress: Progress) -> dict:
        layer_id = short(diff_id)
        known = self.blobsums.lookup(diff_id, ref.domain)
        seen: set[str] = set()
        for digest, _size, _repo in known:  # already in this repository?
            if digest in seen:
                continue
            seen.add(digest)
            found = client.blob_exists(ref.path, digest, scope)
            if found is not None:
                self.blobsums.add(diff_id, digest, found, ref.domain, ref.path)
                progress({"status": "Layer already exists", "progressDetail": {}, "id": layer_id})
                return {"mediaType": DOCKER_LAYER, "size": found, "digest": digest}
        for digest, size, repo in known:  # in another repository of the same registry: mount
            if repo != ref.path and client.mount_blob(ref.path, digest, repo, scope):
                self.blobsums.add(diff_id, digest, size, ref.domain, ref.path)
                progress({"status": f"Mounted from {repo}", "progressDetail": {}, "id": layer_id})
                return {"mediaType": DOCKER_LAYER, "size": size, "digest": digest}
        compressed = work / f"push-{diff_id.split(':')[-1]}-{os.getpid()}-{threading.get_ident()}.gz"
        try:
            digest, size = self._compress(tar, compressed)
            if client.blob_exists(ref.path, digest, scope) is not None:
                self.blobsums.add(diff_id, digest, size, ref.domain, ref.path)
                progress({"status": "Layer already exists", "progressDetail": {}, "id": layer_id})
                return {"mediaType": DOCKER_LAYER, "size": size, "digest": digest}

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
        self.blobsums.add(diff_id, digest, size, ref.domain, ref.path)
        progress({"status": "Pushed", "progressDetail": {}, "id": layer_id})
        return {"mediaType": DOCKER_LAYER, "size": size, "digest": digest}

    def _compress(self, tar: Path, target: Path) -> tuple[str, int]:
        """Deterministic gzip (no name, mtime 0): the same layer always gets the same digest."""
        h = hashlib.sha256()

        class _Out:
            def __init__(self, f) -> None:
                self.f = f
                self.size = 0

            def write(self, data) -> int:
                h.update(data)
                self.size += len(data)
                return self.f.write(data)

            def flush(self) -> None:
                self.f.flush()

        with open(tar, "rb") as src, open(target, "wb") as raw:
            out = _Out(raw)
            with gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=self.compression_level,
                               mtime=0) as gz:
                shutil.copyfileobj(src, gz, CHUNK)
        return "sha256:" + h.hexdigest(), out.size

    # -- login and search -------------------------------------------------------------------------
    @hookimpl
    def distribution_login(self, server: str, username: str, password: str, email: str = "") -> dict:
        """See :func:`dockyard.hookspecs.distribution_login`: an unknown name is registered where the
        registry does that (``accounts = open`` on ``dockyard registry serve``), then logged in."""
        domain = (server or "").removeprefix("https://").removeprefix("http://").split("/")[0]
        if not domain or domain in ("index.docker.io", "registry-1.docker.io"):
            from dockyard.reference import default_index

            domain = default_index(self.index)[0] if not domain else "docker.io"
        with RegistryClient(domain, {"username": username, "password": password, "serveraddress": domain},
                            insecure=self.insecure, index=self.index) as client:
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
            results.append({"description": item.get("description", ""),
                            "is_official": bool(item.get("is_official", False)),
                            "is_automated": bool(item.get("is_automated", False)),
                            "name": item.get("name", ""),
                            "star_count": int(item.get("star_count", 0))})
        return results[:limit] if limit else results
