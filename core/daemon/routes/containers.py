"""``/containers/...``: create, start, attach, wait, logs, inspect, list, stop,
kill, restart, resize, delete."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from contextlib import aclosing

from aiohttp import web

from dockyard.daemon.deps import engine as _engine
from dockyard.daemon.hijack import hijack
from dockyard.daemon.http import (JSON, add_route, cancel_when_client_leaves, frame, in_own_thread, json_response,
                                  query_bool, query_filters, query_int, read_json, spool_body, spool_from_thread,
                                  stream_file)
from dockyard.errors import DockyardError, InvalidParameter, NotSupportedByDriver
from dockyard.logs import LogEntry, LogQuery
from dockyard.models.container import CreateRequest
from dockyard.models.runtime import Resources

log = logging.getLogger(__name__)


async def create(request: web.Request) -> web.Response:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise InvalidParameter("the request body must be a JSON object")
    create_request = CreateRequest.model_validate(body)
    result = await _engine(request).containers.create(create_request, request.query.get("name") or None)
    return json_response(result, status=201)


async def start(request: web.Request) -> web.Response:
    await _engine(request).containers.start(request.match_info["id"])
    return web.Response(status=204)


async def attach(request: web.Request) -> web.StreamResponse:
    engine = _engine(request)
    ref = request.match_info["id"]
    container = engine.containers.get(ref)  # 404 before we switch protocols
    stdin, stdout, stderr = (query_bool(request, n) for n in ("stdin", "stdout", "stderr"))
    logs = query_bool(request, "logs")
    conn = await hijack(request)
    try:
        async with cancel_when_client_leaves(request):
            if logs and (stdout or stderr):
                try:
                    chunks = engine.containers.logs(container.id, LogQuery(stdout=stdout, stderr=stderr),
                                                    _renderer(container.config.tty, False))
                except NotSupportedByDriver:  # --log-driver none: no past output to replay
                    chunks = None
                if chunks is not None:
                    async with aclosing(chunks):
                        async for chunk in chunks:
                            await conn.write(chunk)
            if not query_bool(request, "stream", True):
                return conn.response
            try:
                sock = await engine.containers.attach(ref, stdin, stdout, stderr)
            except DockyardError as exc:
                log.info("attach to %s ended: %s", ref, exc)
                return conn.response
            await splice(conn, sock, stdin, detach_keys(request.query.get("detachKeys")) if stdin else b"")
    except (ConnectionResetError, BrokenPipeError):
        pass
    finally:
        conn.close()
    return conn.response


def detach_keys(spec: str | None) -> bytes:
    """Docker's detach-key syntax (``ctrl-p,ctrl-q``, ``a``, ``ctrl-@``...) as bytes."""
    keys = bytearray()
    for key in (spec or "ctrl-p,ctrl-q").split(","):
        key = key.strip()
        if key.startswith("ctrl-") and len(key) == 6:
            char = key[5]
            code = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}.get(char)
            if code is None and char.isalpha():
                code = ord(char.lower()) - ord("a") + 1
            if code is None:
                raise InvalidParameter(f"Invalid detach keys ({spec}) provided")
            keys.append(code)
        elif len(key) == 1:
            keys.append(ord(key))
        else:
            raise InvalidParameter(f"Invalid detach keys ({spec}) provided")
    return bytes(keys)


async def splice(conn, sock, stdin: bool, detach: bytes = b"") -> None:
    """Container output to the client until it ends; client bytes to stdin.

    With ``detach`` keys, typing them ends the attach (the container keeps
    running, its stdin stays open); a partial match is held back until decided.
    """
    reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
    detached = asyncio.Event()

    async def client_to_container() -> None:
        held = b""
        while data := await conn.reader.read(1 << 16):
            if not stdin:
                continue
            if detach:
                data, held = held + data, b""
                index = data.find(detach)
                if index >= 0:
                    writer.write(data[:index])
                    await writer.drain()
                    detached.set()
                    return
                for n in range(min(len(detach) - 1, len(data)), 0, -1):
                    if detach.startswith(data[-n:]):
                        data, held = data[:-n], data[-n:]
                        break
            writer.write(data)
            await writer.drain()
        if stdin and writer.can_write_eof():
            writer.write(held)
            writer.write_eof()

    async def container_to_client() -> None:
        while data := await reader.read(1 << 16):
            await conn.write(data)

    pump = asyncio.create_task(client_to_container())
    output = asyncio.create_task(container_to_client())
    stop = asyncio.create_task(detached.wait())
    try:
        await asyncio.wait([output, stop], return_when=asyncio.FIRST_COMPLETED)
        if output.done():
            output.result()
    finally:
        for task in (pump, output, stop):
            task.cancel()
        writer.close()


async def wait(request: web.Request) -> web.StreamResponse:
    engine = _engine(request)
    ref = request.match_info["id"]
    engine.containers.get(ref)
    condition = request.query.get("condition") or "not-running"
    waiter = asyncio.ensure_future(engine.containers.wait(ref, condition))
    # the client blocks until it sees the headers: send them now (docker run depends on it)
    response = web.StreamResponse(status=200, headers={"Content-Type": JSON})
    await response.prepare(request)
    try:
        async with cancel_when_client_leaves(request):
            code = await waiter
        if waiter.cancelled():  # the client left (run -d, a detached run): nobody to tell
            return response
        await response.write(json.dumps({"Error": None, "StatusCode": code}).encode() + b"\n")
    except DockyardError as exc:
        await response.write(json.dumps({"Error": {"Message": exc.message}, "StatusCode": -1}).encode() + b"\n")
    except ConnectionResetError:  # the client left (run -d, a detached run): nobody to tell
        waiter.cancel()
    except asyncio.CancelledError:
        waiter.cancel()
        raise
    return response


async def logs(request: web.Request) -> web.StreamResponse:
    engine = _engine(request)
    container = engine.containers.get(request.match_info["id"])
    tail_text = request.query.get("tail", "all")
    query = LogQuery(stdout=query_bool(request, "stdout"), stderr=query_bool(request, "stderr"),
                     tail=-1 if tail_text in ("all", "") else query_int(request, "tail", -1),
                     since=float(request.query.get("since") or 0), until=float(request.query.get("until") or 0))
    chunks = engine.containers.logs(container.id, query, _renderer(container.config.tty,
                                                                   query_bool(request, "timestamps")),
                                    follow=query_bool(request, "follow"))
    response = web.StreamResponse(status=200)
    await response.prepare(request)
    async with cancel_when_client_leaves(request):  # logs -f ended with ctrl-c: stop reading at once
        async with aclosing(chunks):
            async for chunk in chunks:
                await response.write(chunk)
    return response


def _renderer(tty: bool, timestamps: bool):
    """How a log record goes on the wire: raw with a tty, else a stdcopy frame (runs in a worker)."""
    def render(entry: LogEntry) -> bytes:
        data = entry.time.encode() + b" " + entry.data if timestamps else entry.data
        return data if tty else frame(1 if entry.stream == "stdout" else 2, data)
    return render


async def inspect(request: web.Request) -> web.Response:
    # a worker: inspect asks the network driver for the container's settings
    return json_response(await asyncio.to_thread(_engine(request).containers.inspect, request.match_info["id"]))


async def list_containers(request: web.Request) -> web.Response:
    return json_response(await _engine(request).containers.summaries(
        all_containers=query_bool(request, "all"), limit=query_int(request, "limit", -1),
        filters=query_filters(request), latest=query_bool(request, "latest"), size=query_bool(request, "size")))


async def stop(request: web.Request) -> web.Response:
    timeout = request.query.get("t")
    await _engine(request).containers.stop(request.match_info["id"], float(timeout) if timeout else None)
    return web.Response(status=204)


async def kill(request: web.Request) -> web.Response:
    await _engine(request).containers.kill(request.match_info["id"], request.query.get("signal") or None)
    return web.Response(status=204)


async def restart(request: web.Request) -> web.Response:
    timeout = request.query.get("t")
    await _engine(request).containers.restart(request.match_info["id"], float(timeout) if timeout else None)
    return web.Response(status=204)


async def resize(request: web.Request) -> web.Response:
    await _engine(request).containers.resize(request.match_info["id"], query_int(request, "h", 24),
                                             query_int(request, "w", 80))
    return web.Response(status=200)


async def delete(request: web.Request) -> web.Response:
    await _engine(request).containers.remove(request.match_info["id"], force=query_bool(request, "force"),
                                             volumes=query_bool(request, "v"))
    return web.Response(status=204)


async def rename(request: web.Request) -> web.Response:
    name = request.query.get("name")
    if not name:
        raise InvalidParameter("name must be given")
    await _engine(request).containers.rename(request.match_info["id"], name)
    return web.Response(status=204)


def _archive_path(request: web.Request) -> str:
    path = request.query.get("path")
    if not path:
        raise InvalidParameter("path must be given")
    return path


async def archive_get(request: web.Request) -> web.StreamResponse:
    engine, ref, path = _engine(request), request.match_info["id"], _archive_path(request)
    async with engine.containers.frozen(ref):   # cp, as Docker, freezes a running container
        if request.method == "HEAD":
            header = await asyncio.to_thread(engine.files.stat, ref, path)
            return web.Response(status=200, headers={"X-Docker-Container-Path-Stat": header})
        header, produce = await asyncio.to_thread(engine.files.archive, ref, path)
        # frozen (and locked) while the disk takes, not while the client does: it reads the spool after
        spool = await spool_from_thread(request, produce, engine.data_root / "tmp")
    if spool is None:
        return web.Response(status=499)  # the client left
    return await stream_file(request, spool, "application/x-tar", {"X-Docker-Container-Path-Stat": header})


async def archive_put(request: web.Request) -> web.Response:
    engine, ref, path = _engine(request), request.match_info["id"], _archive_path(request)
    body = await spool_body(request, engine.data_root / "tmp")  # a slow sender freezes nothing
    try:
        async with engine.containers.frozen(ref):
            await in_own_thread(_extract_file, engine, ref, path, body, name="cp-extract")
    finally:
        await asyncio.to_thread(os.unlink, body)
    return web.Response(status=200)


def _extract_file(engine, ref: str, path: str, body: str) -> None:
    with open(body, "rb") as f:
        engine.files.extract(ref, path, f)


async def pause(request: web.Request) -> web.Response:
    await _engine(request).containers.pause(request.match_info["id"])
    return web.Response(status=204)


async def unpause(request: web.Request) -> web.Response:
    await _engine(request).containers.unpause(request.match_info["id"])
    return web.Response(status=204)


async def top(request: web.Request) -> web.Response:
    return json_response(await _engine(request).containers.top(request.match_info["id"],
                                                               request.query.get("ps_args") or "-ef"))


async def stats(request: web.Request) -> web.StreamResponse:
    engine = _engine(request)
    ref = request.match_info["id"]
    engine.containers.get(ref)
    if not query_bool(request, "stream", True) or query_bool(request, "one-shot"):
        sample = await engine.containers.stats(ref)
        if not query_bool(request, "one-shot") and sample.get("cpu_stats"):
            await asyncio.sleep(1)  # as Docker: the second sample, with the first as its CPU base
            second = await engine.containers.stats(ref)
            if second.get("cpu_stats"):
                second["preread"], second["precpu_stats"] = sample["read"], sample["cpu_stats"]
                sample = second
        return json_response(sample)
    response = web.StreamResponse(headers={"Content-Type": JSON})
    await response.prepare(request)
    previous: dict = {}
    async with cancel_when_client_leaves(request):
        while True:
            sample = await engine.containers.stats(ref)
            sample["preread"] = previous.get("read", sample["preread"])
            sample["precpu_stats"] = previous.get("cpu_stats", {})
            await response.write(json.dumps(sample).encode() + b"\n")
            previous = sample
            if not engine.containers.is_running(sample["id"]):
                break
            await asyncio.sleep(1)
    return response


async def update(request: web.Request) -> web.Response:
    body = await read_json(request)
    resources = Resources(memory=body.get("Memory") or 0, memory_swap=body.get("MemorySwap") or 0,
                          cpu_shares=body.get("CpuShares") or 0, cpuset_cpus=body.get("CpusetCpus") or "",
                          pids_limit=max(body.get("PidsLimit") or 0, 0))
    warnings = await _engine(request).containers.update(request.match_info["id"], resources)
    return json_response({"Warnings": warnings})


def register(app: web.Application) -> None:
    add_route(app, "POST", "/containers/create", create)
    add_route(app, "GET", "/containers/json", list_containers)
    add_route(app, "POST", "/containers/{id}/start", start)
    add_route(app, "POST", "/containers/{id}/attach", attach)
    add_route(app, "POST", "/containers/{id}/wait", wait)
    add_route(app, "GET", "/containers/{id}/logs", logs)
    add_route(app, "GET", "/containers/{id}/json", inspect)
    add_route(app, "POST", "/containers/{id}/stop", stop)
    add_route(app, "POST", "/containers/{id}/kill", kill)
    add_route(app, "POST", "/containers/{id}/restart", restart)
    add_route(app, "POST", "/containers/{id}/resize", resize)
    add_route(app, "DELETE", "/containers/{id}", delete)
    add_route(app, "POST", "/containers/{id}/rename", rename)
    add_route(app, "GET", "/containers/{id}/archive", archive_get)
    add_route(app, "HEAD", "/containers/{id}/archive", archive_get)
    add_route(app, "PUT", "/containers/{id}/archive", archive_put)
    add_route(app, "POST", "/containers/{id}/pause", pause)
    add_route(app, "POST", "/containers/{id}/unpause", unpause)
    add_route(app, "GET", "/containers/{id}/top", top)
    add_route(app, "GET", "/containers/{id}/stats", stats)
    add_route(app, "POST", "/containers/{id}/update", update)

