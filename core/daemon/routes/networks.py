"""``/networks``: list, inspect, create, remove, connect, disconnect, prune (over :mod:`dockyard.networks`)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from aiohttp import web

from dockyard.daemon.deps import engine
from dockyard.daemon.http import add_route, json_response
from dockyard.daemon.params import Bool, FilterKeys, FiltersParam, Query, body, query
from dockyard.filters import Filters
from dockyard.models.api import ApiModel, NoOp
from dockyard.models.container import EndpointSettings
from dockyard.models.network import NetworkCreateRequest


class ListNetworksQuery(Query):
    filters: Annotated[FiltersParam, FilterKeys("dangling", "driver", "id", "label", "name", "scope", "type")] = (
        Filters()
    )


async def list_networks(request: web.Request) -> web.Response:
    filters = query(request, ListNetworksQuery).filters
    return json_response(await asyncio.to_thread(engine(request).networks.list, filters))


class InspectNetworkQuery(Query):
    verbose: Annotated[Bool, NoOp("adds swarm service details; local networks have none, as in Docker")] = False
    scope: str = ""


async def inspect_network(request: web.Request) -> web.Response:
    q = query(request, InspectNetworkQuery)
    return json_response(await asyncio.to_thread(engine(request).networks.inspect, request.match_info["id"], q.scope))


async def create_network(request: web.Request) -> web.Response:
    created = await asyncio.to_thread(engine(request).networks.create, body(request, NetworkCreateRequest))
    return json_response({"Id": created["Id"], "Warning": ""}, 201)


async def remove_network(request: web.Request) -> web.Response:
    await asyncio.to_thread(engine(request).networks.remove, request.match_info["id"])
    return web.Response(status=204)


class ConnectRequest(ApiModel):
    container: str = ""
    endpoint_config: EndpointSettings | None = None


async def connect(request: web.Request) -> web.Response:
    connection = body(request, ConnectRequest)
    await asyncio.to_thread(
        engine(request).networks.connect,
        request.match_info["id"],
        connection.container,
        connection.endpoint_config or EndpointSettings(),
    )
    return web.Response(status=200)


class DisconnectRequest(ApiModel):
    container: str = ""
    #: disconnect even where the network would refuse it (a container it no longer knows)
    force: bool = False


async def disconnect(request: web.Request) -> web.Response:
    disconnection = body(request, DisconnectRequest)
    await asyncio.to_thread(
        engine(request).networks.disconnect, request.match_info["id"], disconnection.container, disconnection.force
    )
    return web.Response(status=200)


class PruneNetworksQuery(Query):
    filters: Annotated[FiltersParam, FilterKeys("label", "label!", "until")] = Filters()


async def prune(request: web.Request) -> web.Response:
    filters = query(request, PruneNetworksQuery).filters
    return json_response({"NetworksDeleted": await asyncio.to_thread(engine(request).networks.prune, filters)})


def register(app: web.Application) -> None:
    add_route(app, "GET", "/networks", list_networks, query=ListNetworksQuery)
    add_route(app, "POST", "/networks/create", create_network, body=NetworkCreateRequest)
    add_route(app, "POST", "/networks/prune", prune, query=PruneNetworksQuery)
    add_route(app, "GET", "/networks/{id}", inspect_network, query=InspectNetworkQuery)
    add_route(app, "DELETE", "/networks/{id}", remove_network)
    add_route(app, "POST", "/networks/{id}/connect", connect, body=ConnectRequest)
    add_route(app, "POST", "/networks/{id}/disconnect", disconnect, body=DisconnectRequest)
