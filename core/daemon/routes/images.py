"""``/images/...``: import (create from source), list, inspect, tag, delete."""

from __future__ import annotations

import asyncio
import os
import tempfile

import httpx
from aiohttp import web

from dockyard import config_changes
from dockyard.daemon.deps import engine as _engine
from dockyard.daemon.http import (add_route, json_response, json_stream_response, query_bool, query_filters,
                                  write_message)
from dockyard.errors import DockyardError, InvalidParameter
from dockyard.models.container import ContainerConfig
from dockyard.models.image import ImageConfig


async def create(request: web.Request) -> web.StreamResponse:
    engine = _engine(request)
    source = request.query.get("fromSrc")
    if not source:
        if request.query.get("fromImage"):
            from dockyard.daemon.routes import distribution

            return await distribution.pull(request)
        raise InvalidParameter("fromSrc or fromImage must be given")
    repo = request.query.get("repo") or None
    tag = request.query.get("tag") or None
    if repo and tag is None and ":" in repo.rsplit("/", 1)[-1]:
        repo, tag = repo.rsplit(":", 1)
    tmp_dir = engine.data_root / "tmp"
    fd, tmp_name = tempfile.mkstemp(prefix="import-", dir=tmp_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            if source == "-":
                async for chunk in request.content.iter_chunked(1 << 20):
                    await asyncio.to_thread(out.write, chunk)
            else:
                await _download(source, out)
        # the body is read: from here on errors go into the (already 200) JSON stream
        response = await json_stream_response(request)
        try:
            with open(tmp_name, "rb") as raw:
                image_id = await asyncio.to_thread(engine.images.import_tarball, raw, repo, tag,
                                                   request.query.get("message") or
                                                   ("" if source == "-" else f"Imported from {source}"),
                                                   _changes(request))
        except Exception as exc:  # the 200 is sent: report inside the stream, as Docker does
            message = exc.message if isinstance(exc, DockyardError) else f"internal error: {exc!r}"
            await write_message(response, {"errorDetail": {"message": message}, "error": message})
            return response
        await write_message(response, {"status": "sha256:" + image_id})
        return response
    finally:
        os.unlink(tmp_name)


def _changes(request: web.Request) -> ImageConfig | None:
    lines = [line for item in request.query.getall("changes", []) for line in item.splitlines()]
    if not lines:
        return None
    return ImageConfig(config=config_changes.apply(ContainerConfig(), lines))


async def _download(url: str, out) -> None:
    if not url.startswith(("http://", "https://")):
        raise InvalidParameter(f"import source must be '-' or an http(s) URL, not {url!r}")
    try:
        async with httpx.AsyncClient(follow_redirects=True, timeout=60) as client:
            async with client.stream("GET", url) as resp:
                if resp.status_code != 200:
                    raise InvalidParameter(f"cannot download {url}: HTTP {resp.status_code}")
                async for chunk in resp.aiter_bytes(1 << 20):
                    await asyncio.to_thread(out.write, chunk)
    except httpx.HTTPError as exc:
        raise InvalidParameter(f"cannot download {url}: {exc}") from None


async def list_images(request: web.Request) -> web.Response:
    filters = query_filters(request)
    reference = (filters.get("reference") or [None])[0] or request.query.get("filter")
    return json_response(await asyncio.to_thread(_engine(request).images.summaries, query_bool(request, "all"),
                                                 reference))


async def inspect(request: web.Request) -> web.Response:
    images = _engine(request).images
    # a worker: the store, and the config blob read from disk
    return json_response(await asyncio.to_thread(lambda: images.inspect(images.resolve(request.match_info["name"]))))


async def tag(request: web.Request) -> web.Response:
    repo = request.query.get("repo")
    if not repo:
        raise InvalidParameter("repo must be given")
    await asyncio.to_thread(_engine(request).images.tag, request.match_info["name"], repo,
                            request.query.get("tag") or "latest")
    return web.Response(status=201)


async def delete(request: web.Request) -> web.Response:
    result = await asyncio.to_thread(_engine(request).images.delete, request.match_info["name"],
                                     query_bool(request, "force"), not query_bool(request, "noprune"))
    return json_response(result)


def register(app: web.Application) -> None:
    add_route(app, "POST", "/images/create", create)
    add_route(app, "GET", "/images/json", list_images)
    add_route(app, "GET", r"/images/{name:.+}/json", inspect)
    add_route(app, "POST", r"/images/{name:.+}/tag", tag)
    add_route(app, "DELETE", r"/images/{name:.+}", delete)
