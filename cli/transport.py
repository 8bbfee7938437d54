"""HTTP/1.1 to the daemon: h11 speaks the protocol, a plain socket carries it.

The CLI sends a handful of requests per run to one local daemon, so it needs no
pool, proxies, redirects or compression; what it needs is to start fast.  TLS
(``--tlsverify``, ``DOCKER_TLS_VERIFY``) wraps the socket, importing ``ssl`` only then.
httpx costs ~100 ms to import here (httpcore, ssl, email, and its own command line
tool's click and rich), which is more than the whole budget of ``dockyard ps``;
h11, the sans-I/O HTTP/1.1 engine httpcore itself runs on, costs a few
milliseconds.  This module is the I/O around it:

* :func:`connect` opens the socket of a parsed ``-H`` address (unix or TCP);
* :func:`send` writes one request (a ``bytes`` body with a Content-Length, an
  iterable of ``bytes`` chunked) and returns the :class:`Response` once its head
  has arrived; the body is read as the caller iterates it;
* :func:`upgrade` does the same for ``Connection: Upgrade`` requests and returns
  the raw socket after ``101`` (docker's hijacked attach and exec streams).

Each request has a connection of its own, closed with its response.  Errors are
:class:`TransportError` (a :class:`~dockyard.cli.client.CliError`), or
:class:`ConnectFailed` when nothing could be reached at all.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import h11

from .client import CliError, Host

__all__ = ["ConnectFailed", "Response", "TransportError", "connect", "send", "upgrade"]

CONNECT_TIMEOUT = 10.0
RECV_SIZE = 64 * 1024


class TransportError(CliError):
    """The connection failed or the daemon's answer was not valid HTTP."""


class ConnectFailed(TransportError):
    """Nothing could be reached at the address (``cause`` is the OSError)."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(str(cause))
        self.cause = cause


def connect(host: Host) -> socket.socket:
    """A connected socket to the daemon, blocking without a timeout once connected."""
    try:
        if host.socket_path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(CONNECT_TIMEOUT)
                sock.connect(host.socket_path)
            except BaseException:
                sock.close()
                raise
        else:
            assert host.address is not None
            sock = socket.create_connection(host.address, timeout=CONNECT_TIMEOUT)
            # Requests are written in one piece, answers are awaited: Nagle would only add delay.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            tls = getattr(host, "tls", None)
            if tls is not None:
                try:
                    sock = tls.context().wrap_socket(sock, server_hostname=host.address[0])
                except BaseException:
                    sock.close()
                    raise
    except OSError as exc:
        raise ConnectFailed(exc) from None
    sock.settimeout(None)
    return sock


class Headers:
    """Response headers, looked up case-insensitively (the last value wins)."""

    def __init__(self, items: Iterable[tuple[bytes, bytes]]) -> None:
        self._items = [(name.decode("latin-1").lower(), value.decode("latin-1")) for name, value in items]
        self._map = dict(self._items)

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._map.get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return self._map[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._map

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)


class Response:
    """A response whose body is read from the socket as it is consumed.

    The subset of ``httpx.Response`` the CLI uses: ``status_code``, ``headers``,
    ``read()``/``content``/``json()``, and ``iter_bytes``/``iter_text``/``iter_lines``
    for streams (``logs -f``, ``events``, pulls and builds).
    """

    def __init__(self, sock: socket.socket, conn: h11.Connection, head: h11.Response) -> None:
        self.status_code = head.status_code
        self.reason = head.reason.decode("latin-1")
        self.headers = Headers(head.headers)
        self._sock = sock
        self._conn = conn
        self._content: bytes | None = None
        self._consumed = False

    def _chunks(self) -> Iterator[bytes]:
        if self._consumed:
            raise TransportError("the response body was already read")
        self._consumed = True
        try:
            while True:
                try:
                    event = _next_event(self._sock, self._conn)
                except _Broken as exc:
                    # The daemon went away in the middle of a response (e.g. during logs -f).
                    raise TransportError(f"error during connect: {exc}") from None
                if isinstance(event, h11.Data):
                    if event.data:
                        yield bytes(event.data)
                elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                    return
        finally:
            self.close()

    def iter_bytes(self, chunk_size: int | None = None) -> Iterator[bytes]:
        """The body as it arrives, in pieces of at most ``chunk_size`` bytes."""
        if self._content is not None:
            chunks: Iterable[bytes] = [self._content] if self._content else []
        else:
            chunks = self._chunks()
        for chunk in chunks:
            if chunk_size is None:
                yield chunk
                continue
            for start in range(0, len(chunk), chunk_size):
                yield chunk[start : start + chunk_size]

    def iter_text(self) -> Iterator[str]:
        """The body decoded as UTF-8 (invalid bytes replaced), split anywhere."""
        import codecs

        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        for chunk in self.iter_bytes():
            text = decoder.decode(chunk)
            if text:
                yield text
        tail = decoder.decode(b"", final=True)
        if tail:
            yield tail

    def iter_lines(self) -> Iterator[str]:
        """The body line by line, without line endings (``\\n`` or ``\\r\\n``)."""
        pending = ""
        for text in self.iter_text():
            pending += text
            *lines, pending = pending.split("\n")
            for line in lines:
                yield line.removesuffix("\r")
        if pending:
            yield pending.removesuffix("\r")

    def read(self) -> bytes:
        if self._content is None:
            self._content = b"".join(self._chunks())
        return self._content

    @property
    def content(self) -> bytes:
        return self.read()

    @property
    def text(self) -> str:
        return self.read().decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.read())

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass


class _Broken(Exception):
    """The connection failed, or what came back was not HTTP."""


def _next_event(sock: socket.socket, conn: h11.Connection) -> Any:
    """The next h11 event, reading from the socket as h11 asks for more."""
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise _Broken(str(exc)) from None
        if event is not h11.NEED_DATA:
            return event
        try:
            data = sock.recv(RECV_SIZE)
        except OSError as exc:
            raise _Broken(str(exc)) from None
        if not data and conn.their_state is h11.SEND_RESPONSE:
            raise _Broken("the daemon closed the connection without answering")
        conn.receive_data(data)  # b"" marks the end of the stream


def _request(
    host: Host,
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes | Iterable[bytes] | None,
) -> h11.Request:
    """The h11 request; its framing header follows the body's kind."""
    hdrs = [("Host", host.base_url.partition("://")[2]), *headers.items()]
    if isinstance(body, (bytes, bytearray)):
        hdrs.append(("Content-Length", str(len(body))))
    elif body is not None:
        hdrs.append(("Transfer-Encoding", "chunked"))
    elif method in ("POST", "PUT", "PATCH"):
        hdrs.append(("Content-Length", "0"))
    return h11.Request(method=method, target=target, headers=hdrs)


def _write(
    sock: socket.socket, conn: h11.Connection, request: h11.Request, body: bytes | Iterable[bytes] | None
) -> None:
    if body is None or isinstance(body, (bytes, bytearray)):
        # Head and body in one write: one segment for small requests.
        data = conn.send(request) or b""
        if body:
            data += conn.send(h11.Data(data=bytes(body))) or b""
        sock.sendall(data + (conn.send(h11.EndOfMessage()) or b""))
        return
    sock.sendall(conn.send(request) or b"")
    for chunk in body:
        if chunk:
            sock.sendall(conn.send(h11.Data(data=bytes(chunk))) or b"")
    sock.sendall(conn.send(h11.EndOfMessage()) or b"")


def _head(
    sock: socket.socket, conn: h11.Connection, where: str, write_error: OSError | None
) -> h11.Response | h11.InformationalResponse:
    """Wait for the status line and headers (skipping ``100 Continue``)."""
    while True:
        try:
            event = _next_event(sock, conn)
        except _Broken as exc:
            raise TransportError(f"error during connect to {where}: {write_error or exc}") from None
        if isinstance(event, h11.InformationalResponse) and event.status_code != 101:
            continue
        return event


def _exchange(
    host: Host, method: str, target: str, headers: Mapping[str, str], body: bytes | Iterable[bytes] | None
) -> tuple[socket.socket, h11.Connection, Any]:
    sock = connect(host)
    conn = h11.Connection(h11.CLIENT)
    try:
        write_error: OSError | None = None
        try:
            _write(sock, conn, _request(host, method, target, headers, body), body)
        except OSError as exc:
            # The daemon may have answered (an error) and closed before taking the whole
            # body: its answer says more than our broken pipe, so read it if it is there.
            write_error = exc
        except h11.LocalProtocolError as exc:
            raise TransportError(f"invalid request: {exc}") from None
        return sock, conn, _head(sock, conn, host.url, write_error)
    except BaseException:
        sock.close()
        raise


def send(
    host: Host,
    method: str,
    target: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes | Iterable[bytes] | None = None,
) -> Response:
    """Send one request; return once the response head has arrived."""
    sock, conn, head = _exchange(host, method, target, headers or {}, body)
    if isinstance(head, h11.InformationalResponse):  # 101 to a request that did not ask for it
        sock.close()
        raise TransportError(f"error during connect to {host.url}: unexpected status {head.status_code}")
    return Response(sock, conn, head)


def upgrade(
    host: Host, method: str, target: str, *, headers: Mapping[str, str] | None = None, body: bytes = b""
) -> tuple[socket.socket, bytes] | Response:
    """Send a ``Connection: Upgrade`` request.

    Returns ``(socket, bytes already read past the head)`` after ``101``, or the
    :class:`Response` of any other answer (an error, or a daemon that did not switch).
    """
    hdrs = {**(headers or {}), "Connection": "Upgrade", "Upgrade": "tcp"}
    sock, conn, head = _exchange(host, method, target, hdrs, body)
    if isinstance(head, h11.InformationalResponse):
        try:
            conn.next_event()  # h11.PAUSED: what follows is no longer HTTP
        except h11.RemoteProtocolError:
            pass
        leftover, _ = conn.trailing_data
        return sock, bytes(leftover)
    return Response(sock, conn, head)
