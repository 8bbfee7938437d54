"""Taking over an HTTP connection after ``101 UPGRADED`` (attach, exec start).

aiohttp already treats ``Upgrade: tcp`` as an upgrade and parses the request
body before switching.  What it lacks, and this module adds:

* a raw reader fed by ``RequestHandler.set_parser`` (the hook aiohttp's own
  websocket support uses), so the handler can read the client's raw bytes;
* keeping the connection open when the client half-closes: asyncio closes the
  transport if ``eof_received`` returns a false value, which would cut off the
  container's output the moment ``docker run`` (stdin already at EOF)
  half-closes.  The override below returns True for hijacked connections only.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

RAW_STREAM = "application/vnd.docker.raw-stream"


class RawReader:
    """The parser aiohttp feeds after the upgrade: bytes into a StreamReader.

    The StreamReader is given the transport, so it pauses reading from the client while more
    than two ``limit``s wait unread (a client that types faster than the container reads its
    stdin cannot make the daemon buffer without bound)."""

    def __init__(self, transport: asyncio.Transport | None = None, limit: int = 1 << 20) -> None:
        self.stream = asyncio.StreamReader(limit=limit)
        if transport is not None:
            self.stream.set_transport(transport)
        self._eof = False

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if data:
            self.stream.feed_data(data)
        return False, b""

    def feed_eof(self) -> None:
        if not self._eof:
            self._eof = True
            self.stream.feed_eof()


_original_eof_received = RequestHandler.eof_received


def _eof_received(self: RequestHandler) -> bool | None:
    parser = self._payload_parser
    if isinstance(parser, RawReader):
        parser.feed_eof()
        return True  # half-close: keep our side open for the output
    return _original_eof_received(self)


RequestHandler.eof_received = _eof_received  # type: ignore[method-assign]


class Hijacked:
    """Both directions of a hijacked connection."""

    def __init__(self, request: web.Request, response: web.StreamResponse, reader: RawReader) -> None:
        self.request = request
        self.response = response
        self.reader = reader.stream

    async def write(self, data: bytes) -> None:
        await self.response.write(data)

    def close(self) -> None:
        transport = self.request.transport
        if transport is not None and not transport.is_closing():
            transport.close()


async def hijack(request: web.Request) -> Hijacked:
    """Answer 101 (or 200 for a client that did not ask to upgrade) and switch to raw bytes."""
    upgrade = request.headers.get("Upgrade", "").lower() == "tcp"
    if upgrade:
        response = web.StreamResponse(status=101, reason="UPGRADED")
        response.headers["Connection"] = "Upgrade"
        response.headers["Upgrade"] = "tcp"
    else:
        response = web.StreamResponse(status=200)
    response.content_type = RAW_STREAM
    response.force_close()
    await response.prepare(request)
    reader = RawReader(request.transport)  # type: ignore[arg-type]
    request.protocol.set_parser(reader)  # type: ignore[union-attr]
    return Hijacked(request, response, reader)
