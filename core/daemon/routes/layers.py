"""Image commands built on layers: diff, commit, export, history, save, load."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile

from aiohttp import web

from dockyard import archive, docker_archive
from dockyard.daemon.http import add_route, json_response, json_stream_response, stream_from_thread, write_message
from dockyard.engine import Engine
from dockyard.errors import DockyardError, InvalidParameter


def _engine(request: web.Request) -> Engine:
    return request.app["engine"]


async def changes(request: web.Request) -> web.Response:
    engine = _engine(request)
    c = engine.containers.get(request.match_info["id"])
    found = await asyncio.to_thread(engine.storage.changes, c.id)
    return json_response([{"Path": ch.path, "Kind": ch.kind} for ch in found] or None)


async def commit(request: web.Request) -> web.Response:
    engine = _engine(request)
    ref = request.query.get("container")
    if not ref:
        raise InvalidParameter("container must be given")
    c = engine.containers.get(ref)
    body = await request.read()
    config = c.config
    if body.strip():
        from dockyard.models.container import ContainerConfig

        config = ContainerConfig.model_validate_json(body)
    changes_list = request.query.getall("changes", [])
    changes_list = [line for item in changes_list for line in item.splitlines()]
    created_by = " ".join([c.path, *c.args])
    image_id = await asyncio.to_thread(
        engine.images.commit, c.id, c.image_id, config, created_by, request.query.get("repo") or None,
        request.query.get("tag") or None, request.query.get("comment", ""), request.query.get("author", ""),
        changes_list)
    engine.events.emit("container", "commit", c.id, {"name": c.name, "image": c.image_ref})
    return json_response({"Id": "sha256:" + image_id}, status=201)


async def export(request: web.Request) -> web.StreamResponse:
    engine = _engine(request)
    c = engine.containers.get(request.match_info["id"])

    def produce(out) -> None:
        root = engine.storage.mount(c.id)
        try:
            stream = archive.export_tree(root)
            with stream:
                shutil.copyfileobj(stream, out, 1 << 20)
        finally:
            engine.storage.unmount(c.id)

    return await stream_from_thread(request, produce, "application/octet-stream")


async def history(request: web.Request) -> web.Response:
    engine = _engine(request)
    image_id = await asyncio.to_thread(engine.images.resolve, request.match_info["name"])
    return json_response(await asyncio.to_thread(engine.images.history, image_id))


async def save(request: web.Request) -> web.StreamResponse:
    engine = _engine(request)
    names = request.query.getall("names", [])
    if not names:
        raise InvalidParameter("names must be given")
    for name in names:
        await asyncio.to_thread(engine.images.resolve, name)  # 404 before the stream starts
    return await stream_from_thread(request, lambda out: docker_archive.save(engine.images, names, out),
                                     "application/x-tar")


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
    add_route(app, "POST", "/commit", commit)
    add_route(app, "GET", "/images/get", save)
    add_route(app, "POST", "/images/load", load)
    add_route(app, "GET", r"/images/{name:.+}/history", history)

