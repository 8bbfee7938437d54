"""``/volumes``: list, create, inspect, remove, prune."""

from __future__ import annotations

import asyncio

from aiohttp import web

from dockyard.daemon.http import add_route, json_response, query_bool, read_json
from dockyard.engine import Engine


def _engine(request: web.Request) -> Engine:
    return request.app["engine"]


async def list_volumes(request: web.Request) -> web.Response:
    return json_response({"Volumes": await asyncio.to_thread(_engine(request).volumes.list), "Warnings": []})


async def create(request: web.Request) -> web.Response:
    body = await read_json(request)
    volume = await asyncio.to_thread(_engine(request).volumes.create, body.get("Name") or None, body.get("Labels"),
                                     body.get("DriverOpts"))
    return json_response(volume, status=201)


async def inspect(request: web.Request) -> web.Response:
    return json_response(await asyncio.to_thread(_engine(request).volumes.get, request.match_info["name"]))


async def remove(request: web.Request) -> web.Response:
    engine = _engine(request)
    name = request.match_info["name"]
    await asyncio.to_thread(engine.volumes.remove, name, engine.containers.volume_users(name),
                            query_bool(request, "force"))
    return web.Response(status=204)


async def prune(request: web.Request) -> web.Response:
    engine = _engine(request)
    deleted = []
    for volume in await asyncio.to_thread(engine.volumes.list):
        if not engine.containers.volume_users(volume["Name"]):
            await asyncio.to_thread(engine.volumes.remove, volume["Name"], [])
            deleted.append(volume["Name"])
    return json_response({"VolumesDeleted": deleted, "SpaceReclaimed": 0})


def register(app: web.Application) -> None:
    add_route(app, "GET", "/volumes", list_volumes)
    add_route(app, "POST", "/volumes/create", create)
    add_route(app, "POST", "/volumes/prune", prune)
    add_route(app, "GET", "/volumes/{name}", inspect)
    add_route(app, "DELETE", "/volumes/{name}", remove)
