"""``/images/...``: import (create from source), list, inspect, tag, delete, prune."""

from __future__ import annotations

import asyncio
import os
import tempfile
from typing import Annotated

import httpx
from aiohttp import web
from pydantic import Field

from dockyard import config_changes, platforms, reference
from dockyard.daemon.deps import engine as _engine
from dockyard.daemon.http import add_route, json_response, json_stream_response, stream_to_thread, write_message
from dockyard.daemon.params import Bool, FilterKeys, FiltersParam, Query, query
from dockyard.errors import DockyardError, InvalidParameter
from dockyard.filters import Filters
from dockyard.models.api import NoOp
from dockyard.models.container import ContainerConfig
from dockyard.models.image import ImageConfig

IMAGE_FILTERS = ("before", "dangling", "label", "reference", "since")
PRUNE_FILTERS = ("dangling", "label", "label!", "until")


class CreateImageQuery(Query):
    """``POST /images/create``: a pull (``fromImage``) or an import (``fromSrc``)."""

    from_image: str = Field(default="", alias="fromImage")
    from_src: str = Field(default="", alias="fromSrc")
    repo: str = ""
    tag: str = ""
    message: str = ""
    changes: list[str] = Field(default_factory=list)
    platform: str = ""


async def create(request: web.Request) -> web.StreamResponse:
    engine = _engine(request)
    q = query(request, CreateImageQuery)
    platforms.check(q.platform)
    source = q.from_src
    if not source:
        if q.from_image:
            from dockyard.daemon.routes import distribution

            return await distribution.pull(request, q.from_image, q.tag)
        raise InvalidParameter("fromSrc or fromImage must be given")
    repo = q.repo or None
    tag = q.tag or None
    if repo:  # a bad name is a 400 before the body is read, as in Docker
        repo, tag = reference.parse_repository_tag(repo, tag)
    message = q.message or ("" if source == "-" else f"Imported from {source}")
    changes = _changes(q.changes)

    def consume(body) -> str:
        return engine.images.import_tarball(body, repo, tag, message, changes)

    failure: Exception | None = None
    image_id = ""
    if source == "-":  # streamed: decompressed, hashed and kept as the body arrives
        try:
            image_id = await stream_to_thread(request, consume)
        except Exception as exc:  # noqa: BLE001 - reported in the stream, as Docker does
            failure = exc
    else:
        fd, tmp_name = tempfile.mkstemp(prefix="import-", dir=engine.data_root / "tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                await _download(source, out)
            try:
                with open(tmp_name, "rb") as raw:
                    image_id = await asyncio.to_thread(consume, raw)
            except Exception as exc:  # noqa: BLE001
                failure = exc
        finally:
            os.unlink(tmp_name)
    # the body is read: from here on errors go into the (already 200) JSON stream
    response = await json_stream_response(request)
    if failure is not None:
        text = failure.message if isinstance(failure, DockyardError) else f"internal error: {failure!r}"
        await write_message(response, {"errorDetail": {"message": text}, "error": text})
        return response
    await write_message(response, {"status": "sha256:" + image_id})
    return response


def _changes(changes: list[str]) -> ImageConfig | None:
    lines = [line for item in changes for line in item.splitlines()]
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


class ListImagesQuery(Query):
    all: Bool = False
    filters: Annotated[FiltersParam, FilterKeys(*IMAGE_FILTERS)] = Filters()
    digests: Annotated[Bool, NoOp("RepoDigests are always listed, as by Docker 20.10")] = False


async def list_images(request: web.Request) -> web.Response:
    q = query(request, ListImagesQuery)
    return json_response(await asyncio.to_thread(_engine(request).images.summaries, q.all, q.filters))


async def inspect(request: web.Request) -> web.Response:
    images = _engine(request).images
    # a worker: the store, and the config blob read from disk
    return json_response(await asyncio.to_thread(lambda: images.inspect(images.resolve(request.match_info["name"]))))


class TagQuery(Query):
    repo: str = ""
    tag: str = ""


async def tag(request: web.Request) -> web.Response:
    q = query(request, TagQuery)
    if not q.repo:
        raise InvalidParameter("repo must be given")
    await asyncio.to_thread(_engine(request).images.tag, request.match_info["name"], q.repo, q.tag or "latest")
    return web.Response(status=201)


class DeleteImageQuery(Query):
    force: Bool = False
    noprune: Bool = False


async def delete(request: web.Request) -> web.Response:
    q = query(request, DeleteImageQuery)
    result = await asyncio.to_thread(_engine(request).images.delete, request.match_info["name"], q.force, not q.noprune)
    return json_response(result)


class PruneImagesQuery(Query):
    filters: Annotated[FiltersParam, FilterKeys(*PRUNE_FILTERS)] = Filters()


async def prune(request: web.Request) -> web.Response:
    q = query(request, PruneImagesQuery)
    deleted, reclaimed = await asyncio.to_thread(_engine(request).images.prune, q.filters)
    return json_response({"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed})


def register(app: web.Application) -> None:
    add_route(app, "POST", "/images/create", create, query=CreateImageQuery, binary_body=True)
    add_route(app, "GET", "/images/json", list_images, query=ListImagesQuery)
    add_route(app, "POST", "/images/prune", prune, query=PruneImagesQuery)
    add_route(app, "GET", r"/images/{name:.+}/json", inspect)
    add_route(app, "POST", r"/images/{name:.+}/tag", tag, query=TagQuery)
    add_route(app, "DELETE", r"/images/{name:.+}", delete, query=DeleteImageQuery)
