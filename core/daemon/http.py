"""HTTP conventions the docker CLI and docker-py depend on.

* every response carries ``Api-Version``, ``Ostype``, ``Docker-Experimental``
  and ``Server`` (moby's middleware does the same);
* errors are ``{"message": ...}`` with ``Content-Type: application/json``
  exactly (the CLI compares the header verbatim);
* every route is served with and without a ``/v1.xx`` prefix, and a version
  above ours is refused with 400.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import threading
import re
import struct
from typing import Any, Awaitable, BinaryIO, Callable

from aiohttp import web
from pydantic import BaseModel

from dockyard import API_VERSION, MIN_API_VERSION, __version__
from dockyard.daemon.params import Endpoint, Query, RefusedEndpoint, bind, read_json, refuse  # noqa: F401
from dockyard.errors import DockyardError, NotModified, status_for

log = logging.getLogger(__name__)

JSON = "application/json"
VERSION_PREFIX = re.compile(r"^/v(\d+\.\d+)(/.*)$")
COMMON_HEADERS = {
    "Api-Version": API_VERSION,
    "Ostype": "linux",
    "Docker-Experimental": "false",
    "Server": f"Dockyard/{__version__} (linux)",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: bytes a stream's pipe holds (``F_SETPIPE_SZ``; Linux allows 1 MiB unprivileged by default)
PIPE_SIZE = 1 << 20


def _version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split("."))


def json_response(data: Any, status: int = 200) -> web.Response:
    body = json.dumps(data).encode() + b"\n"
    return web.Response(body=body, status=status, headers={"Content-Type": JSON})


def error_response(message: str, status: int) -> web.Response:
    if status == 304:
        return web.Response(status=304)
    return json_response({"message": message}, status)


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    version = request.match_info.get("version")
    if version:
        if _version_tuple(version) > _version_tuple(API_VERSION):
            return _with_headers(error_response(
                f"client version {version} is too new. Maximum supported API version is {API_VERSION}", 400))
        if _version_tuple(version) < _version_tuple(MIN_API_VERSION):
            return _with_headers(error_response(
                f"client version {version} is too old. Minimum supported API version is {MIN_API_VERSION}, "
                "please upgrade your client to a newer version", 400))
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400:
            response = error_response(exc.reason if exc.status != 404 else
                                      f"page not found: {request.method} {request.path}", exc.status)
        else:
            raise
    except NotModified:
        response = web.Response(status=304)
    except DockyardError as exc:
        status = status_for(exc)
        if status >= 500:
            log.error("%s %s: %s", request.method, request.path, exc)
        response = error_response(exc.message, status)
    except json.JSONDecodeError as exc:
        response = error_response(f"invalid JSON in request body: {exc}", 400)
    except ValueError as exc:  # pydantic ValidationError is a ValueError
        response = error_response(f"invalid request: {_short_validation(exc)}", 400)
    except ConnectionResetError:
        raise
    except Exception as exc:  # a bug: answer 500 rather than drop the connection
        log.exception("%s %s failed", request.method, request.path)
        response = error_response(f"internal error: {exc}", 500)
    return _with_headers(response)


def _with_headers(response: web.StreamResponse) -> web.StreamResponse:
    if not response.prepared:
        for key, value in COMMON_HEADERS.items():
            response.headers.setdefault(key, value)
    return response


def _short_validation(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        parts = []
        for e in errors()[:3]:
            loc = ".".join(str(p) for p in e.get("loc", ()))
            parts.append(f"{loc}: {e.get('msg')}")
        return "; ".join(parts)
    return str(exc)


def add_route(app: web.Application, method: str, path: str, handler: Handler, *, query: type[Query] | None = None,
              body: type[BaseModel] | None = None, optional_body: bool = False, binary_body: bool = False) -> None:
    """Register ``path`` both unversioned and under ``/v{version}``, with what it reads: its query
    model, its JSON body model or a binary body (see :mod:`dockyard.daemon.params`)."""
    bound = bind(handler, Endpoint(query=query, body=body, optional_body=optional_body, binary_body=binary_body))
    app.router.add_route(method, path, bound)
    app.router.add_route(method, r"/v{version:\d+\.\d+}" + path, bound)


def refuse_route(app: web.Application, method: str, path: str, endpoint: RefusedEndpoint) -> None:
    """Register a whole endpoint as refused (a feature dockyard does not have)."""
    handler = refuse(endpoint)
    app.router.add_route(method, path, handler)
    app.router.add_route(method, r"/v{version:\d+\.\d+}" + path, handler)


def frame(stream: int, payload: bytes) -> bytes:
    """One Docker stdcopy frame: [stream, 0, 0, 0, len_be32] + payload."""
    return struct.pack(">BxxxL", stream, len(payload)) + payload


class Unframe:
    """stdcopy frames in, their payloads out (a frame may arrive in pieces)."""

    def __init__(self) -> None:
        self.pending = b""

    def __call__(self, data: bytes) -> bytes:
        self.pending += data
        out = bytearray()
        while len(self.pending) >= 8:
            size = int.from_bytes(self.pending[4:8], "big")
            if len(self.pending) < 8 + size:
                break
            out += self.pending[8:8 + size]
            self.pending = self.pending[8 + size:]
        return bytes(out)


async def json_stream_response(request: web.Request) -> web.StreamResponse:
    """A chunked ``application/json`` stream of JSON messages (pull, import, build)."""
    response = web.StreamResponse(status=200, headers={"Content-Type": JSON})
    _with_headers(response)
    await response.prepare(request)
    return response


async def write_message(response: web.StreamResponse, message: dict) -> None:
    await response.write(json.dumps(message).encode() + b"\r\n")


def large_pipe() -> tuple[int, int]:
    """A pipe of 1 MiB (the default 64 KiB makes a 200 MB stream 3 200 reads and writes more)."""
    read_fd, write_fd = os.pipe()
    try:
        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:  # above /proc/sys/fs/pipe-max-size for an unprivileged process: the default
        pass
    return read_fd, write_fd


async def stream_from_thread(request: web.Request, produce: Callable[[BinaryIO], Any], content_type: str,
                             headers: dict[str, str] | None = None) -> web.StreamResponse:
    """Run ``produce(file)`` in a thread writing into a pipe; stream the pipe out."""
    read_fd, write_fd = large_pipe()
    failure: list[BaseException] = []

    def worker() -> None:
        out = os.fdopen(write_fd, "wb")
        try:
            produce(out)
        except BaseException as exc:  # reported by closing the stream early
            failure.append(exc)  # before the close below: the reader checks it when it sees the end
        finally:
            try:
                out.close()
            except OSError:
                pass

    response = web.StreamResponse(headers={"Content-Type": content_type, **(headers or {})})
    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    try:
        first = await asyncio.to_thread(os.read, read_fd, 1 << 20)
        if failure:
            raise failure[0]
        await response.prepare(request)
        chunk = first
        while chunk:
            await response.write(chunk)
            chunk = await asyncio.to_thread(os.read, read_fd, 1 << 20)
    finally:
        os.close(read_fd)
        await asyncio.to_thread(thread.join)
    return response


async def stream_to_thread(request: web.Request, consume: Callable[[BinaryIO], Any]) -> Any:
    """Run ``consume(file)`` in a thread reading the request body from a pipe; returns its result.

    The body is fed as it arrives, never held whole; if ``consume`` stops early
    (an error), the rest of the body is not read and its error is raised.
    """
    read_fd, write_fd = large_pipe()
    reader = os.fdopen(read_fd, "rb")
    task = asyncio.ensure_future(asyncio.to_thread(consume, reader))
    try:
        with os.fdopen(write_fd, "wb") as pipe:
            async for chunk in request.content.iter_chunked(1 << 20):
                if task.done():
                    break
                await asyncio.to_thread(pipe.write, chunk)
    except BrokenPipeError:
        pass
    finally:
        await asyncio.wait([task])
        reader.close()
    return task.result()
