"""``/_ping``, ``/version``, ``/info``, ``/events``, ``/system/df``; the swarm and plugin endpoints, which
answer as a Docker engine in no swarm and with no managed plugins does."""

from __future__ import annotations

import asyncio
import contextlib
import json
import platform
from typing import Annotated

from aiohttp import web

from dockyard import API_VERSION, MIN_API_VERSION, __version__
from dockyard.daemon.deps import engine
from dockyard.daemon.http import JSON, add_route, cancel_when_client_leaves, json_response, refuse_route
from dockyard.daemon.params import FilterKeys, FiltersParam, Query, RefusedEndpoint, query
from dockyard.errors import InvalidParameter, NotSupportedByDriver, Unavailable
from dockyard.events import EVENT_FILTERS
from dockyard.filters import Filters

PING_HEADERS = {
    "Cache-Control": "no-cache, no-store, must-revalidate",
    "Pragma": "no-cache",
    "Builder-Version": "1",
    "Swarm": "inactive",
}


async def ping(request: web.Request) -> web.Response:
    body = b"" if request.method == "HEAD" else b"OK"
    response = web.Response(body=body, headers={**PING_HEADERS, "Content-Type": "text/plain; charset=utf-8"})
    return response


async def version(request: web.Request) -> web.Response:
    return json_response(
        {
            "Platform": {"Name": "Dockyard Engine"},
            "Components": [
                {
                    "Name": "Engine",
                    "Version": __version__,
                    "Details": {
                        "ApiVersion": API_VERSION,
                        "MinAPIVersion": MIN_API_VERSION,
                        "Os": "linux",
                        "Arch": _arch(),
                        "KernelVersion": platform.release(),
                        "PythonVersion": platform.python_version(),
                    },
                }
            ],
            "Version": __version__,
            "ApiVersion": API_VERSION,
            "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": "",
            "GoVersion": f"python{platform.python_version()}",
            "Os": "linux",
            "Arch": _arch(),
            "KernelVersion": platform.release(),
            "BuildTime": "",
        }
    )


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


async def info(request: web.Request) -> web.Response:
    return json_response(await asyncio.to_thread(engine(request).info))


class EventsQuery(Query):
    since: str = ""
    until: str = ""
    filters: Annotated[FiltersParam, FilterKeys(*EVENT_FILTERS)] = Filters()


def _event_time(name: str, value: str) -> float:
    if not value:
        return 0.0
    try:
        return float(value)
    except ValueError:
        raise InvalidParameter(f"invalid value for {name}: {value!r} is not a unix timestamp") from None


async def events(request: web.Request) -> web.StreamResponse:
    q = query(request, EventsQuery)
    since, until = _event_time("since", q.since), _event_time("until", q.until)
    if until and since and until < since:
        raise InvalidParameter(f"`since` time ({q.since}) cannot be after `until` time ({q.until})")
    stream = engine(request).events.stream(since, until, q.filters)
    response = web.StreamResponse(headers={"Content-Type": JSON})
    await response.prepare(request)
    async with cancel_when_client_leaves(request), contextlib.aclosing(stream):
        async for event in stream:
            await response.write(json.dumps(event).encode() + b"\n")
    return response


async def disk_usage(request: web.Request) -> web.Response:
    """``GET /system/df`` (``docker system df [-v]``)."""
    return json_response(await asyncio.to_thread(engine(request).disk_usage))


class PluginsQuery(Query):
    filters: Annotated[FiltersParam, FilterKeys("capability", "enable")] = Filters()


async def plugins(request: web.Request) -> web.Response:
    """``GET /plugins``: Docker's managed plugins; dockyard has none (its drivers are Python entry points)."""
    filters = query(request, PluginsQuery).filters
    filters.bool_value("enable")  # a bad value is a 400, as in Docker
    return json_response([])


#: moby's answers on a node that is in no swarm
NO_SWARM = RefusedEndpoint(Unavailable, "This node is not part of a swarm")
NOT_MANAGER = RefusedEndpoint(
    Unavailable,
    'This node is not a swarm manager. Use "docker swarm init" or '
    '"docker swarm join" to connect this node to swarm and try again.',
)
NO_SWARM_MODE = RefusedEndpoint(NotSupportedByDriver, "swarm mode is not supported by dockyard")
NO_PLUGINS = RefusedEndpoint(
    NotSupportedByDriver,
    "managed plugins are not supported by dockyard (its drivers are Python packages: see docs/architecture.md)",
)
NO_SESSION = RefusedEndpoint(
    NotSupportedByDriver, "BuildKit sessions are not supported by dockyard; use the classic builder (DOCKER_BUILDKIT=0)"
)

_SWARM = [
    ("POST", "/swarm/init", NO_SWARM_MODE),
    ("POST", "/swarm/join", NO_SWARM_MODE),
    ("POST", "/swarm/leave", NO_SWARM),
    ("GET", "/swarm", NOT_MANAGER),
    ("POST", "/swarm/update", NOT_MANAGER),
    ("GET", "/swarm/unlockkey", NOT_MANAGER),
    ("POST", "/swarm/unlock", NOT_MANAGER),
]
_SWARM_OBJECTS = [("GET", ""), ("GET", "/{id}"), ("DELETE", "/{id}"), ("POST", "/{id}/update")]
_PLUGINS = [
    ("GET", "/plugins/privileges"),
    ("POST", "/plugins/pull"),
    ("GET", "/plugins/{name}/json"),
    ("DELETE", "/plugins/{name}"),
    ("POST", "/plugins/{name}/enable"),
    ("POST", "/plugins/{name}/disable"),
    ("POST", "/plugins/{name}/upgrade"),
    ("POST", "/plugins/create"),
    ("POST", "/plugins/{name}/push"),
    ("POST", "/plugins/{name}/set"),
]


def register(app: web.Application) -> None:
    add_route(app, "GET", "/_ping", ping)
    add_route(app, "HEAD", "/_ping", ping)
    add_route(app, "GET", "/version", version)
    add_route(app, "GET", "/info", info)
    add_route(app, "GET", "/events", events, query=EventsQuery)
    add_route(app, "GET", "/system/df", disk_usage)
    add_route(app, "GET", "/plugins", plugins, query=PluginsQuery)
    for method, path in _PLUGINS:
        refuse_route(app, method, path, NO_PLUGINS)
    for method, path, answer in _SWARM:
        refuse_route(app, method, path, answer)
    for kind in ("nodes", "services", "tasks", "secrets", "configs"):
        for method, tail in _SWARM_OBJECTS:
            if kind == "tasks" and method != "GET":
                continue
            refuse_route(app, method, f"/{kind}{tail}", NOT_MANAGER)
        if kind in ("services", "secrets", "configs"):
            refuse_route(app, "POST", f"/{kind}/create", NOT_MANAGER)
        if kind in ("services", "tasks"):
            refuse_route(app, "GET", f"/{kind}/{{id}}/logs", NOT_MANAGER)
    refuse_route(app, "POST", "/session", NO_SESSION)
