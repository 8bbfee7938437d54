"""Hijacked connections: ``POST /containers/{id}/attach`` over a raw socket.

The client writes the HTTP request itself with ``Connection: Upgrade`` and
``Upgrade: tcp``, reads the answer up to the blank line and requires status
101.  From then on the socket is a plain byte pipe: the daemon writes stdcopy
frames (raw pty bytes with a TTY) and closes the connection when the process
has exited; the client writes raw stdin and half-closes (``SHUT_WR``) when its
stdin ends, or straight away when it attaches no stdin (docker/cli
``hijack.go``).  httpx cannot hand over its socket, hence this module.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from typing import BinaryIO

from .client import API_VERSION, USER_AGENT, CliError, DaemonError, Host, quote_ref, unreachable

__all__ = ["HijackedConnection", "attach", "open_hijack", "pump_stdin"]

MAX_HEADER = 64 * 1024
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
        # the TCP half-close, under TLS too (as the docker CLI did): SSLSocket.shutdown would drop the TLS
        # session and leave the rest of the output unreadable; dockyard's daemon takes a bare FIN as EOF
        try:
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


def _connect(host: Host) -> socket.socket:
    try:
        if host.socket_path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(host.socket_path)
            except BaseException:
                sock.close()
                raise
            return sock
        assert host.address is not None
        sock = socket.create_connection(host.address, timeout=10)
        if host.tls is None:
            return sock
        try:
            return host.tls.context().wrap_socket(sock, server_hostname=host.address[0])
        except BaseException:
            sock.close()
            raise
    except OSError as exc:
        raise unreachable(host, exc) from None


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """Read up to and including the blank line; return (head, bytes after it)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise CliError("unable to upgrade to tcp: connection closed by the daemon")
        data += chunk
        if len(data) > MAX_HEADER:
            raise CliError("unable to upgrade to tcp: response headers too large")
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise CliError(f"unable to upgrade to tcp: malformed status line {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


def _read_error_body(sock: socket.socket, headers: dict[str, str], rest: bytes) -> bytes:
    body = rest
    try:
        if "content-length" in headers:
            length = int(headers["content-length"])
            while len(body) < length:
                chunk = sock.recv(RECV_SIZE)
                if not chunk:
                    break
                body += chunk
            return body[:length]
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while b"0\r\n\r\n" not in body:
                chunk = sock.recv(RECV_SIZE)
                if not chunk:
                    break
                body += chunk
            return _dechunk(body)
        sock.settimeout(5)
        while chunk := sock.recv(RECV_SIZE):
            body += chunk
    except OSError:
        pass
    return body


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return out


def _message(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
        if isinstance(data, dict) and isinstance(data.get("message"), str):
            return data["message"]
    except ValueError:
        pass
    return text


def open_hijack(
    host: Host, path: str, *, body: bytes = b"", content_type: str = "text/plain"
) -> HijackedConnection:
    """POST ``/v1.41{path}`` with an upgrade request and return the hijacked connection."""
    sock = _connect(host)
    try:
        request = (
            f"POST /v{API_VERSION}{path} HTTP/1.1\r\n"
            "Host: localhost\r\n"
            f"User-Agent: {USER_AGENT}\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Connection: Upgrade\r\n"
            f"Content-Type: {content_type}\r\n"
            "Upgrade: tcp\r\n"
            "\r\n"
        ).encode("latin-1") + body
        sock.sendall(request)
        head, rest = _read_head(sock)
        status, headers = _parse_head(head)
        if status >= 400:
            raise DaemonError(status, _message(_read_error_body(sock, headers, rest)))
        if status != 101:
            raise CliError(f"unable to upgrade to tcp, received {status}")
        sock.settimeout(None)
        return HijackedConnection(sock, rest)
    except BaseException:
        sock.close()
        raise


def attach(
    host: Host, container_id: str, *, stdin: bool, stdout: bool = True, stderr: bool = True,
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
