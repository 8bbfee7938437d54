"""``/volumes``: list, create, inspect, remove, prune."""

from __future__ import annotations

import asyncio

from aiohttp import web

from dockyard.daemon.deps import engine
from dockyard.daemon.http import add_route, json_response, query_bool, read_json


async def list_volumes(request: web.Request) -> web.Response:
    return json_response({"Volumes": await asyncio.to_thread(engine(request).volumes.list), "Warnings": []})


async def create(request: web.Request) -> web.Response:
    body = await read_json(request)
    volume = await asyncio.to_thread(engine(request).volumes.create, body.get("Name") or None, body.get("Labels"),
                                     body.get("DriverOpts"))
    return json_response(volume, status=201)


async def inspect(request: web.Request) -> web.Response:
    return json_response(await asyncio.to_thread(engine(request).volumes.get, request.match_info["name"]))


async def remove(request: web.Request) -> web.Response:
    await asyncio.to_thread(engine(request).volumes.remove, request.match_info["name"], query_bool(request, "force"))
    return web.Response(status=204)


async def prune(request: web.Request) -> web.Response:
    deleted = await asyncio.to_thread(engine(request).volumes.prune)
    return json_response({"VolumesDeleted": deleted, "SpaceReclaimed": 0})


def register(app: web.Application) -> None:
    add_route(app, "GET", "/volumes", list_volumes)
    add_route(app, "POST", "/volumes/create", create)
    add_route(app, "POST", "/volumes/prune", prune)
    add_route(app, "GET", "/volumes/{name}", inspect)
    add_route(app, "DELETE", "/volumes/{name}", remove)
