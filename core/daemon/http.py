"""HTTP conventions the docker CLI and docker-py depend on.

* every response carries ``Api-Version``, ``Ostype``, ``Docker-Experimental``
  and ``Server`` (moby's middleware does the same);
* errors are ``{"message": ...}`` with ``Content-Type: application/json``
  exactly (the CLI compares the header verbatim);
* every route is served with and without a ``/v1.xx`` prefix, and a version
  above ours is refused with 400.

And the rules that keep the daemon's availability independent of what clients do:

* a body read whole (``request.read()``, every JSON body) is capped at
  :data:`MAX_BODY` (413); bodies that can be large (import, load, build
  context, archive PUT) are streamed to files or pipes in chunks;
* a streaming handler runs under :func:`cancel_when_client_leaves`, so its
  work stops and its resources are freed within :data:`CLIENT_CHECK` seconds
  of its client leaving (aiohttp itself never cancels a handler: a client that
  leaves must not interrupt a state change half-way);
* blocking work (files, archives, drivers, SQLite) runs in worker threads; work
  as long as a client makes it (a stream's producer, a pull) runs in a thread of
  its own (:func:`in_own_thread`), so slow clients cannot take every worker.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import threading
import re
import select
import struct
import tempfile
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, BinaryIO, Callable

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

#: the largest body read whole (every JSON body); Docker's CLI sends a few KiB
MAX_BODY = 1 << 20
#: how often a streaming handler looks whether its client is still connected
CLIENT_CHECK = 0.25


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
    task = asyncio.current_task()
    if task is not None:  # aiohttp runs each request in a task: the loop-stall log names it so
        task.set_name(f"{request.method} {request.path}")
    version = request.match_info.get("version")
    if version:
        if _version_tuple(version) > _version_tuple(API_VERSION):
            return _with_headers(
                error_response(
                    f"client version {version} is too new. Maximum supported API version is {API_VERSION}", 400
                )
            )
        if _version_tuple(version) < _version_tuple(MIN_API_VERSION):
            return _with_headers(
                error_response(
                    f"client version {version} is too old. Minimum supported API version is {MIN_API_VERSION}, "
                    "please upgrade your client to a newer version",
                    400,
                )
            )
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status == 413:  # aiohttp's text names the limit and the size
            response = error_response(f"request body too large: {exc.text}", 413)
        elif exc.status >= 400:
            response = error_response(
                exc.reason if exc.status != 404 else f"page not found: {request.method} {request.path}", exc.status
            )
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
    except ConnectionError:  # the client left: nobody to answer, and not a bug (aiohttp's writing of
        response = web.Response(status=499)  # this one fails quietly)
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


def add_route(
    app: web.Application,
    method: str,
    path: str,
    handler: Handler,
    *,
    query: type[Query] | None = None,
    body: type[BaseModel] | None = None,
    optional_body: bool = False,
    binary_body: bool = False,
) -> None:
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
            out += self.pending[8 : 8 + size]
            self.pending = self.pending[8 + size :]
        return bytes(out)


async def json_stream_response(request: web.Request) -> web.StreamResponse:
    """A chunked ``application/json`` stream of JSON messages (pull, import, build)."""
    response = web.StreamResponse(status=200, headers={"Content-Type": JSON})
    _with_headers(response)
    await response.prepare(request)
    return response


async def write_message(response: web.StreamResponse, message: dict) -> None:
    await response.write(json.dumps(message).encode() + b"\r\n")


def client_gone(request: web.Request) -> bool:
    """Whether the client closed its connection.  A hijacked one (attach, exec) stays open on the
    client's half-close, so its socket is asked: POLLHUP means both directions are shut (on a unix
    socket, the client closed it; a TCP peer's plain close shows only once we write to it)."""
    transport = request.transport
    if transport is None or transport.is_closing():
        return True
    sock = transport.get_extra_info("socket")
    if sock is None:
        return False
    poller = select.poll()
    poller.register(sock.fileno(), 0)  # POLLHUP and POLLERR are reported whatever is asked
    return any(events & (select.POLLHUP | select.POLLERR) for _, events in poller.poll(0))


@asynccontextmanager
async def cancel_when_client_leaves(request: web.Request, interval: float = CLIENT_CHECK) -> AsyncIterator[None]:
    """Run the block until it ends or the client's connection closes, looked at every ``interval``
    seconds; then the block is cancelled (its ``finally`` clauses free what it holds) and the
    ``with`` exits normally.  For streaming handlers: a stream whose client left must stop, even
    one with nothing to write (``logs -f`` on a quiet container, ``events``, an attach)."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    left = False
    handle: asyncio.TimerHandle  # set below, before the first look

    def look() -> None:
        nonlocal handle, left
        if client_gone(request):
            left = True
            task.cancel()
        else:
            handle = loop.call_later(interval, look)

    handle = loop.call_later(interval, look)
    try:
        yield
    except asyncio.CancelledError:
        if not left:
            raise
        task.uncancel()
    except ConnectionError:  # a write found the client gone first
        pass
    finally:
        handle.cancel()


async def start_thread(thread: threading.Thread) -> None:
    """``thread.start()`` off the loop: it waits until the new thread runs, which takes long on a
    loaded machine (tens of ms, measured as loop stalls in the soak)."""
    await asyncio.get_running_loop().run_in_executor(None, thread.start)


async def in_own_thread(fn: Callable[..., Any], *args: Any, name: str = "long-work") -> Any:
    """Run ``fn(*args)`` in a thread of its own and await its result.  For work that lasts as long
    as a client makes it last: on the shared worker threads, enough slow clients would leave no
    worker for anyone else.  Cancelling the await does not stop the thread; ``fn`` must watch for
    its own end (a closed pipe, a stop event)."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(result: Any, exc: BaseException | None) -> None:
        if not future.done():
            future.set_exception(exc) if exc is not None else future.set_result(result)

    def run() -> None:
        try:
            result = fn(*args)
        except BaseException as exc:  # handed to the awaiting task
            loop.call_soon_threadsafe(settle, None, exc)
        else:
            loop.call_soon_threadsafe(settle, result, None)

    await start_thread(threading.Thread(target=run, name=name, daemon=True))
    return await future


def large_pipe() -> tuple[int, int]:
    """A pipe of 1 MiB (the default 64 KiB makes a 200 MB stream 3 200 reads and writes more)."""
    read_fd, write_fd = os.pipe()
    try:
        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:  # above /proc/sys/fs/pipe-max-size for an unprivileged process: the default
        pass
    return read_fd, write_fd


async def stream_from_thread(
    request: web.Request, produce: Callable[[Any], None], content_type: str, headers: dict[str, str] | None = None
) -> web.StreamResponse:
    """Run ``produce(file)`` in a thread writing into a pipe; stream the pipe out.

    The loop reads the pipe without blocking, and the pipe holds the worker back when the client
    reads slowly (memory stays bounded).  When the client leaves, the pipe is closed: the worker's
    next write fails (EPIPE; SIGPIPE is ignored in the daemon) and it stops."""
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

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", buffering=0)
    )
    response = web.StreamResponse(headers={"Content-Type": content_type, **(headers or {})})
    thread = threading.Thread(target=worker, name="stream-producer", daemon=True)
    try:
        await start_thread(thread)
        async with cancel_when_client_leaves(request):
            first = await reader.read(1 << 20)
            if failure and not first:
                raise failure[0]
            await response.prepare(request)
            chunk = first
            while chunk:
                await response.write(chunk)
                chunk = await reader.read(1 << 20)
    finally:
        transport.close()
        await asyncio.to_thread(thread.join)
    if failure and not isinstance(failure[0], BrokenPipeError):
        log.error("%s %s: the stream ended early: %s", request.method, request.path, failure[0])
    return response


async def stream_to_thread(request: web.Request, consume: Callable[[BinaryIO], Any]) -> Any:
    """Run ``consume(file)`` in a thread of its own reading the request body from a pipe; returns its
    result.

    The body is fed as it arrives, never held whole (the pipe holds the loop back when ``consume`` is
    slower than the client); if ``consume`` stops early (an error), the rest of the body is not read
    and its error is raised.  A client that leaves mid-body closes the pipe: ``consume`` sees the end
    of a truncated body, fails, and the failure is raised here."""
    read_fd, write_fd = large_pipe()
    reader = os.fdopen(read_fd, "rb")
    # its own thread: it lasts as long as the client takes to send (see in_own_thread)
    task = asyncio.ensure_future(in_own_thread(consume, reader, name="body-consumer"))
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


# -- spooling: a container is frozen for as long as the disk takes, never as long as a client takes --


class _Stopped(Exception):
    """Raised in a spooling thread once its client has gone."""


class _StoppableFile:
    """A file whose writes fail once ``stop`` is set (the producer stops at its next write)."""

    def __init__(self, f: BinaryIO, stop: threading.Event) -> None:
        self._f, self._stop = f, stop

    def write(self, data: bytes) -> int:
        if self._stop.is_set():
            raise _Stopped("the client went away")
        return self._f.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


async def spool_from_thread(request: web.Request, produce: Callable[[Any], None], directory: os.PathLike) -> str | None:
    """Run ``produce(file)`` into a temporary file under ``directory`` (in a thread of its own) and
    return the file's path, or None when the client left meanwhile (the producer is stopped at its
    next write, the file removed).  For output made while a container is frozen (``export``,
    ``cp``): the freeze then lasts as long as writing to disk takes, and the client reads the file
    afterwards at its own pace (:func:`stream_file`)."""
    fd, path = tempfile.mkstemp(prefix="spool-", dir=directory)
    stop = threading.Event()

    def run() -> None:
        with os.fdopen(fd, "wb") as out:
            produce(_StoppableFile(out, stop))

    task = asyncio.ensure_future(in_own_thread(run, name="spool"))
    done = False
    try:
        async with cancel_when_client_leaves(request):
            await asyncio.shield(task)
            done = True
    finally:
        if not done:
            stop.set()
            await asyncio.gather(task, return_exceptions=True)
            os.unlink(path)
    return path if done else None


async def stream_file(
    request: web.Request, path: str, content_type: str, headers: dict[str, str] | None = None
) -> web.StreamResponse:
    """Stream a spooled file (:func:`spool_from_thread`) to the client, then remove it."""

    def copy(out: BinaryIO) -> None:
        out.flush()
        with open(path, "rb") as f:  # kernel to kernel, as export's own sendfile into the pipe was
            size, offset = os.fstat(f.fileno()).st_size, 0
            while offset < size:
                sent = os.sendfile(out.fileno(), f.fileno(), offset, min(size - offset, PIPE_SIZE))
                if not sent:
                    break
                offset += sent

    try:
        return await stream_from_thread(request, copy, content_type, headers)
    finally:
        await asyncio.to_thread(os.unlink, path)


async def spool_body(request: web.Request, directory: os.PathLike) -> str:
    """The request body in a temporary file under ``directory``, written as it arrives (a client that
    sends slowly holds nothing but its own request); the caller removes the file."""
    fd, path = tempfile.mkstemp(prefix="body-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in request.content.iter_chunked(1 << 20):
                await asyncio.to_thread(out.write, chunk)
    except BaseException:
        os.unlink(path)
        raise
    return path
