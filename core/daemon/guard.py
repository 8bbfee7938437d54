"""Who may talk to the API: the checks every request passes before a route sees it.

Whoever reaches the API is root on the host (as with Docker), so what must not
reach it is a *web page* the user happens to open: a browser will send a
cross-site ``POST http://127.0.0.1:4243/containers/create`` with a ``/:/host``
bind, or (DNS rebinding) let a page read the API under a name of its own.  So:

* a request carrying ``Origin`` (browsers send it on every cross-site request
  and on every POST) is refused unless ``--api-cors-header`` allows that origin;
  an allowed one gets Docker's CORS headers, and its ``OPTIONS`` preflight a 200.
  With the web UI on (``--ui``), the daemon's own origin (the scheme of the
  listener and the ``Host`` the request names, itself checked below) is allowed
  too: the UI's pages call the API from there, and no other page can;
* on TCP without TLS, the ``Host`` header must name this daemon: an IP address,
  ``localhost``, the machine's name, or a host given with ``-H``.  A rebound
  name (``attacker.example``) is refused.  Unix sockets and TLS listeners skip
  this (a browser cannot reach the one, and would not accept the other's
  certificate for a foreign name);
* JSON bodies must say ``Content-Type: application/json``
  (:func:`dockyard.daemon.http.read_json`), which a form or ``text/plain``
  request cannot.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from dockyard.errors import Forbidden

log = logging.getLogger(__name__)

#: Docker's CORS answer (api/server/middleware/cors.go)
CORS_HEADERS = {
    "Access-Control-Allow-Headers": "Origin, X-Requested-With, Content-Type, Accept, X-Registry-Auth",
    "Access-Control-Allow-Methods": "HEAD, GET, POST, DELETE, PUT, OPTIONS",
}


@dataclass(frozen=True)
class GuardConfig:
    #: ``--api-cors-header``: "" refuses every Origin, "*" allows all, else the one origin allowed
    cors_origin: str = ""
    #: host names (lower case) a TCP request may carry in ``Host`` besides IP addresses and localhost
    host_names: frozenset[str] = field(default_factory=frozenset)
    #: the web UI is served (``--ui``): requests from the daemon's own origin are allowed
    own_origin: bool = False

    @classmethod
    def for_listeners(cls, cors_origin: str, listen_hosts: list[str], own_origin: bool = False) -> "GuardConfig":
        names = {"localhost", socket.gethostname().lower(), socket.getfqdn().lower()}
        names.update(h.lower() for h in listen_hosts if h and not _is_ip(h))
        return cls(cors_origin=cors_origin, host_names=frozenset(n for n in names if n), own_origin=own_origin)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


def _host_name(header: str) -> str:
    """The host of a ``Host`` header without its port (``[::1]:4243`` -> ``::1``)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    if header.count(":") == 1:
        return header.partition(":")[0]
    return header


def _transport_kind(request: web.Request) -> tuple[bool, bool]:
    """(tcp, tls) of the connection the request came on."""
    transport = request.transport
    if transport is None:
        return False, False
    sockname = transport.get_extra_info("sockname")
    return isinstance(sockname, tuple), transport.get_extra_info("sslcontext") is not None


def _is_own_origin(origin: str, request: web.Request, tcp: bool, tls: bool) -> bool:
    """Whether ``origin`` is the origin the request was made to: the listener's scheme and the ``Host``
    header (on plain TCP the Host check below still applies, so a rebound name gets nowhere)."""
    if not tcp:
        return False  # a browser cannot reach a unix socket; `dockyard ui` checks and strips Origin itself
    host = request.headers.get("Host", "").strip().lower()
    return bool(host) and origin.strip().lower() == f"{'https' if tls else 'http'}://{host}"


def middleware(config: GuardConfig) -> Middleware:
    """The aiohttp middleware enforcing ``config`` (runs inside the API middleware, which turns its
    errors into Docker's JSON answers)."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        tcp, tls = _transport_kind(request)
        if origin is not None and config.own_origin and _is_own_origin(origin, request, tcp, tls):
            origin = None  # the UI's own pages: same-origin, no CORS answer needed
        if origin is not None:
            if not config.cors_origin or config.cors_origin not in ("*", origin):
                log.warning("refused a cross-origin %s %s from %s", request.method, request.path, origin)
                raise Forbidden(
                    f"cross-origin requests are refused (Origin: {origin}); start the daemon with "
                    "--api-cors-header to allow one"
                )
        if tcp and not tls:
            host = _host_name(request.headers.get("Host", ""))
            if not host or not (_is_ip(host) or host in config.host_names):
                log.warning("refused %s %s for Host %r", request.method, request.path, host)
                raise Forbidden(
                    f"Host {host!r} does not name this daemon; use its address, localhost or a name given with -H"
                )
        if origin is not None and request.method == "OPTIONS":
            response: web.StreamResponse = web.Response(status=200)
        else:
            response = await handler(request)
        if origin is not None and not response.prepared:
            response.headers["Access-Control-Allow-Origin"] = config.cors_origin
            response.headers.update(CORS_HEADERS)
        return response

    return guard
