"""The raw-socket attach: upgrade handshake, error mapping, half-close."""

from __future__ import annotations

import socket
import tempfile
import threading
from pathlib import Path

import pytest

from dockyard.cli import hijack
from dockyard.cli.client import CliError, DaemonError, parse_host
from dockyard.cli.stdcopy import encode_frame


def serve_once(reply: bytes, record: list[bytes]) -> tuple[str, threading.Thread]:
    """A one-connection unix server: read the request head, send ``reply``, drain, close."""
    tmp = tempfile.mkdtemp(prefix="dy-hj-")
    path = str(Path(tmp) / "s.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(1)

    def run() -> None:
        conn, _ = server.accept()
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(4096)
        conn.sendall(reply)
        while chunk := conn.recv(4096):  # until the client half-closes
            data += chunk
        record.append(data)
        conn.close()
        server.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return f"unix://{path}", thread


def test_attach_request_and_stream_after_101() -> None:
    record: list[bytes] = []
    head = b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n"
    host, thread = serve_once(head + encode_frame(1, b"hi\n"), record)
    conn = hijack.attach(parse_host(host), "abc", stdin=False)
    data = b"".join(conn.chunks())
    conn.close()
    thread.join(5)
    assert data == encode_frame(1, b"hi\n")
    request = record[0].decode()
    assert request.startswith("POST /v1.41/containers/abc/attach?stderr=1&stdout=1&stream=1 HTTP/1.1\r\n")
    assert "Connection: Upgrade\r\n" in request and "Upgrade: tcp\r\n" in request


def test_error_status_becomes_daemon_error() -> None:
    body = b'{"message":"No such container: abc"}'
    reply = b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )
    host, _ = serve_once(reply, [])
    with pytest.raises(DaemonError) as info:
        hijack.attach(parse_host(host), "abc", stdin=False)
    assert str(info.value) == "Error response from daemon: No such container: abc"
    assert info.value.status == 404


def test_200_instead_of_101_is_refused() -> None:
    host, _ = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", [])
    with pytest.raises(CliError, match="unable to upgrade to tcp, received 200"):
        hijack.attach(parse_host(host), "abc", stdin=False)


def test_nothing_listening() -> None:
    with pytest.raises(CliError, match="Is the daemon running"):
        hijack.attach(parse_host("unix:///nonexistent/dy.sock"), "abc", stdin=False)


def test_pump_stdin_sends_then_half_closes() -> None:
    import io

    record: list[bytes] = []
    host, thread = serve_once(b"HTTP/1.1 101 UPGRADED\r\n\r\n", record)
    conn = hijack.attach(parse_host(host), "abc", stdin=True)
    hijack.pump_stdin(conn, io.BytesIO(b"to-cat\n")).join(5)
    thread.join(5)  # the server only finishes once it has seen our half-close
    assert not thread.is_alive()
    assert record[0].endswith(b"\r\n\r\nto-cat\n")
    conn.close()
