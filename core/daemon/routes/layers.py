"""Image commands built on layers: diff, commit, export, history, save, load."""

from __future__ import annotations

import asyncio
import os
import tempfile

from aiohttp import web
from pydantic import Field

from dockyard import docker_archive
from dockyard.daemon.deps import engine as _engine
from dockyard.daemon.http import (
    add_route,
    json_response,
    json_stream_response,
    spool_from_thread,
    stream_file,
    stream_from_thread,
    write_message,
)
from dockyard.daemon.params import Bool, Query, optional_body, query
from dockyard.errors import DockyardError, InvalidParameter
from dockyard.models.container import ContainerConfig


async def changes(request: web.Request) -> web.Response:
    return json_response(await asyncio.to_thread(_engine(request).files.changes, request.match_info["id"]))


class CommitQuery(Query):
    container: str = ""
    repo: str = ""
    tag: str = ""
    comment: str = ""
    author: str = ""
    pause: Bool = True
    changes: list[str] = Field(default_factory=list)


async def commit(request: web.Request) -> web.Response:
    q = query(request, CommitQuery)
    if not q.container:
        raise InvalidParameter("container must be given")
    config = optional_body(request, ContainerConfig)
    changes_list = [line for item in q.changes for line in item.splitlines()]
    image_id = await _engine(request).containers.commit(
        q.container, config, q.repo or None, q.tag or None, q.comment, q.author, changes_list, pause=q.pause
    )
    return json_response({"Id": "sha256:" + image_id}, status=201)


async def export(request: web.Request) -> web.StreamResponse:
    engine, ref = _engine(request), request.match_info["id"]
    async with engine.containers.frozen(ref):
        produce = await asyncio.to_thread(engine.files.export, ref)
        # frozen (and locked) while the disk takes, not while the client does: it reads the spool after
        spool = await spool_from_thread(request, produce, engine.data_root / "tmp")
    if spool is None:
        return web.Response(status=499)  # the client left
    return await stream_file(request, spool, "application/octet-stream")


async def history(request: web.Request) -> web.Response:
    engine = _engine(request)
    image_id = await asyncio.to_thread(engine.images.resolve, request.match_info["name"])
    return json_response(await asyncio.to_thread(engine.images.history, image_id))


class SaveQuery(Query):
    names: list[str] = Field(default_factory=list)


async def save(request: web.Request) -> web.StreamResponse:
    """``GET /images/get?names=a&names=b`` and ``GET /images/{name}/get``: a ``docker save`` tar."""
    engine = _engine(request)
    names = [request.match_info["name"]] if "name" in request.match_info else query(request, SaveQuery).names
    if not names:
        raise InvalidParameter("names must be given")
    for name in names:
        await asyncio.to_thread(engine.images.resolve, name)  # 404 before the stream starts
    return await stream_from_thread(
        request, lambda out: docker_archive.save(engine.images, names, out), "application/x-tar"
    )


class LoadQuery(Query):
    #: progress is suppressed; the "Loaded image" lines come either way, as in Docker (and this
    #: daemon sends no progress bars)
    quiet: Bool = False


async def load(request: web.Request) -> web.StreamResponse:
    engine = _engine(request)
    fd, tmp_name = tempfile.mkstemp(prefix="load-", dir=engine.data_root / "tmp")
    try:
        with os.fdopen(fd, "w+b") as tmp:
            async for chunk in request.content.iter_chunked(1 << 20):
                await asyncio.to_thread(tmp.write, chunk)
            tmp.seek(0)
            response = await json_stream_response(request)
            try:
                lines = await asyncio.to_thread(docker_archive.load, engine.images, tmp)
            except Exception as exc:  # the 200 is sent: report inside the stream, as Docker does
                message = exc.message if isinstance(exc, DockyardError) else f"internal error: {exc!r}"
                await write_message(response, {"errorDetail": {"message": message}, "error": message})
                return response
        for line in lines:
            await write_message(response, {"stream": line + "\n"})
        return response
    finally:
        os.unlink(tmp_name)


def register(app: web.Application) -> None:
    add_route(app, "GET", "/containers/{id}/changes", changes)
    add_route(app, "GET", "/containers/{id}/export", export)
    add_route(app, "POST", "/commit", commit, query=CommitQuery, body=ContainerConfig, optional_body=True)
    add_route(app, "GET", "/images/get", save, query=SaveQuery)
    add_route(app, "POST", "/images/load", load, query=LoadQuery, binary_body=True)
    add_route(app, "GET", r"/images/{name:.+}/history", history)
    add_route(app, "GET", r"/images/{name:.+}/get", save)
