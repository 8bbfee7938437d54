"""The aiohttp application and its listeners (unix sockets and TCP, one process)."""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from dockyard.daemon.config import Address
from dockyard.daemon.http import MAX_BODY, api_middleware, error_response
from dockyard.daemon.routes import (build, containers, distribution, execs, images, layers, networks, system,
                                    volumes)
from dockyard.engine import Engine

log = logging.getLogger(__name__)

#: in debug mode, a callback or task step that holds the event loop longer than this is logged
STALL = 0.1


def watch_loop(loop: asyncio.AbstractEventLoop) -> None:
    """The debug-mode loop-lag monitor: asyncio's own debug machinery, which logs (logger
    ``asyncio``, WARNING) every callback or task step that holds the loop longer than
    :data:`STALL`, naming it: ``Executing <Task ... name='GET /containers/x/logs' ...> took
    0.250 seconds`` (``api_middleware`` names each request's task after the request).  It also
    refuses loop calls from other threads and reports coroutines never awaited."""
    loop.set_debug(True)
    loop.slow_callback_duration = STALL


async def _unknown(request: web.Request) -> web.Response:
    # BuildKit's /session and /grpc, and anything else we do not serve
    return error_response(f"page not found: {request.method} {request.path}", 404)


def make_app(engine: Engine) -> web.Application:
    # client_max_size caps what request.read() holds in memory (413 beyond); large bodies are streamed
    app = web.Application(middlewares=[api_middleware], client_max_size=MAX_BODY)
    app["engine"] = engine
    for module in (system, layers, distribution, images, containers, execs, volumes, networks, build):
        module.register(app)
    app.router.add_route("*", "/{tail:.*}", _unknown)
    return app


async def serve(engine: Engine, addresses: list[Address], stop: asyncio.Event, debug: bool = False) -> None:
    """Serve the API on every address until ``stop`` is set."""
    loop = asyncio.get_running_loop()
    if debug:
        watch_loop(loop)
    # driver calls block (mounts, spawns): give them more threads than the default 2+4
    loop.set_default_executor(ThreadPoolExecutor(max_workers=64, thread_name_prefix="driver"))
    engine.containers.loop = loop
    await engine.containers.recover()
    app = make_app(engine)
    # long-lived streams (wait, logs -f, attach) must not hold up a SIGTERM shutdown
    access = logging.getLogger("dockyard.access")
    runner = web.AppRunner(app, handler_cancellation=False, shutdown_timeout=1.0,
                           access_log=access if access.isEnabledFor(logging.DEBUG) else None,
                           access_log_format='%r %s %b %Tfs')
    await runner.setup()
    try:
        for address in addresses:
            if address.scheme == "unix":
                if os.path.exists(address.path):
                    os.unlink(address.path)  # a stale socket: the pid file lock says no daemon owns it
                os.makedirs(os.path.dirname(address.path), exist_ok=True)
                site: web.BaseSite = web.UnixSite(runner, address.path)
                await site.start()
                os.chmod(address.path, 0o660)
            else:
                site = web.TCPSite(runner, address.host, address.port, reuse_address=True)
                await site.start()
            log.info("API listening on %s", address)
        await stop.wait()
    finally:
        await runner.cleanup()
        for address in addresses:
            if address.scheme == "unix" and os.path.exists(address.path):
                os.unlink(address.path)
