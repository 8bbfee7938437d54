"""TLS for the daemon's TCP listeners, as Docker's ``--tls``/``--tlsverify`` flags set it up.

``--tls`` serves TCP over TLS with ``--tlscert``/``--tlskey``; ``--tlsverify``
(implies ``--tls``) also requires every client to present a certificate signed by
``--tlscacert`` (mutual TLS: the only way to expose the API beyond the host
safely).  The files default to ``ca.pem``, ``cert.pem`` and ``key.pem`` in
``$DOCKER_CERT_PATH`` or ``~/.docker``, as Docker's do.  Unix sockets never use TLS.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from dockyard.errors import InvalidParameter

log = logging.getLogger(__name__)


def cert_dir() -> Path:
    return Path(os.environ.get("DOCKER_CERT_PATH") or Path.home() / ".docker")


@dataclass(frozen=True)
class TlsSettings:
    enabled: bool = False
    verify: bool = False
    cacert: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    def context(self) -> ssl.SSLContext | None:
        """The server context, or None without TLS; a 400-class error names a missing or bad file."""
        if not (self.enabled or self.verify):
            return None
        base = cert_dir()
        cert, key = self.cert or base / "cert.pem", self.key or base / "key.pem"
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise InvalidParameter(f"cannot load the TLS certificate {cert} and key {key}: {exc}") from None
        if self.verify:
            ca = self.cacert or base / "ca.pem"
            try:
                context.load_verify_locations(cafile=str(ca))
            except (OSError, ssl.SSLError) as exc:
                raise InvalidParameter(f"cannot load the TLS CA certificate {ca}: {exc}") from None
            context.verify_mode = ssl.CERT_REQUIRED
        return context


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class TlsConnection(asyncio.Protocol):
    """One client connection over TLS, decrypted into an ordinary connection to the API.

    asyncio's own TLS transport cannot half-close: when a client shuts down its
    sending side (the docker CLI does, at the TCP level, once a hijacked
    attach's stdin is done) it tears the whole connection down, and the
    container's output is lost.  So TLS is done here with ``ssl.SSLObject``
    over memory buffers, and the plain bytes travel over a socket pair whose
    other end the API server (``app_factory``, aiohttp's server) accepts like
    any connection: a TCP half-close becomes a half-close of the pair, which
    hijacked connections keep open for the output.
    """

    HANDSHAKE_TIMEOUT = 30.0

    def __init__(self, context: ssl.SSLContext, app_factory) -> None:
        self.context = context
        self.app_factory = app_factory
        self.raw: asyncio.Transport | None = None
        self.inner: asyncio.Transport | None = None
        self.pending: list[bytes] = []  # plain bytes decrypted before the inner side was ready
        self.pending_eof = False
        self.handshaken = False
        self.closed = False
        self.timer: asyncio.TimerHandle | None = None

    # -- the client's side (TLS over TCP) ---------------------------------------------------------------

    def connection_made(self, transport) -> None:
        loop = asyncio.get_running_loop()
        self.raw = transport
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = self.context.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.timer = loop.call_later(self.HANDSHAKE_TIMEOUT, self._abort)
        api_end, our_end = socket.socketpair()
        loop.create_task(self._connect_inner(api_end, our_end))

    async def _connect_inner(self, api_end: socket.socket, our_end: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(self.app_factory, api_end)
            transport, _ = await loop.connect_accepted_socket(lambda: _Plain(self), our_end)
        except OSError:
            api_end.close()
            our_end.close()
            self._abort()
            return
        self.inner = transport
        if self.closed:
            transport.close()
            return
        for data in self.pending:
            transport.write(data)
        self.pending.clear()
        if self.pending_eof:
            transport.write_eof()

    def data_received(self, data: bytes) -> None:
        self.incoming.write(data)
        try:
            if not self.handshaken:
                try:
                    self.tls.do_handshake()
                except ssl.SSLWantReadError:
                    return
                self.handshaken = True
                if self.timer is not None:
                    self.timer.cancel()
            while True:
                try:
                    chunk = self.tls.read(1 << 16)
                except ssl.SSLWantReadError:
                    break
                except ssl.SSLZeroReturnError:
                    chunk = b""
                if not chunk:  # close_notify (Go's tls.Conn.CloseWrite): the client is done sending
                    self._plain_eof()
                    break
                self._to_api(chunk)
        except ssl.SSLError as exc:
            log.info("TLS connection from %s refused: %s", self._peer(), exc.reason or exc)
            self._flush()
            self._abort()
            return
        finally:
            self._flush()

    def eof_received(self) -> bool:
        """A TCP half-close (docker's ``CloseWrite`` under TLS): pass it on, keep sending."""
        if not self.handshaken:
            return False
        self._plain_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
        if self.inner is not None:
            self.inner.close()

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_reading()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_reading()

    # -- helpers ----------------------------------------------------------------------------------------

    def _peer(self) -> str:
        peer = self.raw.get_extra_info("peername") if self.raw is not None else None
        return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "?"

    def _to_api(self, data: bytes) -> None:
        if self.inner is None:
            self.pending.append(data)
        else:
            self.inner.write(data)

    def _plain_eof(self) -> None:
        if self.inner is None:
            self.pending_eof = True
        elif self.inner.can_write_eof() and not self.inner.is_closing():
            self.inner.write_eof()

    def _flush(self) -> None:
        data = self.outgoing.read()
        if data and self.raw is not None and not self.raw.is_closing():
            self.raw.write(data)

    def _abort(self) -> None:
        self.closed = True
        if self.raw is not None and not self.raw.is_closing():
            self.raw.close()
        if self.inner is not None:
            self.inner.close()

    # -- the API's side (plain bytes over the socket pair) -------------------------------------------------

    def from_api(self, data: bytes) -> None:
        if self.closed or not self.handshaken:
            return
        try:
            self.tls.write(data)
        except ssl.SSLError:
            self._abort()
            return
        self._flush()

    def api_done(self) -> None:
        """The API closed the connection: send close_notify and close."""
        if self.closed:
            return
        if self.handshaken:
            try:
                self.tls.unwrap()
            except ssl.SSLError:
                pass
            self._flush()
        self.closed = True
        if self.raw is not None and not self.raw.is_closing():
            self.raw.close()


class _Plain(asyncio.Protocol):
    """Our end of the socket pair: what the API writes goes out encrypted."""

    def __init__(self, outer: TlsConnection) -> None:
        self.outer = outer

    def data_received(self, data: bytes) -> None:
        self.outer.from_api(data)

    def eof_received(self) -> bool:
        self.outer.api_done()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.outer.api_done()

    def pause_writing(self) -> None:
        if self.outer.raw is not None:
            self.outer.raw.pause_reading()

    def resume_writing(self) -> None:
        if self.outer.raw is not None:
            self.outer.raw.resume_reading()
