"""The registry's HTTP API: OCI Distribution / Docker Registry HTTP API v2, a
token endpoint, ``/v1/search`` and repository settings (aiohttp).

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
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from datetime import datetime, timezone
from urllib.parse import urlencode

from aiohttp import web

from dockyard.oci import DIGEST_RE, valid_name
from .auth import DELETE, PULL, PUSH, Identity, Policy, TokenError, Tokens, Users, parse_basic, parse_scope
from .config import RegistryConfig
from .errors import RegistryError
from .storage import make_backend
from .store import RegistryStore, Upload, UploadWriter

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


class Registry:
    def __init__(self, config: RegistryConfig) -> None:
        self.config = config
        config.root.mkdir(parents=True, exist_ok=True)
        backend = make_backend(config.storage, config.root)
        self.store = RegistryStore(backend, config.root, config.delete_enabled)
        self.blocking = backend.blocking
        self.mode = config.auth_mode
        self.users = Users(config.users, config.admins)
        self.policy = Policy(self.users, self.store)
        self.tokens = Tokens(Tokens.load_secret(config.root / "token-secret"), config.issuer, config.service,
                             config.token_ttl)
        self._upload_locks: dict[str, asyncio.Lock] = {}

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
        app.router.add_route("GET", "/", self.root)
        return app

    @web.middleware
    async def middleware(self, request: web.Request, handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except RegistryError as exc:
            response = web.Response(status=exc.status, body=exc.body() if request.method != "HEAD" else None,
                                    headers={"Content-Type": "application/json; charset=utf-8",
                                             **{k: v for k, v in exc.headers.items() if k != "Content-Length"}})
        except web.HTTPException as exc:
            if exc.status == 404 and request.path.startswith("/v2"):
                response = web.Response(status=404, body=RegistryError("NAME_UNKNOWN").body(),
                                        headers={"Content-Type": "application/json; charset=utf-8"})
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
            match = pattern.match(tail)
            if match:
                params = match.groupdict()
                name = params.pop("name")
                if not valid_name(name):
                    raise RegistryError("NAME_INVALID", detail={"name": name})
                handler = getattr(self, f"{kind}_{request.method.lower()}", None)
                if handler is None:
                    raise RegistryError("UNSUPPORTED", f"{request.method} is not supported here")
                return await handler(request, name, **params)
        raise RegistryError("NAME_UNKNOWN", "unknown path", detail={"path": request.path})

    # -- authentication ---------------------------------------------------------------------------
    def _realm(self, request: web.Request) -> str:
        if self.config.realm:
            return self.config.realm
        scheme = "https" if request.secure else "http"
        return f"{scheme}://{request.host}/token"

    def challenge(self, request: web.Request, scope: str | None = None, error: str | None = None,
                  code: str = "UNAUTHORIZED", message: str | None = None, detail=None) -> RegistryError:
        if self.mode == "token":
            value = f'Bearer realm="{self._realm(request)}",service="{self.config.service}"'
            if scope:
                value += f',scope="{scope}"'
            if error:
                value += f',error="{error}"'
        else:
            value = 'Basic realm="dockyard-registry"'
        return RegistryError(code, message, detail=detail, status=401, headers={"WWW-Authenticate": value})

    async def identify(self, request: web.Request) -> Identity:
        if self.mode == "none":
            return Identity(None, admin=True)
        header = request.headers.get("Authorization", "")
        basic = parse_basic(header)
        if basic is not None:
            user, password = basic
            ok = await asyncio.to_thread(self.users.verify, user, password)
            if not ok:
                raise self.challenge(request, message="incorrect username or password")
            return Identity(user, self.users.is_admin(user))
        if header.lower().startswith("bearer ") and self.mode == "token":
            try:
                claims = self.tokens.verify(header[7:].strip())
            except TokenError as exc:
                raise self.challenge(request, error="invalid_token", message=f"authentication required: {exc}") \
                    from None
            user = claims.get("sub") or None
            return Identity(user, self.users.is_admin(user), access=claims.get("access") or [])
        return Identity(None)

    async def authorize(self, request: web.Request, name: str, *actions: str) -> Identity:
        identity = await self.identify(request)
        if self.mode == "none":
            return identity
        scope = f"repository:{name}:{','.join(sorted(set(actions) | ({PULL} if PUSH in actions else set())))}"
        for action in actions:
            if identity.access is not None:
                granted = any(a.get("type") == "repository" and a.get("name") == name
                              and (action in a.get("actions", []) or "*" in a.get("actions", []))
                              for a in identity.access)
                if granted:
                    continue
                if self.policy.allowed(identity.user, name, action):
                    raise self.challenge(request, scope, error="insufficient_scope",
                                         detail=[{"Type": "repository", "Name": name, "Action": action}])
            elif self.policy.allowed(identity.user, name, action):
                continue
            if identity.user is None:
                raise self.challenge(request, scope,
                                     detail=[{"Type": "repository", "Name": name, "Action": action}])
            raise RegistryError("DENIED", detail=[{"Type": "repository", "Name": name, "Action": action}])
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
            if not await asyncio.to_thread(self.users.verify, user, password):
                raise RegistryError("UNAUTHORIZED", "incorrect username or password")
            scopes = str(form.get("scope", "")).split()
        else:
            basic = parse_basic(request.headers.get("Authorization"))
            if basic is not None:
                user, password = basic
                if not await asyncio.to_thread(self.users.verify, user, password):
                    raise RegistryError("UNAUTHORIZED", "incorrect username or password",
                                        headers={"WWW-Authenticate": 'Basic realm="dockyard-registry"'})
            scopes = [s for item in query.getall("scope", []) for s in item.split()]
        access = []
        for scope in scopes:
            parsed = parse_scope(scope)
            if parsed is None:
                continue
            kind, name, actions = parsed
            if kind == "repository" and valid_name(name):
                granted = self.policy.grant(user, name, actions)
                access.append({"type": "repository", "name": name, "actions": granted})
            elif kind == "registry" and name == "catalog":
                access.append({"type": "registry", "name": "catalog",
                               "actions": actions if self.users.is_admin(user) else []})
        token, claims = self.tokens.issue(user or "", access)
        issued = datetime.fromtimestamp(claims["iat"], timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
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
            repos = [r for r in repos if self.policy.allowed(identity.user, r, PULL)]
        return self._page(request, repos, "/v2/_catalog", "repositories", {})

    async def tags_get(self, request: web.Request, name: str) -> web.Response:
        await self.authorize(request, name, PULL)
        tags = await self.run(self.store.tags, name)
        return self._page(request, tags, f"/v2/{name}/tags/list", "tags", {"name": name})

    # -- manifests --------------------------------------------------------------------------------
    async def manifest_get(self, request: web.Request, name: str, reference: str) -> web.Response:
        await self.authorize(request, name, PULL)
        body, media_type, digest = await self.run(self.store.get_manifest, name, reference)
        headers = {"Content-Type": media_type, "Docker-Content-Digest": digest, "ETag": f'"{digest}"'}
        if request.headers.get("If-None-Match", "").strip('" ') == digest:
            return web.Response(status=304, headers=headers)
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(body))
            return web.Response(headers=headers)
        return web.Response(body=body, headers=headers)

    manifest_head = manifest_get

    async def manifest_put(self, request: web.Request, name: str, reference: str) -> web.Response:
        await self.authorize(request, name, PUSH)
        body = await request.read()
        digest = await self.run(self.store.put_manifest, name, reference, body, request.headers.get("Content-Type"))
        log.info("manifest %s:%s -> %s", name, reference, digest)
        return web.Response(status=201, headers={"Location": f"/v2/{name}/manifests/{digest}",
                                                 "Docker-Content-Digest": digest, "Content-Length": "0"})

    async def manifest_delete(self, request: web.Request, name: str, reference: str) -> web.Response:
        await self.authorize(request, name, DELETE)
        if not self.config.delete_enabled:
            raise RegistryError("UNSUPPORTED", "deletion is disabled on this registry")
        await self.run(self.store.delete_manifest, name, reference)
        return web.Response(status=202, headers={"Content-Length": "0"})

    # -- blobs ------------------------------------------------------------------------------------
    async def blob_get(self, request: web.Request, name: str, digest: str) -> web.StreamResponse:
        await self.authorize(request, name, PULL)
        if not DIGEST_RE.match(digest):
            raise RegistryError("DIGEST_INVALID", detail={"digest": digest})
        size = await self.run(self.store.repo_blob_size, name, digest)
        headers = {"Docker-Content-Digest": digest, "Content-Type": "application/octet-stream",
                   "ETag": f'"{digest}"', "Accept-Ranges": "bytes", "Cache-Control": "max-age=31536000"}
        if request.method == "HEAD":
            headers["Content-Length"] = str(size)
            return web.Response(headers=headers)
        if request.headers.get("If-None-Match", "").strip('" ') == digest:
            return web.Response(status=304, headers=headers)
        key = self.store.blob_key(digest)
        path = self.store.backend.local_path(key)
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
        chunks = await asyncio.to_thread(self.store.backend.read_range, key, start, end)
        while True:
            data = await asyncio.to_thread(next, chunks, None)
            if data is None:
                break
            await response.write(data)
        await response.write_eof()
        return response

    blob_head = blob_get

    async def blob_delete(self, request: web.Request, name: str, digest: str) -> web.Response:
        await self.authorize(request, name, DELETE)
        if not self.config.delete_enabled:
            raise RegistryError("UNSUPPORTED", "deletion is disabled on this registry")
        if not DIGEST_RE.match(digest):
            raise RegistryError("DIGEST_INVALID", detail={"digest": digest})
        await self.run(self.store.unlink_blob, name, digest)
        return web.Response(status=202, headers={"Content-Length": "0"})

    # -- uploads ----------------------------------------------------------------------------------
    @staticmethod
    def _upload_headers(name: str, upload: Upload) -> dict[str, str]:
        size = upload.size()
        return {"Location": f"/v2/{name}/blobs/uploads/{upload.uuid}", "Range": f"0-{max(size - 1, 0)}",
                "Docker-Upload-UUID": upload.uuid, "Content-Length": "0"}

    def _lock(self, upload: Upload) -> asyncio.Lock:
        lock = self._upload_locks.get(upload.uuid)
        if lock is None:
            lock = self._upload_locks[upload.uuid] = asyncio.Lock()
        return lock

    async def _receive(self, request: web.Request, upload: Upload) -> int:
        """Append the request body to an upload, hashing as it arrives (network and disk overlap)."""
        if request.content_length == 0 or (request.content_length is None and not request.body_exists):
            return 0
        writer = await asyncio.to_thread(UploadWriter, upload)
        pending: asyncio.Future | None = None
        buffer = bytearray()
        try:
            content = request.content
            while True:
                chunk = await content.readany()
                if not chunk:
                    break
                buffer += chunk
                if len(buffer) >= RECEIVE_CHUNK:
                    if pending is not None:
                        await pending
                    pending = asyncio.ensure_future(asyncio.to_thread(writer.write, bytes(buffer)))
                    buffer.clear()
            if pending is not None:
                await pending
                pending = None
            if buffer:
                await asyncio.to_thread(writer.write, bytes(buffer))
        finally:
            if pending is not None:
                await asyncio.gather(pending, return_exceptions=True)
            writer.close()
        if request.content_length is not None and writer.written != request.content_length:
            raise RegistryError("SIZE_INVALID", detail={"expected": request.content_length,
                                                        "received": writer.written})
        return writer.written

    def _check_range(self, request: web.Request, upload: Upload) -> None:
        header = request.headers.get("Content-Range")
        if not header:
            return
        match = re.match(r"^(?:bytes[ =])?(\d+)-(\d+)(?:/\S+)?$", header.strip())
        size = upload.size()
        if not match:
            raise RegistryError("RANGE_INVALID", status=416, headers=self._upload_headers(upload.name, upload))
        start, end = int(match.group(1)), int(match.group(2))
        length = request.content_length
        if start != size or end < start or (length is not None and end - start + 1 != length):
            raise RegistryError("RANGE_INVALID", f"content range {header} does not continue the upload at {size}",
                                status=416, headers=self._upload_headers(upload.name, upload))

    async def uploads_post(self, request: web.Request, name: str) -> web.Response:
        identity = await self.authorize(request, name, PUSH, PULL)
        mount, source = request.query.get("mount"), request.query.get("from")
        if mount and source and DIGEST_RE.match(mount) and valid_name(source):
            if await self._may_pull(identity, source):
                if await self.run(self.store.mount_blob, name, source, mount):
                    return web.Response(status=201, headers={"Location": f"/v2/{name}/blobs/{mount}",
                                                             "Docker-Content-Digest": mount, "Content-Length": "0"})
        upload = await asyncio.to_thread(self.store.start_upload, name)
        digest = request.query.get("digest")
        if digest:
            try:
                await self._receive(request, upload)
                await self.run(self.store.finish_upload, upload, digest)
            except BaseException:
                await asyncio.to_thread(self.store.cancel_upload, upload)
                raise
            return web.Response(status=201, headers={"Location": f"/v2/{name}/blobs/{digest}",
                                                     "Docker-Content-Digest": digest, "Content-Length": "0"})
        return web.Response(status=202, headers=self._upload_headers(name, upload))

    async def _may_pull(self, identity: Identity, source: str) -> bool:
        return self.mode == "none" or await self.run(self.policy.allowed, identity.user, source, PULL)

    async def upload_get(self, request: web.Request, name: str, uuid: str) -> web.Response:
        await self.authorize(request, name, PUSH)
        upload = self.store.get_upload(name, uuid)
        return web.Response(status=204, headers=self._upload_headers(name, upload))

    async def upload_patch(self, request: web.Request, name: str, uuid: str) -> web.Response:
        await self.authorize(request, name, PUSH)
        upload = self.store.get_upload(name, uuid)
        async with self._lock(upload):
            self._check_range(request, upload)
            await self._receive(request, upload)
        return web.Response(status=202, headers=self._upload_headers(name, upload))

    async def upload_put(self, request: web.Request, name: str, uuid: str) -> web.Response:
        await self.authorize(request, name, PUSH)
        upload = self.store.get_upload(name, uuid)
        digest = request.query.get("digest")
        if not digest or not DIGEST_RE.match(digest):
            raise RegistryError("DIGEST_INVALID", "a valid digest query parameter is required",
                                detail={"digest": digest})
        async with self._lock(upload):
            self._check_range(request, upload)
            await self._receive(request, upload)
            await self.run(self.store.finish_upload, upload, digest)
        self._upload_locks.pop(uuid, None)
        return web.Response(status=201, headers={"Location": f"/v2/{name}/blobs/{digest}",
                                                 "Docker-Content-Digest": digest, "Content-Length": "0"})

    async def upload_delete(self, request: web.Request, name: str, uuid: str) -> web.Response:
        await self.authorize(request, name, PUSH)
        upload = self.store.get_upload(name, uuid)
        async with self._lock(upload):
            await asyncio.to_thread(self.store.cancel_upload, upload)
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
                results.append({"name": repo, "description": description, "star_count": 0,
                                "is_official": "/" not in repo, "is_automated": False})
            return results

        results = await asyncio.to_thread(collect)
        pages = max(1, (len(results) + n - 1) // n)
        return web.json_response({"num_pages": pages, "num_results": len(results), "page": page, "page_size": n,
                                  "query": query, "results": results[(page - 1) * n: page * n]})

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
            return web.json_response({"name": name, "description": meta.get("description", ""),
                                      "private": bool(meta.get("private", False)),
                                      "owner": self.policy.owner(name) or "", "tags": tags})
        identity = await self.authorize(request, name, DELETE)
        if request.method in ("PUT", "PATCH"):
            try:
                changes = await request.json()
                if not isinstance(changes, dict):
                    raise ValueError
            except ValueError:
                raise RegistryError("UNSUPPORTED", "the body must be a JSON object", status=400) from None
            meta = await self.run(self.store.meta, name)
            if "description" in changes:
                meta["description"] = str(changes["description"])[:1000]
            if "private" in changes:
                meta["private"] = bool(changes["private"])
            meta["updated_by"] = identity.user or ""
            await self.run(self.store.set_meta, name, meta)
            return web.json_response({"name": name, "description": meta.get("description", ""),
                                      "private": bool(meta.get("private", False))})
        if request.method == "DELETE":
            if not self.config.delete_enabled:
                raise RegistryError("UNSUPPORTED", "deletion is disabled on this registry")
            if not await self.run(self.store.repo_exists, name):
                raise RegistryError("NAME_UNKNOWN", detail={"name": name})
            await self.run(self.store.delete_repository, name)
            return web.Response(status=202)
        raise RegistryError("UNSUPPORTED")


def ssl_context(config: RegistryConfig):
    if not config.tls_cert:
        return None
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(config.tls_cert), str(config.tls_key))
    return context


async def serve(config: RegistryConfig, stop: asyncio.Event | None = None, ready=None) -> None:
    registry = Registry(config)
    app = registry.make_app()
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    host, port = config.host_port
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context(config), reuse_address=True)
    await site.start()
    log.info("registry listening on %s://%s (root %s, storage %s, auth %s)",
             "https" if config.tls_cert else "http", config.listen, config.root,
             registry.store.backend.name, config.auth_mode)
    if ready is not None:
        ready()
    stop = stop or asyncio.Event()
    purge_at = time.monotonic() + 3600
    try:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=60)
            except asyncio.TimeoutError:
                pass
            if time.monotonic() > purge_at:
                await asyncio.to_thread(registry.store.purge_uploads)
                purge_at = time.monotonic() + 3600
    finally:
        await runner.cleanup()


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


__all__ = ["Registry", "serve", "run_forever", "ssl_context"]
