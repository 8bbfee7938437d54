"""``/networks``: list, inspect, create, remove, connect, disconnect, prune (over :mod:`dockyard.networks`)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from dockyard.daemon.deps import engine
from dockyard.daemon.http import add_route, json_response, query_filters, read_json


async def list_networks(request: web.Request) -> web.Response:
    return json_response(await asyncio.to_thread(engine(request).networks.list, query_filters(request)))


async def inspect_network(request: web.Request) -> web.Response:
    return json_response(await asyncio.to_thread(engine(request).networks.inspect, request.match_info["id"]))


async def create_network(request: web.Request) -> web.Response:
    body = await read_json(request)
    created = await asyncio.to_thread(engine(request).networks.create, body.get("Name") or "", body)
    return json_response({"Id": created["Id"], "Warning": ""}, 201)


async def remove_network(request: web.Request) -> web.Response:
    await asyncio.to_thread(engine(request).networks.remove, request.match_info["id"])
    return web.Response(status=204)


async def connect(request: web.Request) -> web.Response:
    body = await read_json(request)
    aliases = list(((body.get("EndpointConfig") or {}).get("Aliases")) or [])
    await asyncio.to_thread(engine(request).networks.connect, request.match_info["id"], body.get("Container") or "",
                            aliases)
    return web.Response(status=200)


async def disconnect(request: web.Request) -> web.Response:
    body = await read_json(request)
    await asyncio.to_thread(engine(request).networks.disconnect, request.match_info["id"],
                            body.get("Container") or "")
    return web.Response(status=200)


async def prune(request: web.Request) -> web.Response:
    return json_response({"NetworksDeleted": await asyncio.to_thread(engine(request).networks.prune)})


def register(app: web.Application) -> None:
    add_route(app, "GET", "/networks", list_networks)
    add_route(app, "POST", "/networks/create", create_network)
    add_route(app, "POST", "/networks/prune", prune)
    add_route(app, "GET", "/networks/{id}", inspect_network)
    add_route(app, "DELETE", "/networks/{id}", remove_network)
    add_route(app, "POST", "/networks/{id}/connect", connect)
    add_route(app, "POST", "/networks/{id}/disconnect", disconnect)
