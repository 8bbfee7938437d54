"""The pull-through cache's client of its upstream registry (httpx, blocking: called from threads).

Docker's authentication as a registry client does it: the upstream's
``WWW-Authenticate`` challenge decides; ``Bearer`` fetches a token per scope
from the realm (with the ``[proxy]`` credentials, or anonymously) and again
when the upstream refuses it; ``Basic`` sends the credentials.  TLS is
verified as the daemon verifies registries (:mod:`dockyard.registry_hosts`);
plain HTTP only when ``remoteurl`` says ``http://``.
"""

from __future__ import annotations

import base64
import re
import threading

import httpx

from dockyard.oci import DIGEST_RE, hasher, sha256_digest
from dockyard.registry_hosts import tls_verify

MANIFEST_ACCEPT = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)


class UpstreamError(Exception):
    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class UpstreamUnavailable(UpstreamError):
    """The upstream cannot be reached (or answers 5xx)."""


class UpstreamNotFound(UpstreamError):
    pass


def _challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(re.findall(r'(\w+)="([^"]*)"', rest))


class Upstream:
    def __init__(self, remoteurl: str, username: str = "", password: str = "", timeout: float = 60.0) -> None:
        self.base = remoteurl.rstrip("/")
        scheme, _, host = self.base.partition("://")
        self.host = host.split("/")[0]
        self.auth = (username, password) if username else None
        self.http = httpx.Client(
            verify=tls_verify(self.host, scheme == "http") if scheme == "https" else False,
            timeout=httpx.Timeout(timeout, connect=15.0),
            follow_redirects=True,
            headers={"User-Agent": "dockyard-registry (pull-through cache)"},
        )
        self._scheme: tuple[str, dict[str, str]] | None = None
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.http.close()

    def _authorization(self, scope: str, fresh: bool) -> str | None:
        if self._scheme is None:
            return None
        kind, params = self._scheme
        if kind == "basic":
            return (
                "Basic " + base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode() if self.auth else None
            )
        if kind != "bearer" or not params.get("realm"):
            return None
        with self._lock:
            token = None if fresh else self._tokens.get(scope)
        if token is None:
            query = {"scope": scope} if scope else {}
            if params.get("service"):
                query["service"] = params["service"]
            try:
                answer = self.http.get(params["realm"], params=query, auth=self.auth)
            except httpx.TransportError as exc:
                raise UpstreamUnavailable(f"token request to {params['realm']}: {exc}") from None
            if answer.status_code != 200:
                raise UpstreamError(
                    f"the upstream's token server answered {answer.status_code}",
                    401 if answer.status_code in (401, 403) else 502,
                )
            body = answer.json()
            token = body.get("token") or body.get("access_token") or ""
            with self._lock:
                self._tokens[scope] = token
        return f"Bearer {token}"

    def request(
        self, method: str, path: str, scope: str, headers: dict | None = None, stream: bool = False
    ) -> httpx.Response:
        for attempt in range(2):
            hdrs = dict(headers or {})
            authorization = self._authorization(scope, fresh=attempt > 0)
            if authorization:
                hdrs["Authorization"] = authorization
            try:
                response = self.http.send(
                    self.http.build_request(method, f"{self.base}{path}", headers=hdrs), stream=stream
                )
            except httpx.TransportError as exc:
                raise UpstreamUnavailable(f"{method} {self.base}{path}: {exc}") from None
            if response.status_code != 401 or attempt == 1:
                break
            response.close()
            self._scheme = _challenge(response.headers.get("WWW-Authenticate", ""))
        if response.status_code >= 500:
            response.close()
            raise UpstreamUnavailable(f"{method} {self.base}{path}: HTTP {response.status_code}")
        if response.status_code == 404:
            response.close()
            raise UpstreamNotFound(f"{path}: not found upstream", 404)
        if response.status_code >= 400:
            response.close()
            raise UpstreamError(
                f"{method} {self.base}{path}: HTTP {response.status_code}",
                401 if response.status_code in (401, 403) else 502,
            )
        return response

    def manifest(self, name: str, reference: str) -> tuple[bytes, str, str]:
        """(body, media type, digest), the body verified against the digest asked for, or the one announced."""
        response = self.request(
            "GET", f"/v2/{name}/manifests/{reference}", f"repository:{name}:pull", {"Accept": MANIFEST_ACCEPT}
        )
        body = response.content
        if DIGEST_RE.match(reference):
            h = hasher(reference)
            h.update(body)
            if f"{reference.split(':')[0]}:{h.hexdigest()}" != reference:
                raise UpstreamError(f"the upstream's manifest {reference} does not match its digest")
            digest = reference
        else:
            digest = sha256_digest(body)
            announced = response.headers.get("Docker-Content-Digest", "")
            if announced.startswith("sha256:") and announced != digest:
                raise UpstreamError(
                    f"the upstream announced {announced} for {name}:{reference}, the content hashes to {digest}"
                )
        return body, response.headers.get("Content-Type", "").split(";")[0].strip(), digest

    def blob_size(self, name: str, digest: str) -> int:
        response = self.request("HEAD", f"/v2/{name}/blobs/{digest}", f"repository:{name}:pull")
        return int(response.headers.get("Content-Length") or 0)

    def blob(self, name: str, digest: str) -> httpx.Response:
        """A streaming response; the caller closes it."""
        return self.request("GET", f"/v2/{name}/blobs/{digest}", f"repository:{name}:pull", stream=True)


__all__ = ["Upstream", "UpstreamError", "UpstreamUnavailable", "UpstreamNotFound"]
