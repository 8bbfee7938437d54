"""``/volumes``: list, create, inspect, remove, prune."""

from __future__ import annotations

import asyncio
from typing import Annotated

from aiohttp import web

from dockyard.daemon.deps import engine
from dockyard.daemon.http import add_route, json_response
from dockyard.daemon.params import Bool, FilterKeys, FiltersParam, Query, body, query
from dockyard.filters import Filters
from dockyard.models.api import ApiModel, Refused


class VolumeCreateOptions(ApiModel):
    """Body of ``POST /volumes/create``."""

    name: str = ""
    driver: str = "local"
    driver_opts: Annotated[dict[str, str] | None, Refused("options of the local driver (type, device, o)")] = None
    labels: dict[str, str] | None = None


class ListVolumesQuery(Query):
    filters: Annotated[FiltersParam, FilterKeys("dangling", "driver", "label", "name")] = Filters()


async def list_volumes(request: web.Request) -> web.Response:
    volumes = await asyncio.to_thread(engine(request).volumes.list, query(request, ListVolumesQuery).filters)
    return json_response({"Volumes": volumes, "Warnings": []})


async def create(request: web.Request) -> web.Response:
    options = body(request, VolumeCreateOptions)
    volume = await asyncio.to_thread(
        engine(request).volumes.create, options.name or None, options.labels, None, driver=options.driver
    )
    return json_response(volume, status=201)


async def inspect(request: web.Request) -> web.Response:
    return json_response(await asyncio.to_thread(engine(request).volumes.get, request.match_info["name"]))


class RemoveVolumeQuery(Query):
    force: Bool = False


async def remove(request: web.Request) -> web.Response:
    await asyncio.to_thread(
        engine(request).volumes.remove, request.match_info["name"], query(request, RemoveVolumeQuery).force
    )
    return web.Response(status=204)


class PruneVolumesQuery(Query):
    filters: Annotated[FiltersParam, FilterKeys("label", "label!")] = Filters()


async def prune(request: web.Request) -> web.Response:
    deleted, reclaimed = await asyncio.to_thread(
        engine(request).volumes.prune, query(request, PruneVolumesQuery).filters
    )
    return json_response({"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed})


def register(app: web.Application) -> None:
    add_route(app, "GET", "/volumes", list_volumes, query=ListVolumesQuery)
    add_route(app, "POST", "/volumes/create", create, body=VolumeCreateOptions)
    add_route(app, "POST", "/volumes/prune", prune, query=PruneVolumesQuery)
    add_route(app, "GET", "/volumes/{name}", inspect)
    add_route(app, "DELETE", "/volumes/{name}", remove, query=RemoveVolumeQuery)
