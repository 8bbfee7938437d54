"""The CLI's HTTP/1.1 (cli/transport.py) against scripted servers: framing, streaming, failures."""

from __future__ import annotations

import socket
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from dockyard.cli import transport
from dockyard.cli.client import APIClient, DaemonError, DaemonUnreachable, parse_host


def read_request(conn: socket.socket) -> bytes:
    """The request head, plus the body when it is length- or chunk-framed."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head = data.split(b"\r\n\r\n")[0].lower()
    if b"transfer-encoding: chunked" in head:
        while not data.endswith(b"0\r\n\r\n"):
            data += conn.recv(65536)
    elif b"content-length: " in head:
        length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
        while len(data.split(b"\r\n\r\n", 1)[1]) < length:
            data += conn.recv(65536)
    return data


def serve(
    handler: Callable[[socket.socket, list[bytes]], None], tcp: bool = False
) -> tuple[str, list[bytes], threading.Thread]:
    """A one-connection server (unix, or TCP on a free loopback port) running ``handler``."""
    record: list[bytes] = []
    if tcp:
        server = socket.create_server(("127.0.0.1", 0))
        host = f"tcp://127.0.0.1:{server.getsockname()[1]}"
    else:
        path = str(Path(tempfile.mkdtemp(prefix="dy-tr-")) / "s.sock")
        server = socket.socket(socket.AF_UNIX)
        server.bind(path)
        server.listen(1)
        host = f"unix://{path}"

    def run() -> None:
        conn, _ = server.accept()
        try:
            handler(conn, record)
        finally:
            conn.close()
            server.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return host, record, thread


def reply(answer: bytes) -> Callable[[socket.socket, list[bytes]], None]:
    def handler(conn: socket.socket, record: list[bytes]) -> None:
        record.append(read_request(conn))
        conn.sendall(answer)

    return handler


def test_json_request_and_answer_over_tcp() -> None:
    host, record, thread = serve(
        reply(b'HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"Id": "x"}'),
        tcp=True,
    )
    api = APIClient(parse_host(host))
    assert api.post("/containers/create", {"Image": "busybox"}, name="web").json() == {"Id": "x"}
    thread.join(5)
    request = record[0].decode()
    port = host.rsplit(":", 1)[1]
    assert request.startswith("POST /v1.41/containers/create?name=web HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{port}\r\n" in request and "User-Agent: Dockyard-Client/0.1.0\r\n" in request
    assert "Content-Type: application/json\r\nContent-Length: 20\r\n" in request
    assert request.endswith('\r\n\r\n{"Image": "busybox"}')


def test_query_conventions() -> None:
    host, record, thread = serve(reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]"))
    APIClient(parse_host(host)).get_json(
        "/images/json",
        all=True,
        quiet=False,
        filters={"reference": {"a b": True}},
        changes=["CMD x", "ENV y=1"],
        since=None,
    )
    thread.join(5)
    line = record[0].split(b"\r\n")[0].decode()
    assert line == (
        "GET /v1.41/images/json?all=1&filters=%7B%22reference%22%3A%7B%22a+b%22%3Atrue%7D%7D"
        "&changes=CMD+x&changes=ENV+y%3D1 HTTP/1.1"
    )


def test_iterable_body_is_sent_chunked_and_post_without_body_says_so() -> None:
    host, record, thread = serve(reply(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
    APIClient(parse_host(host)).request("POST", "/images/load", content=iter([b"abc", b"", b"defg"]))
    thread.join(5)
    assert b"Transfer-Encoding: chunked\r\n" in record[0]
    assert record[0].endswith(b"\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n")
    host, record, thread = serve(reply(b"HTTP/1.1 204 No Content\r\n\r\n"))
    APIClient(parse_host(host)).post("/containers/x/start")
    thread.join(5)
    assert b"Content-Length: 0\r\n" in record[0]


def test_chunked_stream_arrives_as_it_is_sent() -> None:
    go = threading.Event()

    def handler(conn: socket.socket, record: list[bytes]) -> None:
        record.append(read_request(conn))
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        conn.sendall(b"9\r\nline one\n\r\n3\r\ntwo\r\n")
        go.wait(5)  # the client must see the first line before the rest is even sent
        euro = "€ three\r\n".encode()
        conn.sendall(b"%x\r\n%s\r\n" % (len(euro[:2]), euro[:2]))  # a UTF-8 character split across chunks
        conn.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(euro[2:]), euro[2:]))

    host, _, thread = serve(handler)
    lines = []
    with APIClient(parse_host(host)).stream("GET", "/events") as response:
        assert response.status_code == 200 and response.headers["transfer-encoding"] == "chunked"
        for line in response.iter_lines():
            lines.append(line)
            go.set()
    thread.join(5)
    assert lines == ["line one", "two€ three"]


def test_daemon_gone_mid_stream() -> None:
    def handler(conn: socket.socket, record: list[bytes]) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")

    host, _, thread = serve(handler)
    with APIClient(parse_host(host)).stream("GET", "/containers/x/logs") as response:
        chunks = response.iter_bytes()
        assert next(chunks) == b"hello"
        with pytest.raises(transport.TransportError, match="^error during connect: "):
            next(chunks)


def test_error_answer_before_the_upload_is_taken_wins_over_the_broken_pipe() -> None:
    def handler(conn: socket.socket, record: list[bytes]) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(4096)
        body = b'{"message":"invalid tar header"}'
        conn.sendall(
            b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n%s" % (len(body), body)
        )
        conn.shutdown(socket.SHUT_WR)

    host, _, thread = serve(handler)
    big = (b"x" * 65536 for _ in range(512))  # 32 MiB: far more than the socket buffers hold
    with pytest.raises(DaemonError) as info:
        APIClient(parse_host(host)).request("POST", "/build", content=big)
    assert info.value.status == 400 and info.value.daemon_message == "invalid tar header"


def test_head_answer_has_headers_and_no_body() -> None:
    host, _, thread = serve(
        reply(b"HTTP/1.1 200 OK\r\nX-Docker-Container-Path-Stat: e30=\r\nContent-Length: 99\r\n\r\n")
    )
    response = APIClient(parse_host(host)).request("HEAD", "/containers/x/archive", params={"path": "/"})
    assert response.headers.get("x-docker-container-path-stat") == "e30=" and response.content == b""


def test_not_http_and_no_answer() -> None:
    host, _, _ = serve(reply(b"SSH-2.0-OpenSSH_9.2\r\n\r\n"))
    with pytest.raises(transport.TransportError, match="^error during connect to unix://"):
        APIClient(parse_host(host)).get_json("/version")
    host, _, _ = serve(lambda conn, record: read_request(conn))
    with pytest.raises(transport.TransportError, match="closed the connection without answering"):
        APIClient(parse_host(host)).get_json("/version")


def test_nothing_listening_is_unreachable(tmp_path: Path) -> None:
    with pytest.raises(DaemonUnreachable, match="Is the daemon running"):
        APIClient(parse_host(f"unix://{tmp_path}/none.sock")).get_json("/version")
    free = socket.create_server(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    with pytest.raises(DaemonUnreachable, match=f"tcp://127.0.0.1:{port}"):
        APIClient(parse_host(f"tcp://127.0.0.1:{port}")).get_json("/version")
