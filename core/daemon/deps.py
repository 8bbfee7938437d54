"""What routes get from the application: the engine, under a typed key."""

from __future__ import annotations

from aiohttp import web

from dockyard.engine import Engine

ENGINE = web.AppKey("engine", Engine)


def engine(request: web.Request) -> Engine:
    return request.app[ENGINE]
