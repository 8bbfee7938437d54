"""A blocking Docker Registry HTTP API v2 client (httpx) with Docker's authentication.

Transport
    HTTPS, verified against the system CAs plus ``<certs dir>/<host>/ca.crt``
    (``/etc/dockyard/certs.d``, then ``/etc/docker/certs.d``).  Plain HTTP only
    for loopback registries and those listed as insecure; for those HTTPS is
    tried first without verification, then HTTP (as Docker does).
Authentication
    the registry's ``WWW-Authenticate`` challenge decides: ``Basic`` sends the
    credentials on every request; ``Bearer`` fetches a token for the scope
    from the realm (with the credentials, or anonymously) and fetches a new one
    when the registry says the token expired or lacks the scope.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from collections.abc import Callable, Iterator
from urllib.parse import urlencode

import httpx

from dockyard.errors import DockyardError, Forbidden, InvalidParameter, NotFound, System, Unauthorized, Unavailable

from dockyard.reference import DOCKER_HUB, default_index
from dockyard.registry_hosts import insecure_registries, is_insecure, tls_verify

log = logging.getLogger(__name__)

MANIFEST_ACCEPT = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)
USER_AGENT = "dockyard/0.1.0 (registry_http)"
_scheme_cache: dict[str, str] = {}
_scheme_lock = threading.Lock()


class RegistryAPIError(DockyardError):
    """An error answer of a registry, with its code(s)."""

    def __init__(self, status: int, codes: list[str], message: str) -> None:
        super().__init__(message)
        self.status = {401: 401, 403: 403, 404: 404}.get(status, 500 if status >= 500 else 400)
        self.http_status = status
        self.codes = codes


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    return scheme.lower(), params


def registry_error(response: httpx.Response, what: str) -> RegistryAPIError:
    codes, messages = [], []
    try:
        body = response.json()
        for error in body.get("errors") or []:
            code = str(error.get("code", "")).upper()
            codes.append(code)
            messages.append(f"{code.lower().replace('_', ' ')}: {error.get('message', '')}")
    except (ValueError, AttributeError):
        pass
    if not messages:
        messages.append(
            {
                401: "unauthorized: authentication required",
                403: "denied: requested access to the resource is denied",
                404: "not found",
            }.get(response.status_code, f"unexpected status {response.status_code}")
        )
    return RegistryAPIError(
        response.status_code, codes, f"{what}: {'; '.join(messages)}" if what else "; ".join(messages)
    )


class RegistryClient:
    """One registry host, one set of credentials; safe to share between threads."""

    def __init__(
        self,
        domain: str,
        auth: dict | None = None,
        *,
        insecure: list[str] | None = None,
        index: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.domain = domain
        self.auth = auth or {}
        self.insecure = is_insecure(domain, insecure_registries(insecure))
        default_domain, default_scheme = default_index(index)
        self.forced_scheme = default_scheme if domain == default_domain else None
        host = "registry-1.docker.io" if domain == DOCKER_HUB else domain
        self.host = host
        self._verify = tls_verify(domain, self.insecure)
        self._timeout = httpx.Timeout(timeout, connect=15.0)
        self._clients: dict[str, httpx.Client] = {}
        self._lock = threading.Lock()
        self._tokens: dict[str, str] = {}  # scope -> bearer token
        self._challenge: tuple[str, dict[str, str]] | None = None
        self.base = ""

    # -- transport --------------------------------------------------------------------------------
    def _client(self, scheme: str) -> httpx.Client:
        with self._lock:
            client = self._clients.get(scheme)
            if client is None:
                verify = self._verify
                client = self._clients[scheme] = httpx.Client(
                    verify=verify,
                    timeout=self._timeout,
                    follow_redirects=True,
                    limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
                    headers={"User-Agent": USER_AGENT},
                )
            return client

    def close(self) -> None:
        for client in self._clients.values():
            client.close()

    def __enter__(self) -> "RegistryClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def ping(self) -> httpx.Response:
        """``GET /v2/``: find the scheme (and the challenge) of the registry."""
        schemes = [self.forced_scheme] if self.forced_scheme else (["https", "http"] if self.insecure else ["https"])
        with _scheme_lock:
            cached = _scheme_cache.get(self.host)
        if cached in schemes:
            schemes = [cached] + [s for s in schemes if s != cached]
        last: Exception | None = None
        for scheme in schemes:
            try:
                response = self._client(scheme).get(f"{scheme}://{self.host}/v2/")
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectTimeout) as exc:
                last = exc
                continue
            if (
                scheme == "https"
                and response.status_code == 400
                and "http" in schemes
                and b"plain HTTP" in response.content
            ):
                continue
            self.base = f"{scheme}://{self.host}"
            with _scheme_lock:
                _scheme_cache[self.host] = scheme
            if response.status_code == 401:
                self._challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
            return response
        hint = "" if self.insecure else " (plain HTTP is used only for loopback and --insecure-registry hosts)"
        raise Unavailable(f'Get "https://{self.host}/v2/": {last}{hint}')

    def _ensure_base(self) -> None:
        if not self.base:
            self.ping()

    # -- authentication ---------------------------------------------------------------------------
    def _basic(self) -> str | None:
        username, password = self.auth.get("username"), self.auth.get("password")
        if username:
            return "Basic " + base64.b64encode(f"{username}:{password or ''}".encode()).decode()
        return None

    def _fetch_token(self, params: dict[str, str], scope: str) -> str:
        realm = params.get("realm")
        if not realm:
            raise Unauthorized("the registry asked for a bearer token without a realm")
        if self.auth.get("registrytoken"):
            return self.auth["registrytoken"]
        query: list[tuple[str, str]] = []
        if params.get("service"):
            query.append(("service", params["service"]))
        for item in scope.split():
            query.append(("scope", item))
        headers = {}
        client = self._client(realm.split("://", 1)[0])
        if self.auth.get("identitytoken"):
            form = {
                "grant_type": "refresh_token",
                "refresh_token": self.auth["identitytoken"],
                "client_id": "dockyard",
                "service": params.get("service", ""),
                "scope": scope,
            }
            response = client.post(realm, data=form)
        else:
            basic = self._basic()
            if basic:
                headers["Authorization"] = basic
                query.append(("account", self.auth["username"]))
            response = client.get(realm, params=query, headers=headers)
        if response.status_code in (401, 403):
            raise Unauthorized(
                f'Get "{self.base}/v2/": {registry_error(response, "").message or "unauthorized"}'.replace(": : ", ": ")
            )
        if response.status_code != 200:
            raise registry_error(response, f"token request to {realm} failed")
        body = response.json()
        token = body.get("token") or body.get("access_token")
        if not token:
            raise Unauthorized(f"the token server {realm} returned no token")
        return token

    def _authorization(self, scope: str, refresh: bool = False) -> str | None:
        if self._challenge is None:
            return None
        scheme, params = self._challenge
        if scheme == "basic":
            return self._basic()
        if scheme == "bearer":
            with self._lock:
                token = None if refresh else self._tokens.get(scope)
            if token is None:
                token = self._fetch_token(params, scope)
                with self._lock:
                    self._tokens[scope] = token
            return f"Bearer {token}"
        return None

    def request(
        self,
        method: str,
        url: str,
        scope: str,
        *,
        headers: dict | None = None,
        content: Callable[[], object] | bytes | None = None,
        params=None,
        stream: bool = False,
        ok: tuple[int, ...] = (),
    ) -> httpx.Response:
        """Send a request with the right authorization; re-authenticate once on a 401.

        ``content`` may be a callable returning a fresh body, so that a request
        can be sent again after a token expired.
        """
        self._ensure_base()
        if url.startswith("/"):
            url = self.base + url
        client = self._client(url.split("://", 1)[0])
        for attempt in range(2):
            hdrs = dict(headers or {})
            authorization = self._authorization(scope, refresh=attempt > 0)
            if authorization:
                hdrs["Authorization"] = authorization
            body = content() if callable(content) else content
            request = client.build_request(method, url, headers=hdrs, content=body, params=params)
            try:
                response = client.send(request, stream=stream)
            except httpx.TransportError as exc:
                raise Unavailable(f"{method} {url}: {exc}") from None
            if response.status_code != 401 or attempt == 1:
                return response
            challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
            response.close()
            if challenge[0] in ("basic", "bearer"):
                if challenge[0] == "basic" and not self._basic():
                    return response
                self._challenge = (
                    challenge[0],
                    {
                        **(self._challenge[1] if self._challenge else {}),
                        **{k: v for k, v in challenge[1].items() if k != "scope"},
                    },
                )
                continue
            return response
        raise AssertionError("unreachable")

    # -- operations -------------------------------------------------------------------------------
    def login(self) -> None:
        """Check the credentials (``docker login``)."""
        response = self.ping()
        if response.status_code == 200:
            return
        if response.status_code != 401 or self._challenge is None:
            raise registry_error(response, f"login attempt to {self.base}/v2/ failed")
        scheme, params = self._challenge
        if not self.auth.get("username") and not self.auth.get("identitytoken"):
            raise Unauthorized("login needs a user name and a password")
        if scheme == "bearer":
            self._fetch_token(params, "")
            return
        response = self._client(self.base.split("://")[0]).get(
            f"{self.base}/v2/", headers={"Authorization": self._basic() or ""}
        )
        if response.status_code != 200:
            raise Unauthorized(f'Get "{self.base}/v2/": unauthorized: incorrect username or password')

    def register(self, username: str, password: str, email: str) -> str | None:
        """``POST /v1/users/``: register an account where the registry does that at login.

        Returns the registry's status message (201 created, 200 activation link sent), or
        ``None`` when the registry registers nobody or refused (the name exists, registration closed)."""
        self._ensure_base()
        try:
            response = self._client(self.base.split("://")[0]).post(
                f"{self.base}/v1/users/", json={"username": username, "password": password, "email": email}
            )
        except httpx.HTTPError as exc:
            raise Unavailable(f"POST {self.base}/v1/users/: {exc}") from None
        if response.status_code in (200, 201):
            try:
                return str(response.json().get("status") or "Account created")
            except ValueError:
                return "Account created"
        if response.status_code == 429:
            raise registry_error(response, "registration")
        return None

    def get_manifest(self, path: str, reference: str, scope: str) -> tuple[bytes, str, str]:
        """(body, media type, digest); the body is verified when asked for by digest."""
        response = self.request("GET", f"/v2/{path}/manifests/{reference}", scope, headers={"Accept": MANIFEST_ACCEPT})
        if response.status_code == 404:
            raise NotFound(registry_error(response, "").message or "manifest unknown")
        if response.status_code != 200:
            raise registry_error(response, "")
        body = response.content
        from dockyard.oci import hasher, sha256_digest

        digest = sha256_digest(body)
        if reference.startswith(("sha256:", "sha512:")):
            h = hasher(reference)
            h.update(body)
            actual = f"{reference.split(':')[0]}:{h.hexdigest()}"
            if actual != reference:
                raise InvalidParameter(f"manifest verification failed for digest {reference} (got {actual})")
            digest = reference
        else:
            header = response.headers.get("Docker-Content-Digest")
            if header and header.startswith("sha256:") and header != digest:
                raise InvalidParameter(
                    f"manifest verification failed: the registry says {header}, the content hashes to {digest}"
                )
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        return body, media_type, digest

    def get_blob(self, path: str, digest: str, scope: str) -> bytes:
        from dockyard.oci import hasher

        response = self.request("GET", f"/v2/{path}/blobs/{digest}", scope)
        if response.status_code != 200:
            raise registry_error(response, f"fetching blob {digest}")
        h = hasher(digest)
        h.update(response.content)
        if f"{digest.split(':')[0]}:{h.hexdigest()}" != digest:
            raise InvalidParameter(f"blob {digest} failed verification: the content does not match its digest")
        return response.content

    def stream_blob(self, path: str, digest: str, scope: str, offset: int = 0) -> httpx.Response:
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        response = self.request("GET", f"/v2/{path}/blobs/{digest}", scope, headers=headers, stream=True)
        if response.status_code not in (200, 206):
            response.read()
            response.close()
            raise registry_error(response, f"fetching blob {digest}")
        return response

    def blob_exists(self, path: str, digest: str, scope: str) -> int | None:
        response = self.request("HEAD", f"/v2/{path}/blobs/{digest}", scope)
        if response.status_code == 200:
            return int(response.headers.get("Content-Length", "0"))
        if response.status_code in (404, 401, 403):
            return None
        raise registry_error(response, f"checking blob {digest}")

    def mount_blob(self, path: str, digest: str, source: str, scope: str) -> bool:
        response = self.request("POST", f"/v2/{path}/blobs/uploads/", scope, params={"mount": digest, "from": source})
        if response.status_code == 201:
            return True
        if response.status_code == 202:  # not mounted: an upload session was opened; cancel it
            location = response.headers.get("Location")
            if location:
                self.request("DELETE", self._absolute(location), scope)
            return False
        if response.status_code in (401, 403):
            raise self._push_error(response, path)
        return False

    def _absolute(self, location: str) -> str:
        if location.startswith("/"):
            return self.base + location
        return location

    def _push_error(self, response: httpx.Response, path: str) -> DockyardError:
        err = registry_error(response, "")
        if response.status_code == 403 or "DENIED" in err.codes:
            return Forbidden(err.message if err.message else "denied: requested access to the resource is denied")
        if response.status_code == 401:
            return Unauthorized(err.message)
        return err

    def upload_blob(
        self, path: str, digest: str, size: int, body: Callable[[], Iterator[bytes]] | bytes, scope: str
    ) -> None:
        """POST an upload session, then PUT the whole content with its digest."""
        response = self.request("POST", f"/v2/{path}/blobs/uploads/", scope)
        if response.status_code == 201 and isinstance(body, bytes):
            return
        if response.status_code != 202:
            raise self._push_error(response, path)
        location = self._absolute(response.headers["Location"])
        # keep the registry's own query (distribution's _state) and add the digest
        location += ("&" if "?" in location else "?") + urlencode({"digest": digest})
        response = self.request(
            "PUT",
            location,
            scope,
            content=body,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
        )
        if response.status_code != 201:
            raise self._push_error(response, path)

    def put_manifest(self, path: str, reference: str, body: bytes, media_type: str, scope: str) -> str:
        response = self.request(
            "PUT", f"/v2/{path}/manifests/{reference}", scope, content=body, headers={"Content-Type": media_type}
        )
        if response.status_code not in (200, 201):
            raise self._push_error(response, path)
        return response.headers.get("Docker-Content-Digest", "")

    def search(self, term: str, limit: int) -> dict:
        response = self.request("GET", "/v1/search", "", params={"q": term, "n": str(limit)})
        if response.status_code != 200:
            raise System(f"Unexpected status code {response.status_code}")
        return response.json()


__all__ = ["RegistryAPIError", "RegistryClient", "insecure_registries"]
