"""``/containers/{id}/exec`` and ``/exec/{id}/...``: docker exec."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from dockyard.daemon.hijack import hijack
from dockyard.daemon.http import add_route, cancel_when_client_leaves, json_response, query_int, read_json
from dockyard.daemon.routes.containers import splice
from dockyard.daemon.deps import engine as _engine
from dockyard.errors import DockyardError

log = logging.getLogger(__name__)


async def create(request: web.Request) -> web.Response:
    body = await read_json(request)
    exec_id = _engine(request).execs.create(request.match_info["id"], body)
    return json_response({"Id": exec_id}, status=201)


async def start(request: web.Request) -> web.StreamResponse:
    engine = _engine(request)
    body = await read_json(request)
    exec_id = request.match_info["id"]
    instance = engine.execs.check_startable(exec_id)  # errors before the upgrade become JSON errors
    if body.get("Detach"):
        sock = await engine.execs.start(exec_id)
        sock.close()  # nobody reads: the driver keeps the process running
        return web.Response(status=200)
    conn = await hijack(request)  # as Docker: answer 101 first, then start the process
    try:
        try:
            sock = await engine.execs.start(exec_id)
        except DockyardError as exc:
            await conn.write(exc.message.encode() + b"\r\n")  # Docker writes start errors into the stream
            return conn.response
        async with cancel_when_client_leaves(request):
            await splice(conn, sock, bool(instance.config.get("AttachStdin")))
            # the client asks for the exit code as soon as the stream ends: have it recorded first
            try:
                await asyncio.wait_for(instance.done.wait(), 10)
            except asyncio.TimeoutError:
                pass
    except (ConnectionResetError, BrokenPipeError):
        pass
    except DockyardError as exc:
        log.info("exec %s ended: %s", exec_id[:12], exc)
    finally:
        conn.close()
    return conn.response


async def inspect(request: web.Request) -> web.Response:
    return json_response(_engine(request).execs.get(request.match_info["id"]).api())


async def resize(request: web.Request) -> web.Response:
    await _engine(request).execs.resize(request.match_info["id"], query_int(request, "h", 24),
                                        query_int(request, "w", 80))
    return web.Response(status=201)


def register(app: web.Application) -> None:
    add_route(app, "POST", "/containers/{id}/exec", create)
    add_route(app, "POST", "/exec/{id}/start", start)
    add_route(app, "GET", "/exec/{id}/json", inspect)
    add_route(app, "POST", "/exec/{id}/resize", resize)

