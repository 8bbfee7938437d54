"""``dockyard ui``: the daemon's web UI in a browser, for a daemon a browser cannot reach (a unix socket).

It listens on a random loopback port and forwards to the daemon (``-H``), the
UI's pages and the API calls they make, websockets (the terminal) included.
Only a browser that opened the printed URL gets through: the URL carries a
random token, exchanged on first visit for an ``HttpOnly``, ``SameSite=Strict``
cookie; every request must bring that cookie, a ``Host`` naming this port
(DNS rebinding), and, when it has an ``Origin``, this very origin (no other page
may drive it).  Having checked the origin, the proxy drops the header, since the
daemon's own guard (``dockyard.daemon.guard``) has no origin to compare it with
on a unix socket.  The daemon must serve the UI (``dockyard daemon --ui``).

This is a client command: it talks to the daemon only through the Engine API
address, like every other command (aiohttp, a dependency of the package, is
imported only here).
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import sys
from typing import Annotated, Any

import typer

from .client import CliError, Host
from .context import globals_of

__all__ = ["COOKIE", "UiProxy", "ui"]

COOKIE = "dockyard_ui"
#: request headers not forwarded: hop-by-hop (RFC 9110), and what the proxy itself checks or sets
_DROP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "cookie",
    "origin",
    "content-length",
}
_DROP_BACK = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}


class UiProxy:
    """The loopback server: token check, then forwarding to ``host``."""

    def __init__(self, host: Host, token: str | None = None) -> None:
        self.host = host
        self.token = token or secrets.token_urlsafe(24)
        self.port = 0
        self._runner: Any = None
        self._session: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/?token={self.token}"

    # -- daemon side -------------------------------------------------------------------------

    def _connector(self) -> Any:
        import aiohttp

        if self.host.scheme == "unix":
            return aiohttp.UnixConnector(path=self.host.path)
        if self.host.tls is not None:
            return aiohttp.TCPConnector(ssl=self.host.tls.context())
        return aiohttp.TCPConnector()

    @property
    def _upstream(self) -> str:
        if self.host.scheme == "unix":
            return "http://localhost"
        return f"{'https' if self.host.tls is not None else 'http'}://{self.host.host}:{self.host.port}"

    async def start(self, port: int = 0) -> None:
        import aiohttp
        from aiohttp import web

        self._session = aiohttp.ClientSession(
            connector=self._connector(),
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        )
        try:
            async with self._session.get(self._upstream + "/ui/") as probe:
                if probe.status == 404:
                    raise CliError(
                        "the daemon does not serve the web UI: start it with `dockyard daemon --ui` "
                        "(or ui = true in its config file)"
                    )
                probe.raise_for_status()
        except aiohttp.ClientError as exc:
            await self._session.close()
            raise CliError(f"Cannot connect to the dockyard daemon at {self.host.url}: {exc}") from None
        except CliError:
            await self._session.close()
            raise
        app = web.Application(client_max_size=1 << 40)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    # -- browser side ------------------------------------------------------------------------

    def _refusal(self, request: Any) -> str | None:
        """Why ``request`` may not pass, or None."""
        own = {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}
        host = request.headers.get("Host", "").lower()
        if host not in own:
            return f"Host {host!r} is not this proxy"
        origin = request.headers.get("Origin")
        if origin is not None and origin.lower() != f"http://{host}":
            return f"requests from {origin} are refused"
        if not hmac.compare_digest(request.cookies.get(COOKIE, ""), self.token):
            return "open the URL `dockyard ui` printed (with its token) first"
        return None

    async def _handle(self, request: Any) -> Any:
        from aiohttp import web

        token = request.query.get("token")
        if token is not None and request.method == "GET" and request.path in ("/", "/ui/"):
            if not hmac.compare_digest(token, self.token):
                return web.Response(status=403, text="wrong token\n")
            response = web.Response(status=302, headers={"Location": "/ui/"})
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="Strict", path="/")
            return response
        refusal = self._refusal(request)
        if refusal is not None:
            return web.Response(status=403, text=refusal + "\n")
        if request.path == "/":
            return web.Response(status=302, headers={"Location": "/ui/"})
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROP}
        target = self._upstream + request.path_qs
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request, target, headers)
        body = request.content.iter_chunked(1 << 16) if request.body_exists else None
        async with self._session.request(
            request.method, target, headers=headers, data=body, allow_redirects=False
        ) as upstream:
            relayed = web.StreamResponse(
                status=upstream.status,
                reason=upstream.reason,
                headers={k: v for k, v in upstream.headers.items() if k.lower() not in _DROP_BACK},
            )
            await relayed.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await relayed.write(chunk)
                await relayed.write_eof()
            except (ConnectionResetError, asyncio.CancelledError):
                pass  # the page went away (a log stream it stopped reading)
            return relayed

    async def _websocket(self, request: Any, target: str, headers: dict[str, str]) -> Any:
        from aiohttp import WSMsgType, web

        for name in ("Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Extensions"):
            headers.pop(name, None)
        async with self._session.ws_connect(target.replace("http", "ws", 1), headers=headers) as upstream:
            browser = web.WebSocketResponse()
            await browser.prepare(request)

            async def pump(source: Any, sink: Any) -> None:
                async for message in source:
                    if message.type == WSMsgType.BINARY:
                        await sink.send_bytes(message.data)
                    elif message.type == WSMsgType.TEXT:
                        await sink.send_str(message.data)
                await sink.close()

            tasks = [asyncio.create_task(pump(browser, upstream)), asyncio.create_task(pump(upstream, browser))]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()
            return browser


def ui(
    ctx: typer.Context,
    port: Annotated[int, typer.Option("--port", "-p", help="Loopback port to listen on (0: any free one)")] = 0,
    browser: Annotated[bool, typer.Option("--browser/--no-browser", help="Open the URL in a web browser")] = True,
) -> None:
    """Open the daemon's web UI through a local port with a random token.

    For a daemon on a unix socket (a daemon on TCP serves the UI itself, at
    /ui/); the daemon must run with --ui.  Runs until interrupted.
    """
    host = globals_of(ctx).host

    async def main() -> None:
        proxy = UiProxy(host)
        await proxy.start(port)
        try:
            typer.echo(f"dockyard UI for {host.url}: {proxy.url}")
            typer.echo("(anyone with this URL can drive the daemon; it works until you stop this command)", err=True)
            sys.stdout.flush()
            if browser:
                import webbrowser

                webbrowser.open(proxy.url)
            await asyncio.Event().wait()
        finally:
            await proxy.close()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
