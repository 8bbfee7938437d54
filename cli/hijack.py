"""Hijacked connections: ``POST /containers/{id}/attach`` over a raw socket.

The request carries ``Connection: Upgrade`` and ``Upgrade: tcp``, and the
answer must be status 101.  From then on the socket is a plain byte pipe: the daemon writes stdcopy
frames (raw pty bytes with a TTY) and closes the connection when the process
has exited; the client writes raw stdin and half-closes (``SHUT_WR``) when its
stdin ends, or straight away when it attaches no stdin (docker/cli
``hijack.go``).  The handshake is :func:`dockyard.cli.transport.upgrade`; this
module owns the byte pipe that follows.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from typing import BinaryIO

from .client import API_VERSION, USER_AGENT, CliError, DaemonError, Host, error_message, quote_ref, unreachable

__all__ = ["HijackedConnection", "attach", "open_hijack", "pump_stdin"]

RECV_SIZE = 64 * 1024


class HijackedConnection:
    """The raw socket after a 101, plus any stream bytes read along with the headers."""

    def __init__(self, sock: socket.socket, leftover: bytes = b"") -> None:
        self.sock = sock
        self._leftover = leftover

    def chunks(self) -> Iterator[bytes]:
        """Yield what the daemon sends until it closes the connection."""
        if self._leftover:
            data, self._leftover = self._leftover, b""
            yield data
        while True:
            try:
                data = self.sock.recv(RECV_SIZE)
            except ConnectionResetError:
                return
            except OSError:
                # Closed locally (close()) while we were reading.
                return
            if not data:
                return
            yield data

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close_write(self) -> None:
        try:
            # the TCP half-close, under TLS too (as the docker CLI did): SSLSocket.shutdown would drop the
            # TLS session and leave the rest of the output unreadable; dockyard's daemon takes a bare FIN as EOF
            socket.socket.shutdown(self.sock, socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> HijackedConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_hijack(host: Host, path: str, *, body: bytes = b"", content_type: str = "text/plain") -> HijackedConnection:
    """POST ``/v1.41{path}`` with an upgrade request and return the hijacked connection."""
    from . import transport

    headers = {"User-Agent": USER_AGENT, "Content-Type": content_type}
    try:
        answer = transport.upgrade(host, "POST", f"/v{API_VERSION}{path}", headers=headers, body=body)
    except transport.ConnectFailed as exc:
        raise unreachable(host, exc.cause) from None
    if isinstance(answer, tuple):
        sock, leftover = answer
        return HijackedConnection(sock, leftover)
    with contextlib.closing(answer):
        if answer.status_code >= 400:
            raise DaemonError(answer.status_code, error_message(answer.read()))
        raise CliError(f"unable to upgrade to tcp, received {answer.status_code}")


def attach(
    host: Host,
    container_id: str,
    *,
    stdin: bool,
    stdout: bool = True,
    stderr: bool = True,
    detach_keys: str | None = None,
) -> HijackedConnection:
    """Attach to a container's streams the way ``docker run``/``start -a`` do."""
    flags = {"stderr": stderr, "stdin": stdin, "stdout": stdout, "stream": True}
    query = "&".join(f"{name}=1" for name, on in flags.items() if on)
    if detach_keys:
        from urllib.parse import quote

        query += f"&detachKeys={quote(detach_keys)}"
    conn = open_hijack(host, f"/containers/{quote_ref(container_id)}/attach?{query}")
    if not stdin:
        # Nothing will ever be written: tell the daemon right away (docker does too).
        conn.close_write()
    return conn


def _read_chunk(source: BinaryIO) -> bytes:
    try:
        fd = source.fileno()
    except (OSError, ValueError, AttributeError):
        reader = getattr(source, "read1", None) or source.read
        return reader(RECV_SIZE)
    return os.read(fd, RECV_SIZE)


def pump_stdin(conn: HijackedConnection, source: BinaryIO) -> threading.Thread:
    """Copy ``source`` to the connection in a daemon thread; half-close at its EOF."""

    def run() -> None:
        try:
            while data := _read_chunk(source):
                conn.send(data)
        except (OSError, ValueError):
            pass
        finally:
            conn.close_write()

    thread = threading.Thread(target=run, name="dockyard-stdin", daemon=True)
    thread.start()
    return thread
