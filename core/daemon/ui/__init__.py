"""The web UI: a single-page app the daemon serves at ``/ui/`` (``--ui`` or ``ui = true``).

The page is plain ES modules (``static/``) on Preact and htm, with xterm.js for
the terminal; those libraries are installed from npm by ``contrib/setup.sh``
(``package.json`` here, ``npm ci`` into ``<prefix>/share/dockyard/ui``), nothing is
built and nothing is fetched at run time.  The page calls the Engine API of the
daemon that served it, so it passes the same checks as any client
(:mod:`dockyard.daemon.guard`: TLS, ``Host``, and ``Origin``, which allows the
daemon's own origin only while the UI is on).  One route here is not Engine API:
``/ui/terminal/{container}``, a websocket that runs ``sh`` (or ``?cmd=``) in the
container with a terminal, because browsers cannot speak the API's hijacked
exec stream.

Every file served is looked up by name in a table made at start-up (the page's
own files, and :data:`VENDOR` for the libraries), so no request path reaches
the file system.  A daemon on a unix socket is reached through ``dockyard ui``
(:mod:`dockyard.cli.ui`), a loopback proxy with a random token.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

from dockyard.daemon.deps import engine as _engine
from dockyard.errors import DockyardError, InvalidParameter, NotFound
from dockyard.models.exec import ExecCreateRequest

if TYPE_CHECKING:
    from dockyard.engine import Engine

__all__ = ["STATIC", "UiAssets", "VENDOR", "register"]

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
PACKAGE_JSON = Path(__file__).parent / "package.json"

#: the libraries' files the page loads: URL name under /ui/vendor/ -> path under node_modules
VENDOR = {
    "preact.module.js": "preact/dist/preact.module.js",
    "hooks.module.js": "preact/hooks/dist/hooks.module.js",
    "htm.module.js": "htm/dist/htm.module.js",
    "xterm.js": "@xterm/xterm/lib/xterm.js",
    "xterm.css": "@xterm/xterm/css/xterm.css",
    "addon-fit.js": "@xterm/addon-fit/lib/addon-fit.js",
}

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
_IMPORTMAP = re.compile(r'<script type="importmap">(.*?)</script>', re.S)


def default_vendor() -> Path:
    """Where contrib/setup.sh installs the libraries: beside the environment dockyard runs in."""
    return Path(sys.prefix) / "share" / "dockyard" / "ui" / "node_modules"


@dataclass(frozen=True)
class UiAssets:
    """The files of the UI, read once: name -> (bytes, content type)."""

    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    vendor: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    #: Content-Security-Policy of the page (the inline import map is allowed by its hash)
    csp: str = ""

    @classmethod
    def find(cls, vendor_dir: Path | None = None) -> UiAssets:
        """Load the page and the libraries; a missing library is an error naming how to install it."""
        vendor_dir = vendor_dir or default_vendor()
        missing = [rel for rel in VENDOR.values() if not (vendor_dir / rel).is_file()]
        if missing:
            raise InvalidParameter(
                f"--ui needs the UI's JavaScript libraries, not found under {vendor_dir} ({', '.join(missing)}); "
                f"install them with contrib/setup.sh, or: npm ci --prefix {vendor_dir.parent} "
                f"(with {PACKAGE_JSON} and its lock file copied there)"
            )
        files = {
            p.name: (p.read_bytes(), _TYPES.get(p.suffix, "application/octet-stream"))
            for p in STATIC.iterdir()
            if p.is_file() and p.suffix in _TYPES
        }
        libraries = {name: ((vendor_dir / rel).read_bytes(), _TYPES[Path(rel).suffix]) for name, rel in VENDOR.items()}
        match = _IMPORTMAP.search(files["index.html"][0].decode())
        digest = base64.b64encode(hashlib.sha256(match.group(1).encode()).digest()).decode() if match else ""
        csp = (
            "default-src 'self'; "
            f"script-src 'self' 'sha256-{digest}'; "
            "style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
        )
        return cls(files, libraries, csp)


def _serve(entry: tuple[bytes, str] | None, csp: str) -> web.Response:
    if entry is None:
        raise NotFound("no such file in the UI")
    body, content_type = entry
    headers = {
        "Content-Type": content_type,
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    if content_type.startswith("text/html"):
        headers.update({"Content-Security-Policy": csp, "X-Frame-Options": "DENY"})
    return web.Response(body=body, headers=headers)


def register(app: web.Application, assets: UiAssets) -> None:
    """Add the UI's routes (before the catch-all 404)."""

    async def redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/ui/")

    async def page(request: web.Request) -> web.Response:
        return _serve(assets.files.get(request.match_info.get("name") or "index.html"), assets.csp)

    async def library(request: web.Request) -> web.Response:
        return _serve(assets.vendor.get(request.match_info["name"]), assets.csp)

    app.router.add_get("/ui", redirect)
    app.router.add_get("/ui/", page)
    app.router.add_get("/ui/vendor/{name}", library)
    app.router.add_get("/ui/terminal/{id}", terminal)
    app.router.add_get("/ui/{name}", page)


# -- the terminal -------------------------------------------------------------------------------


async def terminal(request: web.Request) -> web.StreamResponse:
    """A shell in a container over a websocket: binary frames carry the terminal's bytes both ways;
    a text frame ``{"resize": [columns, rows]}`` sizes it.  The exec ends when either side closes."""
    engine = _engine(request)
    command = request.query.getall("cmd", []) or ["sh"]
    exec_id = engine.execs.create(
        request.match_info["id"],
        ExecCreateRequest(
            attach_stdin=True,
            attach_stdout=True,
            attach_stderr=True,
            tty=True,
            cmd=command,
            env=["TERM=xterm-256color"],
        ),
    )
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=1 << 20)
    await ws.prepare(request)
    try:
        sock = await engine.execs.start(exec_id)
    except DockyardError as exc:
        await ws.send_bytes(f"\r\n{exc.message}\r\n".encode())
        await ws.close()
        return ws
    reader, writer = await asyncio.open_connection(sock=sock)

    async def to_browser() -> None:
        try:
            while data := await reader.read(1 << 16):
                await ws.send_bytes(data)
        finally:
            await ws.close()  # the shell ended: so does the page's session

    output = asyncio.create_task(to_browser())
    try:
        async for message in ws:
            if message.type == WSMsgType.BINARY:
                writer.write(message.data)
                await writer.drain()
            elif message.type == WSMsgType.TEXT:
                await _control(engine, exec_id, message.data)
    except (ConnectionResetError, BrokenPipeError):
        pass
    finally:
        output.cancel()
        with contextlib.suppress(Exception):
            await output
        writer.close()
        await ws.close()
    return ws


async def _control(engine: Engine, exec_id: str, text: str) -> None:
    try:
        data = json.loads(text)
        columns, rows = (int(v) for v in data["resize"])
    except (ValueError, KeyError, TypeError):
        log.info("terminal %s: ignored a control message that is not a resize: %.80r", exec_id[:12], text)
        return
    if 0 < columns <= 1000 and 0 < rows <= 1000:
        with contextlib.suppress(DockyardError):
            await engine.execs.resize(exec_id, rows, columns)
