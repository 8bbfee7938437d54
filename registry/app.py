"""The registry's HTTP API: OCI Distribution / Docker Registry HTTP API v2, a
token endpoint, ``/v1/search``, repository settings and account registration (aiohttp).

Routes::

    GET       /v2/                                        version check (401 + challenge when auth is on)
    GET       /v2/_catalog?n=&last=
    GET       /v2/<name>/tags/list?n=&last=
    GET|HEAD|PUT|DELETE /v2/<name>/manifests/<tag|digest>
    GET|HEAD|DELETE     /v2/<name>/blobs/<digest>
    POST      /v2/<name>/blobs/uploads/[?digest=|?mount=&from=]
    GET|PATCH|PUT|DELETE /v2/<name>/blobs/uploads/<uuid>[?digest=]
    GET|POST  /token                                      Docker token authentication
    GET       /v1/search?q=&n=&page=
    GET|PUT|PATCH|DELETE /v1/repositories/<name>          description, private flag, deletion (owner)
    POST      /v1/users/                                  registration (accounts = open)
    GET       /v1/activate/<user>/<secret>                the link of the activation mail

Handlers hold no state between requests: upload sessions, accounts and the
garbage collector's state are in the storage backend, so replicas over one
backend answer alike.  Blob bodies are read and written by two functions,
:meth:`Registry.send_blob` and :meth:`Registry.receive_upload`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
import time
from urllib.parse import urlencode

from aiohttp import web

from dockyard.oci import DIGEST_RE, valid_name
from dockyard.timefmt import iso
from .accounts import AccountError, Accounts
from .auth import DELETE, PULL, PUSH, Identity, LoginLimiter, Policy, TokenError, Tokens, parse_basic, parse_scope
from .config import RegistryConfig
from .errors import RegistryError
from .gc import Fence
from .mail import Mailer
from .notifications import Notifier
from .storage import make_backend
from .store import RegistryStore
from .uploads import Upload

log = logging.getLogger("dockyard.registry")

API_HEADER = {"Docker-Distribution-API-Version": "registry/2.0"}
ROUTES = [
    ("tags", re.compile(r"^(?P<name>.+)/tags/list$")),
    ("manifest", re.compile(r"^(?P<name>.+)/manifests/(?P<reference>[^/]+)$")),
    ("uploads", re.compile(r"^(?P<name>.+)/blobs/uploads/?$")),
    ("upload", re.compile(r"^(?P<name>.+)/blobs/uploads/(?P<uuid>[^/]+)$")),
    ("blob", re.compile(r"^(?P<name>.+)/blobs/(?P<digest>[^/]+)$")),
]
RECEIVE_CHUNK = 1 << 20
#: how much of a request body may arrive while the previous chunk is still being stored
RECEIVE_AHEAD = 16 << 20
UPLOAD_MAX_AGE = 7 * 24 * 3600  # distribution's default upload purging age
MANIFEST_MEDIA = "application/vnd.docker.distribution.manifest.v2+json"


def _is_loopback(host: str) -> bool:
    if host in ("localhost", "") or host.endswith(".localhost"):
        return host != ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_wildcard(host: str) -> bool:
    return host in ("", "0.0.0.0", "::")


def public_url(config: RegistryConfig) -> str:
    """Where clients reach this registry, from the settings only (never from a request's Host header)."""
    if config.accounts.public_url:
        return config.accounts.public_url.rstrip("/")
    host, port = config.host_port
    if _is_wildcard(host):
        return ""
    scheme = "https" if config.tls_cert else "http"
    return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}"


def token_realm(config: RegistryConfig) -> str:
    if config.auth.realm:
        return config.auth.realm
    base = public_url(config)
    if not base:
        raise ValueError(
            "token authentication on a wildcard address needs auth.realm (or accounts.public_url): "
            "the URL clients reach /token at; it is never taken from a request's Host header"
        )
    return f"{base}/token"


def startup_warnings(config: RegistryConfig, mode: str) -> list[str]:
    """What an operator should hear about at start (registry defaults, issue 13 item 7)."""
    host, _ = config.host_port
    exposed = not _is_loopback(host)
    warnings = []
    if exposed and mode == "none" and config.delete_enabled:
        warnings.append(
            f"listening on {config.listen} without authentication and with deletion enabled: anyone who "
            f"can reach it may push and delete; set auth (token or basic) or delete_enabled = false"
        )
    if exposed and mode != "none" and not config.tls_cert:
        warnings.append(
            f"listening on {config.listen} over plain HTTP with {mode} authentication: passwords and "
            f"tokens cross the network unencrypted; give a TLS certificate and key"
        )
    return warnings


class Registry:
    def __init__(self, config: RegistryConfig) -> None:
        self.config = config
        config.root.mkdir(parents=True, exist_ok=True)
        backend = make_backend(config.storage, config.root)
        self.backend = backend
        self.store = RegistryStore(backend, Fence(backend, config.gc.window))
        self.blocking = backend.blocking
        self.accounts = Accounts(backend, config.auth.users, config.auth.admins)
        self.mode = config.auth_mode or ("token" if self.accounts.any() else "none")
        self.policy = Policy(self.accounts, self.store)
        self.tokens = Tokens(
            Tokens.load_secret(config.secret_file), config.auth.issuer, config.auth.service, config.auth.token_ttl
        )
        self.realm = token_realm(config) if self.mode == "token" else ""
        self.limiter = LoginLimiter(config.auth.login_failures, config.auth.login_window)
        self.registrations = LoginLimiter(failures=10, window=3600)
        self.mailer = Mailer(config.accounts, config.root / "outbox")
        self.notifier = Notifier(config.notifications)
        self.proxy = None
        if config.proxy is not None:
            from .proxy import PullThrough

            self.proxy = PullThrough(config.proxy, self.store)
        self._upload_locks: dict[str, asyncio.Lock] = {}
        self._plain_credentials_seen: set[str] = set()

    async def run(self, fn, *args):
        """Run a store call: inline for the file system, in a thread for network backends."""
        if self.blocking:
            return await asyncio.to_thread(fn, *args)
        return fn(*args)

    # -- application ------------------------------------------------------------------------------
    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self.middleware], client_max_size=8 << 20)
        app.router.add_route("*", "/v2", self.dispatch)
        app.router.add_route("*", "/v2/{tail:.*}", self.dispatch)
        app.router.add_route("GET", "/token", self.token)
        app.router.add_route("POST", "/token", self.token)
        app.router.add_route("GET", "/v1/search", self.search)
        app.router.add_route("GET", "/v1/_ping", self.v1_ping)
        app.router.add_route("*", "/v1/repositories/{name:.+}", self.repository)
        app.router.add_route("POST", "/v1/users/", self.register)
        app.router.add_route("POST", "/v1/users", self.register)
        app.router.add_route("GET", "/v1/activate/{user}/{secret}", self.activate)
        app.router.add_route("GET", "/", self.root)
        app.on_startup.append(lambda _: self.notifier.start())
        app.on_cleanup.append(lambda _: self.notifier.stop())
        return app

    @web.middleware
    async def middleware(self, request: web.Request, handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except RegistryError as exc:
            response = web.Response(
                status=exc.status,
                body=exc.body() if request.method != "HEAD" else None,
                headers={
                    "Content-Type": "application/json; charset=utf-8",
                    **{k: v for k, v in exc.headers.items() if k != "Content-Length"},
                },
            )
        except web.HTTPException as exc:
            if exc.status == 404 and request.path.startswith("/v2"):
                response = web.Response(
                    status=404,
                    body=RegistryError("NAME_UNKNOWN").body(),
                    headers={"Content-Type": "application/json; charset=utf-8"},
                )
            else:
                raise
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:  # a bug, or a backend failure
            log.exception("%s %s failed", request.method, request.path)
            body = json.dumps({"errors": [{"code": "UNKNOWN", "message": f"internal error: {exc}"}]}).encode()
            response = web.Response(status=500, body=body, headers={"Content-Type": "application/json"})
        if not response.prepared:
            response.headers.update(API_HEADER)
        return response

    async def root(self, request: web.Request) -> web.Response:
        return web.Response(text="dockyard registry\n")

    async def v1_ping(self, request: web.Request) -> web.Response:
        return web.json_response(True)

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        tail = request.match_info.get("tail", "")
        if tail == "":
            return await self.base(request)
        if tail == "_catalog":
            if request.method != "GET":
                raise RegistryError("UNSUPPORTED")
            return await self.catalog(request)
        for kind, pattern in ROUTES:
            match = pattern.fullmatch(tail)  # fullmatch: "$" alone would accept a trailing newline
            if match:
                params = match.groupdict()
                name = params.pop("name")
                if not valid_name(name):
                    raise RegistryError("NAME_INVALID", detail={"name": name})
                handler = getattr(self, f"{kind}_{request.method.lower()}", None)
                if handler is None:
                    raise RegistryError("UNSUPPORTED", f"{request.method} is not supported here")
                if self.proxy is not None and request.method not in ("GET", "HEAD"):
                    raise RegistryError(
                        "UNSUPPORTED",
                        "this registry is a pull-through cache of "
                        f"{self.config.proxy.remoteurl}: pushes and deletions are "
                        "refused",
                    )
                return await handler(request, name, **params)
        raise RegistryError("NAME_UNKNOWN", "unknown path", detail={"path": request.path})

    # -- authentication ---------------------------------------------------------------------------
    @staticmethod
    def _peer(request: web.Request) -> str:
        return request.remote or ""

    def challenge(
        self,
        request: web.Request,
        scope: str | None = None,
        error: str | None = None,
        code: str = "UNAUTHORIZED",
        message: str | None = None,
        detail=None,
    ) -> RegistryError:
        if self.mode == "token":
            value = f'Bearer realm="{self.realm}",service="{self.config.auth.service}"'
            if scope:
                value += f',scope="{scope}"'
            if error:
                value += f',error="{error}"'
        else:
            value = 'Basic realm="dockyard-registry"'
        return RegistryError(code, message, detail=detail, status=401, headers={"WWW-Authenticate": value})

    async def check_password(self, request: web.Request, user: str, password: str) -> bool:
        """A rate-limited password check (429 past the limit of failures)."""
        peer = self._peer(request)
        if not request.secure and not _is_loopback(peer) and peer not in self._plain_credentials_seen:
            self._plain_credentials_seen.add(peer)
            log.warning("credentials from %s arrived over plain HTTP: configure TLS", peer)
        wait = self.limiter.retry_after(user, peer)
        if wait > 0:
            raise RegistryError(
                "TOOMANYREQUESTS",
                "too many failed logins: try again later",
                headers={"Retry-After": str(int(wait) + 1)},
            )
        ok = await asyncio.to_thread(self.accounts.verify, user, password)
        if not ok:
            self.limiter.failed(user, peer)
        return ok

    async def identify(self, request: web.Request) -> Identity:
        if self.mode == "none":
            return Identity(None, admin=True)
        header = request.headers.get("Authorization", "")
        basic = parse_basic(header)
        if basic is not None:
            user, password = basic
            if not await self.check_password(request, user, password):
                raise self.challenge(request, message="incorrect username or password")
            return Identity(user, await self.run(self.accounts.is_admin, user))
        if header.lower().startswith("bearer ") and self.mode == "token":
            try:
                claims = self.tokens.verify(header[7:].strip())
            except TokenError as exc:
                raise self.challenge(
                    request, error="invalid_token", message=f"authentication required: {exc}"
                ) from None
            user = claims.get("sub") or None
            return Identity(user, await self.run(self.accounts.is_admin, user), access=claims.get("access") or [])
        return Identity(None)

    async def authorize(self, request: web.Request, name: str, *actions: str) -> Identity:
        identity = await self.identify(request)
        if self.mode == "none":
            return identity
        scope = f"repository:{name}:{','.join(sorted(set(actions) | ({PULL} if PUSH in actions else set())))}"
        for action in actions:
            if identity.access is not None:
                granted = any(
                    a.get("type") == "repository"
                    and a.get("name") == name
                    and (action in a.get("actions", []) or "*" in a.get("actions", []))
                    for a in identity.access
                )
                if granted:
                    continue
                if await self.run(self.policy.allowed, identity.user, name, action):
                    raise self.challenge(
                        request,
                        scope,
                        error="insufficient_scope",
                        detail=[{"Type": "repository", "Name": name, "Action": action}],
                    )
            elif await self.run(self.policy.allowed, identity.user, name, action):
                continue
            if identity.user is None:
                raise self.challenge(request, scope, detail=[{"Type": "repository", "Name": name, "Action": action}])
            message = None
            if (
                action in (PUSH, DELETE)
                and await self.run(self.policy.owner, name) == identity.user
                and not await self.run(self.accounts.is_active, identity.user)
            ):
                message = (
                    f"requested access to the resource is denied: account {identity.user} is not activated "
                    f"yet: follow the link mailed to its address"
                )
            raise RegistryError("DENIED", message, detail=[{"Type": "repository", "Name": name, "Action": action}])
        return identity

    async def base(self, request: web.Request) -> web.Response:
        if self.mode != "none":
            identity = await self.identify(request)
            if identity.user is None:
                raise self.challenge(request)
        return web.Response(body=b"{}", headers={"Content-Type": "application/json; charset=utf-8"})

    async def token(self, request: web.Request) -> web.Response:
        query = request.query
        form = await request.post() if request.method == "POST" else {}
        user: str | None = None
        if request.method == "POST":
            grant = form.get("grant_type")
            if grant != "password":
                raise RegistryError("UNSUPPORTED", f"grant_type {grant!r} is not supported", status=400)
            user, password = str(form.get("username", "")), str(form.get("password", ""))
            if not await self.check_password(request, user, password):
                raise RegistryError("UNAUTHORIZED", "incorrect username or password")
            scopes = str(form.get("scope", "")).split()
        else:
            basic = parse_basic(request.headers.get("Authorization"))
            if basic is not None:
                user, password = basic
                if not await self.check_password(request, user, password):
                    raise RegistryError(
                        "UNAUTHORIZED",
                        "incorrect username or password",
                        headers={"WWW-Authenticate": 'Basic realm="dockyard-registry"'},
                    )
            scopes = [s for item in query.getall("scope", []) for s in item.split()]

        def grants() -> list[dict]:
            access = []
            for scope in scopes:
                parsed = parse_scope(scope)
                if parsed is None:
                    continue
                kind, name, actions = parsed
                if kind == "repository" and valid_name(name):
                    access.append(
                        {"type": "repository", "name": name, "actions": self.policy.grant(user, name, actions)}
                    )
                elif kind == "registry" and name == "catalog":
                    access.append(
                        {
                            "type": "registry",
                            "name": "catalog",
                            "actions": actions if self.accounts.is_admin(user) else [],
                        }
                    )
            return access

        access = await self.run(grants)
        token, claims = self.tokens.issue(user or "", access)
        issued = iso(claims["iat"], digits=0)
        body = {"token": token, "access_token": token, "expires_in": self.tokens.ttl, "issued_at": issued}
        if request.method == "POST":
            body["scope"] = " ".join(scopes)
        return web.json_response(body)

    # -- catalog and tags -------------------------------------------------------------------------
    @staticmethod
    def _page(request: web.Request, items: list[str], path: str, key: str, extra: dict):
        n_text = request.query.get("n")
        last = request.query.get("last")
        if last:
            items = [i for i in items if i > last]
        more = False
        if n_text is not None:
            try:
                n = int(n_text)
                if n < 0:
                    raise ValueError
            except ValueError:
                raise RegistryError("PAGINATION_NUMBER_INVALID", detail={"n": n_text}) from None
            more = len(items) > n
            items = items[:n]
        headers = {}
        if more and items:
            headers["Link"] = f'<{path}?{urlencode({"last": items[-1], "n": n_text})}>; rel="next"'
        return web.json_response({**extra, key: items}, headers=headers)

    async def catalog(self, request: web.Request) -> web.Response:
        identity = await self.identify(request)
        repos = await asyncio.to_thread(self.store.repositories)
        if self.mode != "none" and not identity.admin:
            repos = [r for r in repos if await self.run(self.policy.allowed, identity.user, r, PULL)]
        return self._page(request, repos, "/v2/_catalog", "repositories", {})

    async def tags_get(self, request: web.Request, name: str) -> web.Response:
        await self.authorize(request, name, PULL)
        tags = await self.run(self.store.tags, name)
        return self._page(request, tags, f"/v2/{name}/tags/list", "tags", {"name": name})

    # -- manifests --------------------------------------------------------------------------------
    async def manifest_get(self, request: web.Request, name: str, reference: str) -> web.Response:
        identity = await self.authorize(request, name, PULL)
        if self.proxy is not None:
            body, media_type, digest = await asyncio.to_thread(self.proxy.manifest, name, reference)
        else:
            body, media_type, digest = await self.run(self.store.get_manifest, name, reference)
        headers = {"Content-Type": media_type, "Docker-Content-Digest": digest, "ETag": f'"{digest}"'}
        if request.headers.get("If-None-Match", "").strip('" ') == digest:
            return web.Response(status=304, headers=headers)
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(body))
            return web.Response(headers=headers)
        self.notifier.emit(
            request,
            "pull",
            name,
            digest=digest,
            media_type=media_type,
            size=len(body),
            tag="" if DIGEST_RE.match(reference) else reference,
            user=identity.user,
        )
        return web.Response(body=body, headers=headers)

    manifest_head = manifest_get

    async def manifest_put(self, request: web.Request, name: str, reference: str) -> web.Response:
        identity = await self.authorize(request, name, PUSH)
        body = await request.read()
        content_type = request.headers.get("Content-Type")
        digest = await self.run(self.store.put_manifest, name, reference, body, content_type)
        log.info("manifest %s:%s -> %s", name, reference, digest)
        self.notifier.emit(
            request,
            "push",
            name,
            digest=digest,
            media_type=(content_type or MANIFEST_MEDIA).split(";")[0],
            size=len(body),
            tag="" if DIGEST_RE.match(reference) else reference,
            user=identity.user,
        )
        return web.Response(
            status=201,
            headers={
                "Location": f"/v2/{name}/manifests/{digest}",
                "Docker-Content-Digest": digest,
                "Content-Length": "0",
            },
        )

    async def manifest_delete(self, request: web.Request, name: str, reference: str) -> web.Response:
        identity = await self.authorize(request, name, DELETE)
        if not self.config.delete_enabled:
            raise RegistryError("UNSUPPORTED", "deletion is disabled on this registry")
        await self.run(self.store.delete_manifest, name, reference)
        is_digest = bool(DIGEST_RE.match(reference))
        self.notifier.emit(
            request,
            "delete",
            name,
            digest=reference if is_digest else "",
            media_type=MANIFEST_MEDIA,
            tag="" if is_digest else reference,
            user=identity.user,
        )
        return web.Response(status=202, headers={"Content-Length": "0"})

    # -- blobs ------------------------------------------------------------------------------------
    async def blob_get(self, request: web.Request, name: str, digest: str) -> web.StreamResponse:
        identity = await self.authorize(request, name, PULL)
        if not DIGEST_RE.match(digest):
            raise RegistryError("DIGEST_INVALID", detail={"digest": digest})
        headers = {
            "Docker-Content-Digest": digest,
            "Content-Type": "application/octet-stream",
            "ETag": f'"{digest}"',
            "Accept-Ranges": "bytes",
            "Cache-Control": "max-age=31536000",
        }
        if self.proxy is not None and not await asyncio.to_thread(self.proxy.cached, name, digest):
            if request.method == "HEAD":
                headers["Content-Length"] = str(await asyncio.to_thread(self.proxy.blob_size, name, digest))
                return web.Response(headers=headers)
            response = await self.relay_blob(request, name, digest, headers)
            if response is not None:
                self.notifier.emit(request, "pull", name, digest=digest, user=identity.user)
                return response
        if request.method == "HEAD":
            # a HEAD is how a pushing client decides to rely on a blob: the gc fence has its say
            size = await self.run(self.store.check_blob_for_push, name, digest)
            headers["Content-Length"] = str(size)
            return web.Response(headers=headers)
        size = await self.run(self.store.repo_blob_size, name, digest)
        if request.headers.get("If-None-Match", "").strip('" ') == digest:
            return web.Response(status=304, headers=headers)
        self.notifier.emit(request, "pull", name, digest=digest, size=size, user=identity.user)
        return await self.send_blob(request, digest, size, headers)

    blob_head = blob_get

    async def send_blob(self, request: web.Request, digest: str, size: int, headers: dict) -> web.StreamResponse:
        """The read path of a blob: ``sendfile`` from a local file, else ranged reads from the backend."""
        key = self.store.blob_key(digest)
        path = self.backend.local_path(key)
        if path is not None:
            return web.FileResponse(path, chunk_size=1 << 20, headers=headers)
        start, end, status = 0, size, 200
        range_header = request.headers.get("Range")
        if range_header:
            match = re.match(r"^bytes=(\d*)-(\d*)$", range_header.strip())
            if not match or (not match.group(1) and not match.group(2)):
                raise RegistryError("RANGE_INVALID", status=416, headers={"Content-Range": f"bytes */{size}"})
            if match.group(1):
                start = int(match.group(1))
                end = min(size, int(match.group(2)) + 1) if match.group(2) else size
            else:
                start = max(0, size - int(match.group(2)))
            if start >= size or start >= end:
                raise RegistryError("RANGE_INVALID", status=416, headers={"Content-Range": f"bytes */{size}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = end - start
        await response.prepare(request)
        chunks = await asyncio.to_thread(self.backend.read_range, key, start, end)
        await self._pump(response, chunks)
        await response.write_eof()
        return response

    @staticmethod
    async def _pump(response: web.StreamResponse, chunks) -> None:
        """Write what a blocking iterator yields, reading the next chunk while the last one is sent."""
        pending = asyncio.ensure_future(asyncio.to_thread(next, chunks, None))
        try:
            while True:
                data = await pending
                if data is None:
                    return
                pending = asyncio.ensure_future(asyncio.to_thread(next, chunks, None))
                await response.write(data)
        finally:
            if not pending.done():
                await asyncio.gather(pending, return_exceptions=True)
            close = getattr(chunks, "close", None)
            if close is not None:
                await asyncio.to_thread(close)

    async def relay_blob(self, request: web.Request, name: str, digest: str, headers: dict):
        """Pull-through: stream a blob from the upstream while caching it; None when another request
        fetched it meanwhile (then it is served from storage)."""
        size, chunks = await asyncio.to_thread(self.proxy.fetch_blob, name, digest)
        if size == -1:
            return None
        response = web.StreamResponse(headers=headers)
        if size >= 0:
            response.content_length = size
        await response.prepare(request)
        await self._pump(response, chunks)
        await response.write_eof()
        return response

    async def blob_delete(self, request: web.Request, name: str, digest: str) -> web.Response:
        identity = await self.authorize(request, name, DELETE)
        if not self.config.delete_enabled:
            raise RegistryError("UNSUPPORTED", "deletion is disabled on this registry")
        if not DIGEST_RE.match(digest):
            raise RegistryError("DIGEST_INVALID", detail={"digest": digest})
        await self.run(self.store.unlink_blob, name, digest)
        self.notifier.emit(request, "delete", name, digest=digest, user=identity.user)
        return web.Response(status=202, headers={"Content-Length": "0"})

    # -- uploads ----------------------------------------------------------------------------------
    @staticmethod
    def _blob_created(name: str, digest: str) -> web.Response:
        """201 for a blob now in ``name`` (uploaded, finished or mounted)."""
        headers = {"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest, "Content-Length": "0"}
        return web.Response(status=201, headers=headers)

    @staticmethod
    def _upload_headers(name: str, upload: Upload) -> dict[str, str]:
        return {
            "Location": f"/v2/{name}/blobs/uploads/{upload.uuid}",
            "Range": f"0-{max(upload.size - 1, 0)}",
            "Docker-Upload-UUID": upload.uuid,
            "Content-Length": "0",
        }

    def _lock(self, upload: Upload) -> asyncio.Lock:
        lock = self._upload_locks.get(upload.uuid)
        if lock is None:
            lock = self._upload_locks[upload.uuid] = asyncio.Lock()
        return lock

    async def receive_upload(self, request: web.Request, upload: Upload) -> int:
        """The write path of a blob: append the request body to an upload session.  A task stores chunks
        while the body keeps arriving (up to ``RECEIVE_AHEAD`` bytes ahead), so network and storage overlap.
        What arrived is kept even if the client goes away (it may resume)."""
        if request.content_length == 0 or (request.content_length is None and not request.body_exists):
            return 0
        writer = self.store.uploads.writer(upload)
        queue: asyncio.Queue = asyncio.Queue(maxsize=max(1, RECEIVE_AHEAD // RECEIVE_CHUNK))

        async def store() -> None:
            while (data := await queue.get()) is not None:
                await asyncio.to_thread(writer.write, data)

        storing = asyncio.ensure_future(store())

        async def hand_over(data: bytes | None) -> None:
            putting = asyncio.ensure_future(queue.put(data))
            await asyncio.wait({putting, storing}, return_when=asyncio.FIRST_COMPLETED)
            if not putting.done():  # the storing task failed: its error is the request's
                putting.cancel()
                storing.result()

        buffer = bytearray()
        try:
            while chunk := await request.content.readany():
                buffer += chunk
                if len(buffer) >= RECEIVE_CHUNK:
                    await hand_over(bytes(buffer))
                    buffer.clear()
        finally:
            # the client finished or went away: store what arrived, then commit it
            async def finish() -> None:
                try:
                    if not storing.done():
                        if buffer:
                            await hand_over(bytes(buffer))
                        await hand_over(None)
                    await storing
                finally:
                    await asyncio.to_thread(writer.close)

            await asyncio.shield(finish())
        if request.content_length is not None and writer.written != request.content_length:
            raise RegistryError("SIZE_INVALID", detail={"expected": request.content_length, "received": writer.written})
        return writer.written

    def _check_range(self, request: web.Request, upload: Upload) -> None:
        header = request.headers.get("Content-Range")
        if not header:
            return
        match = re.match(r"^(?:bytes[ =])?(\d+)-(\d+)(?:/\S+)?$", header.strip())
        size = upload.size
        if not match:
            raise RegistryError("RANGE_INVALID", status=416, headers=self._upload_headers(upload.name, upload))
        start, end = int(match.group(1)), int(match.group(2))
        length = request.content_length
        if start != size or end < start or (length is not None and end - start + 1 != length):
            raise RegistryError(
                "RANGE_INVALID",
                f"content range {header} does not continue the upload at {size}",
                status=416,
                headers=self._upload_headers(upload.name, upload),
            )

    async def uploads_post(self, request: web.Request, name: str) -> web.Response:
        identity = await self.authorize(request, name, PUSH, PULL)
        mount, source = request.query.get("mount"), request.query.get("from")
        if mount and source and DIGEST_RE.match(mount) and valid_name(source):
            if await self._may_pull(identity, source):
                if await self.run(self.store.mount_blob, name, source, mount):
                    self.notifier.emit(request, "mount", name, digest=mount, user=identity.user)
                    return self._blob_created(name, mount)
        upload = await self.run(self.store.start_upload, name)
        digest = request.query.get("digest")
        if digest:
            try:
                await self.receive_upload(request, upload)
                await self.run(self.store.finish_upload, upload, digest)
            except BaseException:
                await asyncio.shield(self.run(self.store.cancel_upload, upload))
                raise
            self.notifier.emit(request, "push", name, digest=digest, user=identity.user)
            return self._blob_created(name, digest)
        return web.Response(status=202, headers=self._upload_headers(name, upload))

    async def _may_pull(self, identity: Identity, source: str) -> bool:
        return self.mode == "none" or await self.run(self.policy.allowed, identity.user, source, PULL)

    async def upload_get(self, request: web.Request, name: str, uuid: str) -> web.Response:
        await self.authorize(request, name, PUSH)
        upload = await self.run(self.store.get_upload, name, uuid)
        return web.Response(status=204, headers=self._upload_headers(name, upload))

    async def upload_patch(self, request: web.Request, name: str, uuid: str) -> web.Response:
        await self.authorize(request, name, PUSH)
        upload = await self.run(self.store.get_upload, name, uuid)
        async with self._lock(upload):
            self._check_range(request, upload)
            await self.receive_upload(request, upload)
        return web.Response(status=202, headers=self._upload_headers(name, upload))

    async def upload_put(self, request: web.Request, name: str, uuid: str) -> web.Response:
        identity = await self.authorize(request, name, PUSH)
        upload = await self.run(self.store.get_upload, name, uuid)
        digest = request.query.get("digest")
        if not digest or not DIGEST_RE.match(digest):
            raise RegistryError(
                "DIGEST_INVALID", "a valid digest query parameter is required", detail={"digest": digest}
            )
        async with self._lock(upload):
            self._check_range(request, upload)
            await self.receive_upload(request, upload)
            await self.run(self.store.finish_upload, upload, digest)
        self._upload_locks.pop(uuid, None)
        self.notifier.emit(request, "push", name, digest=digest, size=upload.size, user=identity.user)
        return self._blob_created(name, digest)

    async def upload_delete(self, request: web.Request, name: str, uuid: str) -> web.Response:
        await self.authorize(request, name, PUSH)
        upload = await self.run(self.store.get_upload, name, uuid)
        async with self._lock(upload):
            await self.run(self.store.cancel_upload, upload)
        self._upload_locks.pop(uuid, None)
        return web.Response(status=204)

    # -- index features ---------------------------------------------------------------------------
    async def search(self, request: web.Request) -> web.Response:
        identity = await self.identify(request)
        query = (request.query.get("q") or "").strip().lower()
        try:
            n = max(1, min(100, int(request.query.get("n") or 25)))
            page = max(1, int(request.query.get("page") or 1))
        except ValueError:
            raise RegistryError("PAGINATION_NUMBER_INVALID") from None

        def collect() -> list[dict]:
            results = []
            for repo in self.store.repositories():
                meta = self.store.meta(repo)
                description = meta.get("description", "")
                if query and query not in repo.lower() and query not in description.lower():
                    continue
                if self.mode != "none" and not self.policy.allowed(identity.user, repo, PULL):
                    continue
                results.append(
                    {
                        "name": repo,
                        "description": description,
                        "star_count": 0,
                        "is_official": "/" not in repo,
                        "is_automated": False,
                    }
                )
            return results

        results = await asyncio.to_thread(collect)
        pages = max(1, (len(results) + n - 1) // n)
        return web.json_response(
            {
                "num_pages": pages,
                "num_results": len(results),
                "page": page,
                "page_size": n,
                "query": query,
                "results": results[(page - 1) * n : page * n],
            }
        )

    async def repository(self, request: web.Request) -> web.Response:
        name = request.match_info["name"].strip("/")
        if not valid_name(name):
            raise RegistryError("NAME_INVALID", detail={"name": name})
        if request.method == "GET":
            await self.authorize(request, name, PULL)
            if not await self.run(self.store.repo_exists, name):
                raise RegistryError("NAME_UNKNOWN", detail={"name": name})
            meta = await self.run(self.store.meta, name)
            tags = await self.run(self.store.tags, name, False)
            return web.json_response(
                {
                    "name": name,
                    "description": meta.get("description", ""),
                    "private": bool(meta.get("private", False)),
                    "owner": await self.run(self.policy.owner, name) or "",
                    "tags": tags,
                }
            )
        identity = await self.authorize(request, name, DELETE)
        if request.method in ("PUT", "PATCH"):
            try:
                changes = await request.json()
                if not isinstance(changes, dict):
                    raise ValueError
            except ValueError:
                raise RegistryError("UNSUPPORTED", "the body must be a JSON object", status=400) from None
            unknown = set(changes) - {"description", "private"}
            if unknown:
                raise RegistryError(
                    "UNSUPPORTED", f"unknown repository settings: {', '.join(sorted(unknown))}", status=400
                )
            meta = await self.run(self.store.meta, name)
            if "description" in changes:
                meta["description"] = str(changes["description"])[:1000]
            if "private" in changes:
                meta["private"] = bool(changes["private"])
            meta["updated_by"] = identity.user or ""
            await self.run(self.store.set_meta, name, meta)
            return web.json_response(
                {"name": name, "description": meta.get("description", ""), "private": bool(meta.get("private", False))}
            )
        if request.method == "DELETE":
            if self.proxy is not None or not self.config.delete_enabled:
                raise RegistryError("UNSUPPORTED", "deletion is disabled on this registry")
            if not await self.run(self.store.repo_exists, name):
                raise RegistryError("NAME_UNKNOWN", detail={"name": name})
            await self.run(self.store.delete_repository, name)
            self.notifier.emit(request, "delete", name, user=identity.user)
            return web.Response(status=202)
        raise RegistryError("UNSUPPORTED")

    # -- accounts ---------------------------------------------------------------------------------
    async def register(self, request: web.Request) -> web.Response:
        """``POST /v1/users/`` ``{"username", "password", "email"}``: the index API's registration."""
        if self.config.accounts.mode != "open":
            raise RegistryError("UNSUPPORTED", "this registry does not register accounts (accounts are closed)")
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError
        except ValueError:
            raise RegistryError("UNSUPPORTED", "the body must be a JSON object", status=400) from None
        unknown = set(body) - {"username", "password", "email"}
        if unknown:
            raise RegistryError("UNSUPPORTED", f"unknown fields: {', '.join(sorted(unknown))}", status=400)
        user, password, email = (str(body.get(k) or "") for k in ("username", "password", "email"))
        peer = self._peer(request)
        wait = self.registrations.retry_after("", peer)
        if wait > 0:
            raise RegistryError(
                "TOOMANYREQUESTS",
                "too many registrations from this address: try again later",
                headers={"Retry-After": str(int(wait) + 1)},
            )
        try:
            account, secret = await self.run(self.accounts.register, user, password, email)
        except AccountError as exc:
            existing = await self.run(self.accounts.get, user)
            if (
                existing is not None
                and not existing.active
                and email
                and await self.check_password(request, user, password)
            ):
                # an account registered without (or with a wrong) address: send the link (again)
                secret = await self.run(self.accounts.new_activation, user, email)
                await self._mail_activation(user, email, secret)
                return web.json_response({"status": f"Activation link sent to {email}"})
            raise RegistryError("UNSUPPORTED", str(exc), status=400) from None
        self.registrations.failed("", peer)  # counts registrations, not failures: a few per address and hour
        if email:
            await self._mail_activation(user, email, secret)
            status = "Account created. Please use the confirmation link we sent to your e-mail to activate it."
        else:
            status = (
                "Account created: it may pull now; to push, log in again with an e-mail address "
                "(dockyard login -e) and follow the link sent to it."
            )
        log.info("registered account %s (%s)", user, email or "no e-mail")
        return web.json_response({"status": status}, status=201)

    async def _mail_activation(self, user: str, email: str, secret: str) -> None:
        base = public_url(self.config) or f"http://{self.config.listen}"
        link = f"{base}/v1/activate/{user}/{secret}"
        text = (
            f"Hello {user},\n\nan account was registered with this address on the registry {base}.\n"
            f"Follow this link to activate it (you may then push to {user}/...):\n\n{link}\n\n"
            f"If you did not register, ignore this message.\n"
        )
        await asyncio.to_thread(self.mailer.send, email, "Activate your registry account", text)

    async def activate(self, request: web.Request) -> web.Response:
        user, secret = request.match_info["user"], request.match_info["secret"]
        if not await self.run(self.accounts.activate, user, secret):
            return web.Response(status=404, text="This activation link is not valid (or was used already).\n")
        log.info("account %s activated", user)
        return web.Response(text=f"Account {user} is active: you may push to {user}/...\n")


def ssl_context(config: RegistryConfig):
    if not config.tls_cert:
        return None
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(config.tls_cert), str(config.tls_key))
    return context


async def serve(config: RegistryConfig, stop: asyncio.Event | None = None, ready=None) -> None:
    registry = Registry(config)
    for warning in startup_warnings(config, registry.mode):
        log.warning("%s", warning)
    app = registry.make_app()
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    host, port = config.host_port
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context(config), reuse_address=True)
    await site.start()
    log.info(
        "registry listening on %s://%s (root %s, storage %s, auth %s%s)",
        "https" if config.tls_cert else "http",
        config.listen,
        config.root,
        registry.backend.name,
        registry.mode,
        f", pull-through cache of {config.proxy.remoteurl}" if config.proxy else "",
    )
    if ready is not None:
        ready()
    stop = stop or asyncio.Event()
    purge_at = time.monotonic() + 600
    try:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=60)
            except asyncio.TimeoutError:
                pass
            if time.monotonic() > purge_at:  # abandoned upload sessions (gc removes them sooner)
                try:
                    await asyncio.to_thread(registry.store.uploads.purge, time.time() - UPLOAD_MAX_AGE)
                except Exception:  # noqa: BLE001 - a storage hiccup must not stop the server
                    log.exception("purging old upload sessions failed")
                purge_at = time.monotonic() + 24 * 3600
    finally:
        await runner.cleanup()
        if registry.proxy is not None:
            registry.proxy.close()


def run_forever(config: RegistryConfig) -> None:
    """Serve until SIGINT or SIGTERM."""
    import signal

    # a client that leaves mid-transfer is an EPIPE on its connection, never the server's death
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(config, stop, ready=lambda: print(f"registry listening on {config.listen}", flush=True))

    asyncio.run(main())


__all__ = ["Registry", "serve", "run_forever", "ssl_context", "startup_warnings", "token_realm", "public_url"]
