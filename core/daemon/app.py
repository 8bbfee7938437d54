"""The aiohttp application and its listeners (unix sockets and TCP, one process)."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import ssl
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from dockyard.address import Address
from dockyard.daemon import guard, openapi, ui
from dockyard.daemon.deps import ENGINE
from dockyard.daemon.http import MAX_BODY, api_middleware, error_response
from dockyard.daemon.tls import TlsConnection, is_loopback
from dockyard.daemon.routes import build, containers, distribution, execs, images, layers, networks, system, volumes
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
    """404 for a path nothing serves (BuildKit's /session and /grpc...); 405 naming the allowed methods for a
    path served under other methods, as moby's router answers."""
    # the most specific template that matches decides: /containers/json is that path, not the container
    # "json" of /containers/{id}; /images/x/history is not the image "x/history" of /images/{name}
    allowed: dict[tuple[int, int], set[str]] = {}
    for resource in request.app.router.resources():
        template = resource.get_info().get("path") or resource.get_info().get("formatter", "")
        if template == "/{tail}":
            continue  # this catch-all
        match, methods = await resource.resolve(request)
        if match is None and methods:
            template = template.replace("/v{version}", "")
            literal = len(re.sub(r"\{[^}]*\}", "", template))
            allowed.setdefault((template.count("{"), -literal), set()).update(methods)
    if allowed:
        response = error_response(f"method not allowed: {request.method} {request.path}", 405)
        response.headers["Allow"] = ", ".join(sorted(allowed[min(allowed)]))
        return response
    return error_response(f"page not found: {request.method} {request.path}", 404)


def make_app(
    engine: Engine, guard_config: guard.GuardConfig | None = None, ui_assets: ui.UiAssets | None = None
) -> web.Application:
    """The API (and with ``ui_assets``, the web UI at /ui/); /openapi.json and /docs describe the API."""
    # client_max_size caps what request.read() holds in memory (413 beyond); large bodies are streamed
    app = web.Application(
        middlewares=[api_middleware, guard.middleware(guard_config or guard.GuardConfig())], client_max_size=MAX_BODY
    )
    app[ENGINE] = engine
    for module in (system, layers, distribution, images, containers, execs, volumes, networks, build):
        module.register(app)
    openapi.register(app)
    if ui_assets is not None:
        ui.register(app, ui_assets)
    app.router.add_route("*", "/{tail:.*}", _unknown)
    return app


async def serve(
    engine: Engine,
    addresses: list[Address],
    stop: asyncio.Event,
    *,
    tls: ssl.SSLContext | None = None,
    cors_origin: str = "",
    ui_assets: ui.UiAssets | None = None,
    debug: bool = False,
) -> None:
    """Serve the API on every address until ``stop`` is set (TCP ones over ``tls`` when given; the web UI
    too with ``ui_assets``; with ``debug``, callbacks that hold the loop are logged)."""
    loop = asyncio.get_running_loop()
    if debug:
        watch_loop(loop)
    # driver calls block (mounts, spawns): give them more threads than the default 2+4
    loop.set_default_executor(ThreadPoolExecutor(max_workers=64, thread_name_prefix="driver"))
    engine.containers.loop = loop
    await engine.containers.recover()
    app = make_app(
        engine,
        guard.GuardConfig.for_listeners(
            cors_origin, [a.host for a in addresses if a.scheme == "tcp"], own_origin=ui_assets is not None
        ),
        ui_assets,
    )
    # long-lived streams (wait, logs -f, attach) must not hold up a SIGTERM shutdown
    access = logging.getLogger("dockyard.access")
    runner = web.AppRunner(
        app,
        handler_cancellation=False,
        shutdown_timeout=1.0,
        access_log=access if access.isEnabledFor(logging.DEBUG) else None,
        access_log_format="%r %s %b %Tfs",
    )
    await runner.setup()
    tls_servers: list[asyncio.AbstractServer] = []
    rotation = asyncio.ensure_future(engine.containers.log_rotator.run())
    try:
        for address in addresses:
            if address.scheme == "unix":
                if os.path.exists(address.path):
                    os.unlink(address.path)  # a stale socket: the pid file lock says no daemon owns it
                os.makedirs(os.path.dirname(address.path), exist_ok=True)
                site: web.BaseSite = web.UnixSite(runner, address.path)
                await site.start()
                os.chmod(address.path, 0o660)
            elif tls is not None:
                # TLS is terminated by TlsConnection (half-closes survive), which hands aiohttp's server
                # the decrypted connection
                tls_servers.append(
                    await loop.create_server(
                        lambda: TlsConnection(tls, runner.server), address.host, address.port, reuse_address=True
                    )
                )
                _warn_plain_tcp(address, tls)
            else:
                site = web.TCPSite(runner, address.host, address.port, reuse_address=True)
                await site.start()
                _warn_plain_tcp(address, tls)
            log.info("API listening on %s%s", address, " (TLS)" if tls is not None and address.scheme == "tcp" else "")
        await stop.wait()
    finally:
        rotation.cancel()
        for server in tls_servers:
            server.close()
        await runner.cleanup()
        for address in addresses:
            if address.scheme == "unix" and os.path.exists(address.path):
                os.unlink(address.path)


def _warn_plain_tcp(address: Address, tls: ssl.SSLContext | None) -> None:
    """Docker's warning: the API is root on this host, and plain TCP hands it to whoever can connect."""
    if tls is not None and tls.verify_mode == ssl.CERT_REQUIRED:
        return
    if tls is None and is_loopback(address.host):
        log.warning(
            "API listening on %s without TLS: every local user (and process) can reach it and is root on "
            "this host through it",
            address,
        )
        return
    log.warning("!" * 78)
    log.warning(
        "API listening on %s %s: anyone who can reach this address is root on this host. Use "
        "--tlsverify with --tlscacert, --tlscert and --tlskey (mutual TLS), or listen on a unix socket.",
        address,
        "with TLS but without client verification" if tls else "WITHOUT TLS",
    )
    log.warning("!" * 78)
