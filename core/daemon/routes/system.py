"""``/_ping``, ``/version``, ``/info``, ``/events``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import platform

from aiohttp import web

from dockyard import API_VERSION, MIN_API_VERSION, __version__
from dockyard.daemon.deps import engine
from dockyard.daemon.http import JSON, add_route, cancel_when_client_leaves, json_response, query_filters, query_int

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
    return json_response(await asyncio.to_thread(engine(request).info))


async def events(request: web.Request) -> web.StreamResponse:
    stream = engine(request).events.stream(query_int(request, "since", 0), query_int(request, "until", 0),
                                           query_filters(request))
    response = web.StreamResponse(headers={"Content-Type": JSON})
    await response.prepare(request)
    async with cancel_when_client_leaves(request), contextlib.aclosing(stream):
        async for event in stream:
            await response.write(json.dumps(event).encode() + b"\n")
    return response


def register(app: web.Application) -> None:
    add_route(app, "GET", "/_ping", ping)
    add_route(app, "HEAD", "/_ping", ping)
    add_route(app, "GET", "/version", version)
    add_route(app, "GET", "/info", info)
    add_route(app, "GET", "/events", events)
