"""A tiny in-process fake of the Engine API, for the CLI client's own logic only.

It serves a unix socket from a thread (``http.server``, HTTP/1.1) and knows just
enough to drive the CLI: create/attach(101 hijack)/wait(headers flushed at
once)/start of scripted "processes", ps, images, logs, inspect, import, rmi,
stop/kill/restart/rm.  Every request is recorded in ``engine.requests``.  Real
end-to-end behaviour is tested against the real daemon elsewhere.

Scripted commands (the container's ``Cmd``):

* ``echo ARGS...``  -> ARGS on stdout, exit 0
* ``cat``           -> echo stdin back once it reaches EOF, exit 0
* ``fail``          -> "oops" on stderr, exit 3
* ``nope``          -> ``POST /start`` fails like a missing executable
"""

from __future__ import annotations

import hashlib
import itertools
import json
import socketserver
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

IMAGE_ID = "sha256:" + "ab" * 32


def frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(payload)) + payload


class Container:
    def __init__(self, cid: str, name: str, body: dict[str, Any]) -> None:
        self.id = cid
        self.name = name
        self.body = body
        self.tty = bool(body.get("Tty"))
        self.state = "created"
        self.exit_code = 0
        self.exited = threading.Event()
        self.attach_sock = None
        self.attach_ready = threading.Event()
        self.stdin_done = threading.Event()
        self.stdin = b""
        self.output: list[tuple[int, bytes]] = []

    def inspect(self) -> dict[str, Any]:
        return {
            "Id": self.id,
            "Created": "2026-11-29T05:49:52.597634005Z",
            "Name": "/" + self.name,
            "State": {"Status": self.state, "Running": self.state == "running", "ExitCode": self.exit_code},
            "Image": IMAGE_ID,
            "Config": {
                "Tty": self.tty,
                "OpenStdin": bool(self.body.get("OpenStdin")),
                "Cmd": self.body.get("Cmd"),
                "Image": self.body.get("Image"),
                "Env": self.body.get("Env"),
            },
            "HostConfig": self.body.get("HostConfig", {}),
        }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    engine: FakeEngine

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    # -- helpers ----------------------------------------------------------------------------

    def read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def reply(self, status: int, body: Any = None, content_type: str | None = "application/json") -> None:
        raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        self.send_response(status)
        self.send_header("Api-Version", "1.41")
        if content_type and raw:
            self.send_header("Content-Type", content_type)
        if status not in (204, 304):
            self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        if raw:
            self.wfile.write(raw)

    def error(self, status: int, message: str) -> None:
        self.reply(status, {"message": message})

    def start_chunked(self, content_type: str | None = "application/json") -> None:
        self.send_response(200)
        self.send_header("Api-Version", "1.41")
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

    def chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # -- dispatch ---------------------------------------------------------------------------

    def handle_any(self) -> None:
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        query_all = parse_qs(parts.query)
        body = b"" if self.headers.get("Upgrade") else self.read_body()
        self.engine.requests.append((self.command, path, query, body))
        if path == "/_ping":
            return self.reply(200, b"OK", "text/plain")
        if not path.startswith("/v1.41/"):
            return self.error(400, f"unversioned path {path}")
        path = path[len("/v1.41") :]
        self.engine.route(self, self.command, path, query, query_all, body)

    do_GET = do_POST = do_DELETE = do_HEAD = handle_any


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class FakeEngine:
    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.containers: dict[str, Container] = {}
        self.images: list[dict[str, Any]] = [
            {"Id": IMAGE_ID, "RepoTags": ["busybox:latest"], "Created": int(time.time()) - 1800, "Size": 1981952},
            {
                "Id": "sha256:" + "cd" * 32,
                "RepoTags": ["alpine:3.10", "alpine:latest"],
                "Created": int(time.time()) - 780,
                "Size": 1990000,
            },
            {"Id": "sha256:" + "ef" * 32, "RepoTags": [], "Created": int(time.time()) - 5, "Size": 0},
        ]
        self.logs: list[tuple[int, bytes]] = [(1, b"line 1\n"), (2, b"err 1\n"), (1, b"line 2\n")]
        self._ids = itertools.count(1)
        handler = type("BoundHandler", (Handler,), {"engine": self})
        self.server = Server(socket_path, handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> FakeEngine:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def host(self) -> str:
        return f"unix://{self.socket_path}"

    def paths(self) -> list[str]:
        return [f"{m} {p}" for m, p, _, _ in self.requests]

    def find(self, ref: str) -> Container | None:
        for c in self.containers.values():
            if ref in (c.id, c.name) or c.id.startswith(ref):
                return c
        return None

    # -- routes -----------------------------------------------------------------------------

    def route(
        self, h: Handler, method: str, path: str, q: dict[str, str], qa: dict[str, list[str]], body: bytes
    ) -> None:
        segs = path.strip("/").split("/")
        if path == "/version":
            return h.reply(
                200,
                {
                    "Version": "0.1.0",
                    "ApiVersion": "1.41",
                    "MinAPIVersion": "1.24",
                    "Os": "linux",
                    "Arch": "amd64",
                    "Components": [
                        {
                            "Name": "Engine",
                            "Version": "0.1.0",
                            "Details": {
                                "ApiVersion": "1.41",
                                "MinAPIVersion": "1.24",
                                "Os": "linux",
                                "Arch": "amd64",
                                "BuildTime": "2026-05-07T21:09:36.000000000+00:00",
                                "Experimental": "false",
                                "GitCommit": "abc1234",
                            },
                        }
                    ],
                },
            )
        if path == "/info":
            return h.reply(
                200,
                {
                    "Containers": len(self.containers),
                    "ContainersRunning": 0,
                    "ContainersPaused": 0,
                    "ContainersStopped": len(self.containers),
                    "Images": len(self.images),
                    "ServerVersion": "0.1.0",
                    "Driver": "vfs",
                    "DriverStatus": [],
                    "NCPU": 2,
                    "MemTotal": 25276510208,
                    "Name": "vm",
                    "OSType": "linux",
                    "Warnings": ["WARNING: fake engine"],
                },
            )
        if path == "/containers/json":
            return h.reply(
                200,
                [
                    {
                        "Id": c.id,
                        "Names": ["/" + c.name],
                        "Image": c.body["Image"],
                        "Command": " ".join(c.body.get("Cmd") or []),
                        "Created": int(time.time()) - 3,
                        "Ports": [],
                        "Status": "Exited (0) 1 second ago",
                        "State": c.state,
                    }
                    for c in self.containers.values()
                ],
            )
        if path == "/images/get":  # a "tar" of 5 x 64 KiB chunks
            h.start_chunked()
            for n in range(5):
                h.chunk(bytes([65 + n]) * 65536)
            return h.end_chunks()
        if path == "/images/json":
            return h.reply(200, self.images)
        if path == "/containers/create" and method == "POST":
            data = json.loads(body)
            if data["Image"].startswith("missing"):
                return h.error(404, f"No such image: {data['Image']}:latest")
            cid = hashlib.sha256(str(next(self._ids)).encode()).hexdigest()
            name = q.get("name") or f"fake_{len(self.containers)}"
            self.containers[cid] = Container(cid, name, data)
            return h.reply(201, {"Id": cid, "Warnings": []})
        if path == "/images/create" and method == "POST":
            digest = "sha256:" + hashlib.sha256(body).hexdigest()
            h.start_chunked()
            h.chunk(json.dumps({"status": digest}).encode() + b"\r\n")
            return h.end_chunks()
        if segs[0] == "images" and method == "GET" and segs[-1] == "json":
            name = "/".join(segs[1:-1])
            for image in self.images:
                if name in image["RepoTags"] or name + ":latest" in image["RepoTags"]:
                    return h.reply(200, image)
            return h.error(404, f"no such image: {name}: No such image: {name}:latest")
        if segs[0] == "images" and method == "DELETE":
            name = "/".join(segs[1:])
            for image in self.images:
                if name in image["RepoTags"] or name + ":latest" in image["RepoTags"]:
                    return h.reply(200, [{"Untagged": name}, {"Deleted": image["Id"]}])
            return h.error(404, f"No such image: {name}")
        if segs[0] == "containers" and len(segs) >= 2:
            c = self.find(segs[1])
            if c is None:
                return h.error(404, f"No such container: {segs[1]}")
            action = segs[2] if len(segs) > 2 else ""
            return self.container_route(h, method, action, c, q)
        return h.error(404, f"page not found: {method} {path}")

    def container_route(self, h: Handler, method: str, action: str, c: Container, q: dict[str, str]) -> None:
        if method == "DELETE" and not action:
            if c.state == "running" and not q.get("force"):
                return h.error(409, f"You cannot remove a running container {c.id}.")
            del self.containers[c.id]
            return h.reply(204)
        if action == "json":
            return h.reply(200, c.inspect())
        if action == "attach":
            return self.attach(h, c, q)
        if action == "wait":
            h.start_chunked()
            c.exited.wait(10)
            h.chunk(json.dumps({"StatusCode": c.exit_code, "Error": None}).encode() + b"\n")
            return h.end_chunks()
        if action == "start":
            cmd = c.body.get("Cmd") or []
            if cmd[:1] == ["nope"]:
                return h.error(400, 'failed to create task: exec: "nope": executable file not found in $PATH')
            c.state = "running"
            threading.Thread(target=self.process, args=(c,), daemon=True).start()
            return h.reply(204)
        if action == "logs":
            h.start_chunked(content_type=None)
            for stream, payload in self.logs:
                h.chunk(payload if c.tty else frame(stream, payload))
            return h.end_chunks()
        if action in ("stop", "kill", "restart", "resize"):
            return h.reply(204)
        return h.error(404, f"page not found: {action}")

    def attach(self, h: Handler, c: Container, q: dict[str, str]) -> None:
        h.wfile.write(
            b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
            b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
        )
        h.wfile.flush()
        c.attach_sock = h.wfile
        c.attach_ready.set()

        def read_stdin() -> None:
            try:
                while data := h.rfile.read1(65536):
                    c.stdin += data
            except (OSError, ValueError):
                pass
            c.stdin_done.set()

        reader = threading.Thread(target=read_stdin, daemon=True)
        reader.start()
        c.exited.wait(10)
        h.close_connection = True

    def process(self, c: Container) -> None:
        cmd = c.body.get("Cmd") or []
        if cmd[:1] == ["echo"]:
            out = [(1, (" ".join(cmd[1:]) + "\n").encode())]
        elif cmd[:1] == ["cat"]:
            c.stdin_done.wait(5)
            out = [(1, c.stdin), (2, b"done\n")]
        elif cmd[:1] == ["fail"]:
            out = [(2, b"oops\n")]
            c.exit_code = 3
        else:
            out = []
        if c.attach_ready.is_set() and c.attach_sock is not None:
            for stream, payload in out:
                c.attach_sock.write(payload if c.tty else frame(stream, payload))
            c.attach_sock.flush()
        c.state = "exited"
        c.exited.set()
