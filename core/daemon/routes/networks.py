"""``/networks`` endpoints (Engine API v1.41): list, inspect, create, remove,
connect, disconnect, prune.

The predefined ``host`` and ``none`` networks are synthesised here; ``bridge``
and user networks come from the network driver through the façade methods
proposed in plugins/net_bridge/INTEGRATION.md (``engine.network.list()`` ...).
A driver without user networks answers 501 through the façade's NotSupportedByDriver.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime, timezone

from aiohttp import web

from dockyard.daemon.http import add_route, json_response, query_filters, read_json
from dockyard.engine import Engine
from dockyard.errors import Forbidden, InvalidParameter, NotFound, NotSupportedByDriver


#: when the daemon started: the Created of the predefined host and none networks (the docker CLI
#: parses Created in `network ls` and fails on "")
STARTED = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


def _pseudo(name: str, driver: str) -> dict:
    return {"Name": name, "Id": hashlib.sha256(f"dockyard-{name}".encode()).hexdigest(), "Created": STARTED,
            "Scope": "local", "Driver": driver, "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": None, "Config": []}, "Internal": False, "Attachable": False,
            "Ingress": False, "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Containers": {},
            "Options": {}, "Labels": {}}


PSEUDO = [_pseudo("host", "host"), _pseudo("none", "null")]


async def _all(engine: Engine) -> list[dict]:
    try:
        driver_networks = await asyncio.to_thread(engine.network.list)
    except NotSupportedByDriver:
        driver_networks = []
    return list(driver_networks) + PSEUDO


def _match(net: dict, filters: dict[str, list[str]]) -> bool:
    for key, values in filters.items():
        if not values:
            continue
        if key == "name" and not any(v in net["Name"] for v in values):
            return False
        if key == "id" and not any(net["Id"].startswith(v) for v in values):
            return False
        if key == "driver" and net["Driver"] not in values:
            return False
        if key == "type" and ("builtin" if net["Name"] in ("bridge", "host", "none") else "custom") not in values:
            return False
        if key == "label":
            labels = net.get("Labels") or {}
            for v in values:
                k, _, val = v.partition("=")
                if k not in labels or (val and labels[k] != val):
                    return False
    return True


async def _find(engine: Engine, ref: str) -> dict:
    nets = await _all(engine)
    for key in ("Name", "Id"):
        for net in nets:
            if net[key] == ref:
                return net
    matches = [n for n in nets if n["Id"].startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    raise NotFound(f"network {ref} not found")


async def list_networks(request: web.Request) -> web.Response:
    engine: Engine = request.app["engine"]
    filters = query_filters(request)
    return json_response([n for n in await _all(engine) if _match(n, filters)])


async def inspect_network(request: web.Request) -> web.Response:
    engine: Engine = request.app["engine"]
    return json_response(await _find(engine, request.match_info["id"]))


async def create_network(request: web.Request) -> web.Response:
    engine: Engine = request.app["engine"]
    body = await read_json(request)
    name = body.get("Name") or ""
    if not name:
        raise InvalidParameter("network name must be given")
    driver = body.get("Driver") or "bridge"
    if driver != "bridge":
        raise InvalidParameter(f"plugin \"{driver}\" not found")
    if name in ("host", "none", "bridge"):
        raise Forbidden(f"{name} is a pre-defined network and cannot be created")
    if body.get("CheckDuplicate", True) is False:
        pass
    created = await asyncio.to_thread(engine.network.create, name, body)
    return json_response({"Id": created["Id"], "Warning": ""}, 201)


async def remove_network(request: web.Request) -> web.Response:
    engine: Engine = request.app["engine"]
    net = await _find(engine, request.match_info["id"])
    if net["Name"] in ("host", "none", "bridge"):
        raise Forbidden(f"{net['Name']} is a pre-defined network and cannot be removed")
    await asyncio.to_thread(engine.network.delete, net["Name"])
    return web.Response(status=204)


async def connect(request: web.Request) -> web.Response:
    engine: Engine = request.app["engine"]
    net = await _find(engine, request.match_info["id"])
    body = await read_json(request)
    c = engine.containers.get(body.get("Container") or "")
    aliases = list(((body.get("EndpointConfig") or {}).get("Aliases")) or [])
    await asyncio.to_thread(engine.network.connect, c.id, net["Name"], aliases)
    return web.Response(status=200)


async def disconnect(request: web.Request) -> web.Response:
    engine: Engine = request.app["engine"]
    net = await _find(engine, request.match_info["id"])
    body = await read_json(request)
    c = engine.containers.get(body.get("Container") or "")
    await asyncio.to_thread(engine.network.disconnect, c.id, net["Name"])
    return web.Response(status=200)


async def prune(request: web.Request) -> web.Response:
    engine: Engine = request.app["engine"]
    deleted = []
    for net in await _all(engine):
        if net["Name"] in ("host", "none", "bridge") or net["Containers"]:
            continue
        await asyncio.to_thread(engine.network.delete, net["Name"])
        deleted.append(net["Name"])
    return json_response({"NetworksDeleted": deleted})


def register(app: web.Application) -> None:
    add_route(app, "GET", "/networks", list_networks)
    add_route(app, "POST", "/networks/create", create_network)
    add_route(app, "POST", "/networks/prune", prune)
    add_route(app, "GET", "/networks/{id}", inspect_network)
    add_route(app, "DELETE", "/networks/{id}", remove_network)
    add_route(app, "POST", "/networks/{id}/connect", connect)
    add_route(app, "POST", "/networks/{id}/disconnect", disconnect)
