"""``/containers/{id}/exec`` and ``/exec/{id}/...``: docker exec."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web

from dockyard.daemon.deps import engine as _engine
from dockyard.daemon.hijack import hijack
from dockyard.daemon.http import Unframe, add_route, cancel_when_client_leaves, frame, json_response
from dockyard.daemon.params import body, query
from dockyard.daemon.routes.containers import ResizeQuery, splice
from dockyard.detachkeys import detach_keys
from dockyard.errors import DockyardError
from dockyard.models.exec import ExecCreateRequest, ExecStartRequest


log = logging.getLogger(__name__)


def _framing(process_tty: bool, start_tty: bool) -> Callable[[bytes], bytes] | None:
    """How the exec driver's stream (raw with a tty, stdcopy frames without) becomes what the start
    request asked for (Docker frames unless the *start* request says ``Tty``)."""
    if process_tty and not start_tty:
        return lambda data: frame(1, data)
    if not process_tty and start_tty:
        return Unframe()
    return None


async def create(request: web.Request) -> web.Response:
    exec_id = _engine(request).execs.create(request.match_info["id"], body(request, ExecCreateRequest))
    return json_response({"Id": exec_id}, status=201)


async def start(request: web.Request) -> web.StreamResponse:
    engine = _engine(request)
    options = body(request, ExecStartRequest)
    exec_id = request.match_info["id"]
    instance = engine.execs.check_startable(exec_id)  # errors before the upgrade become JSON errors
    if options.detach:
        sock = await engine.execs.start(exec_id)
        sock.close()  # nobody reads: the driver keeps the process running
        return web.Response(status=200)
    keys = detach_keys(instance.config.detach_keys or None) if instance.config.attach_stdin else b""
    conn = await hijack(request)  # as Docker: answer 101 first, then start the process
    try:
        try:
            sock = await engine.execs.start(exec_id)
        except DockyardError as exc:
            await conn.write(exc.message.encode() + b"\r\n")  # Docker writes start errors into the stream
            return conn.response
        async with cancel_when_client_leaves(request):
            await splice(
                conn,
                sock,
                instance.config.attach_stdin,
                keys,
                transform=_framing(bool(instance.config.tty), options.tty),
            )
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
    q = query(request, ResizeQuery)
    await _engine(request).execs.resize(request.match_info["id"], q.h, q.w)
    return web.Response(status=200)  # as moby (and the spec) answer; 201 was a slip


def register(app: web.Application) -> None:
    add_route(app, "POST", "/containers/{id}/exec", create, body=ExecCreateRequest)
    add_route(app, "POST", "/exec/{id}/start", start, body=ExecStartRequest)
    add_route(app, "GET", "/exec/{id}/json", inspect)
    add_route(app, "POST", "/exec/{id}/resize", resize, query=ResizeQuery)
