"""``/_ping``, ``/version``, ``/info``, ``/events``."""

from __future__ import annotations

import asyncio
import json
import platform
import time

from aiohttp import web

from dockyard import API_VERSION, MIN_API_VERSION, __version__
from dockyard.daemon.http import JSON, add_route, cancel_when_client_leaves, json_response, query_filters, query_int
from dockyard.engine import Engine

PING_HEADERS = {"Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache",
                "Builder-Version": "1", "Swarm": "inactive"}


async def ping(request: web.Request) -> web.Response:
    body = b"" if request.method == "HEAD" else b"OK"
    response = web.Response(body=body, headers={**PING_HEADERS, "Content-Type": "text/plain; charset=utf-8"})
    return response


async def version(request: web.Request) -> web.Response:
    return json_response({
        "Platform": {"Name": "Dockyard Engine"},
        "Components": [{"Name": "Engine", "Version": __version__,
                        "Details": {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
                                    "Os": "linux", "Arch": _arch(), "KernelVersion": platform.release(),
                                    "PythonVersion": platform.python_version()}}],
        "Version": __version__,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": f"python{platform.python_version()}",
        "Os": "linux",
        "Arch": _arch(),
        "KernelVersion": platform.release(),
        "BuildTime": "",
    })


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


async def info(request: web.Request) -> web.Response:
    engine: Engine = request.app["engine"]
    return json_response(await asyncio.to_thread(engine.info))


async def events(request: web.Request) -> web.StreamResponse:
    engine: Engine = request.app["engine"]
    since = query_int(request, "since", 0)
    until = query_int(request, "until", 0)
    filters = query_filters(request)
    queue = engine.events.subscribe()
    response = web.StreamResponse(headers={"Content-Type": JSON})
    await response.prepare(request)
    try:
        async with cancel_when_client_leaves(request):
            if since:
                for event in list(engine.events.history):
                    if since <= event["time"] and (not until or event["time"] <= until) and _match(event, filters):
                        await response.write(json.dumps(event).encode() + b"\n")
            while True:
                timeout = None
                if until:
                    timeout = until - time.time()
                    if timeout <= 0:
                        break
                try:
                    event = await asyncio.wait_for(queue.get(), timeout)
                except asyncio.TimeoutError:
                    break
                if event is None:  # the bus dropped us: we fell too far behind
                    break
                if _match(event, filters):
                    await response.write(json.dumps(event).encode() + b"\n")
    finally:
        engine.events.unsubscribe(queue)
    return response


def _match(event: dict, filters: dict[str, list[str]]) -> bool:
    for key, values in filters.items():
        if key == "type" and event["Type"] not in values:
            return False
        if key == "event" and event["Action"] not in values:
            return False
        if key in ("container", "image") and not any(
                v == event["Actor"]["ID"] or event["Actor"]["ID"].startswith(v)
                or v == event["Actor"]["Attributes"].get("name") for v in values):
            return False
    return True


def register(app: web.Application) -> None:
    add_route(app, "GET", "/_ping", ping)
    add_route(app, "HEAD", "/_ping", ping)
    add_route(app, "GET", "/version", version)
    add_route(app, "GET", "/info", info)
    add_route(app, "GET", "/events", events)
