"""The pull-through cache (``[proxy] remoteurl``), as docker-registry's proxy mode.

Manifests by tag are asked of the upstream registry each time (so a moved tag
is seen at once) and served from storage when the upstream cannot be reached;
manifests by digest and blobs are served from storage when present, else
fetched, verified against their digest, stored and served.  A blob is streamed
to the client while it is written to an upload session; the session becomes
the blob only if the digest matches (a client verifies what it receives
itself).  Pushes are refused by the server (see ``app.py``).

The upstream is reached with :class:`.upstream.Upstream` (Docker's token and
basic authentication, TLS verified as the daemon verifies registries); the
credentials are the ``[proxy]`` ``username`` and ``password``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator

from dockyard.oci import DIGEST_RE, TAG_RE, hasher, manifest_media_type
from .config import ProxySettings
from .errors import RegistryError
from .store import RegistryStore
from .upstream import Upstream, UpstreamError, UpstreamNotFound, UpstreamUnavailable

log = logging.getLogger("dockyard.registry.proxy")


class PullThrough:
    def __init__(self, settings: ProxySettings, store: RegistryStore) -> None:
        self.settings = settings
        self.store = store
        self.client = Upstream(settings.remoteurl, settings.username, settings.password)
        self.host = self.client.host
        self._inflight: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.client.close()

    # -- manifests --------------------------------------------------------------------------------
    def manifest(self, name: str, reference: str) -> tuple[bytes, str, str]:
        """(body, media type, digest), from storage or the upstream."""
        if DIGEST_RE.match(reference):
            try:
                return self.store.get_manifest(name, reference)
            except RegistryError as exc:
                if exc.code != "MANIFEST_UNKNOWN":
                    raise
            try:
                return self._fetch_manifest(name, reference)
            except UpstreamUnavailable as exc:
                raise RegistryError(
                    "UNAVAILABLE", f"the upstream registry is unavailable: {exc.message}", status=503
                ) from None
        if not TAG_RE.match(reference):
            raise RegistryError("MANIFEST_INVALID", f"invalid tag or digest {reference!r}")
        try:
            return self._fetch_manifest(name, reference)
        except UpstreamUnavailable as exc:  # upstream down: what we have is better than nothing
            log.warning(
                "upstream %s unreachable (%s): serving %s:%s from the cache", self.host, exc.message, name, reference
            )
            return self.store.get_manifest(name, reference)

    def _fetch_manifest(self, name: str, reference: str) -> tuple[bytes, str, str]:
        try:
            body, media_type, digest = self.client.manifest(name, reference)
        except UpstreamNotFound:
            raise RegistryError("MANIFEST_UNKNOWN", detail={"Reference": reference}) from None
        except UpstreamUnavailable:
            raise
        except UpstreamError as exc:
            raise RegistryError("MANIFEST_UNKNOWN", f"upstream: {exc.message}") from None
        # verified against the digest asked for, or against the upstream's Docker-Content-Digest
        try:
            media_type = manifest_media_type(json.loads(body), media_type)
        except ValueError:
            raise RegistryError("MANIFEST_INVALID", "the upstream answered something that is not a manifest") from None
        self.store.cache_manifest(name, reference, body, digest)
        return body, media_type, digest

    # -- blobs ------------------------------------------------------------------------------------
    def blob_size(self, name: str, digest: str) -> int:
        try:
            return self.store.repo_blob_size(name, digest)
        except RegistryError:
            pass
        try:
            return self.client.blob_size(name, digest)
        except UpstreamError as exc:
            raise RegistryError("BLOB_UNKNOWN", f"upstream: {exc.message}", detail=digest) from None

    def cached(self, name: str, digest: str) -> bool:
        try:
            self.store.repo_blob_size(name, digest)
            return True
        except RegistryError:
            return False

    def fetch_blob(self, name: str, digest: str) -> tuple[int, Iterator[bytes]]:
        """(size, chunks) of a blob from the upstream; the chunks are stored as they pass and the blob is
        committed when the last one has gone by and the digest matched.  A second request for a blob being
        fetched waits for the first and is then served from storage (``size`` -1 tells it to look again)."""
        with self._lock:
            running = self._inflight.get(digest)
            if running is None:
                self._inflight[digest] = threading.Event()
        if running is not None:
            running.wait(600)
            return -1, iter(())
        try:
            response = self.client.blob(name, digest)
        except BaseException as exc:
            self._done(digest)
            if isinstance(exc, UpstreamError):
                raise RegistryError("BLOB_UNKNOWN", f"upstream: {exc.message}", detail=digest) from None
            raise
        size = int(response.headers.get("Content-Length") or -2)
        return size, self._tee(name, digest, response)

    def _done(self, digest: str) -> None:
        with self._lock:
            event = self._inflight.pop(digest, None)
        if event is not None:
            event.set()

    def _tee(self, name: str, digest: str, response) -> Iterator[bytes]:
        upload = self.store.start_upload(name)
        writer = self.store.uploads.writer(upload)
        h = hasher(digest)
        complete = False
        try:
            for chunk in response.iter_bytes(1 << 20):
                writer.write(chunk)
                h.update(chunk)
                yield chunk
            complete = True
        finally:
            response.close()
            try:
                writer.close()
                if complete and f"{digest.split(':')[0]}:{h.hexdigest()}" == digest:
                    self.store.finish_upload(upload, digest)
                else:
                    if complete:
                        log.error(
                            "upstream %s sent content for %s that does not match it: not cached", self.host, digest
                        )
                    self.store.cancel_upload(upload)
            finally:
                self._done(digest)


__all__ = ["PullThrough"]
