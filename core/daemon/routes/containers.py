"""``/containers/...``: create, start, attach, wait, logs, inspect, list, stop,
kill, restart, resize, delete, prune, update, rename, pause, top, stats, archive."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from contextlib import aclosing
from typing import Annotated

from aiohttp import WSMsgType, web
from pydantic import Field

from dockyard import platforms
from dockyard.detachkeys import detach_keys
from dockyard.daemon.deps import engine as _engine
from dockyard.daemon.hijack import hijack
from dockyard.daemon.http import (
    JSON,
    Unframe,
    add_route,
    cancel_when_client_leaves,
    frame,
    in_own_thread,
    json_response,
    spool_body,
    spool_from_thread,
    stream_file,
)
from dockyard.daemon.params import Bool, FilterKeys, FiltersParam, Query, body, query
from dockyard.errors import DockyardError, InvalidParameter, NotSupportedByDriver
from dockyard.filters import Filters
from dockyard.logs import LogEntry, LogQuery
from dockyard.models.api import NoOp
from dockyard.models.container import CreateRequest, UpdateRequest

log = logging.getLogger(__name__)

#: ``docker ps --filter`` keys (moby's acceptedPsFilterTags)
PS_FILTERS = (
    "ancestor",
    "before",
    "exited",
    "expose",
    "health",
    "id",
    "isolation",
    "is-task",
    "label",
    "name",
    "network",
    "publish",
    "since",
    "status",
    "volume",
)
PRUNE_FILTERS = ("until", "label", "label!")


class CreateQuery(Query):
    name: str | None = None
    platform: str = ""


async def create(request: web.Request) -> web.Response:
    q = query(request, CreateQuery)
    platforms.check(q.platform)
    result = await _engine(request).containers.create(body(request, CreateRequest), q.name)
    return json_response(result, status=201)


class StartQuery(Query):
    detach_keys: Annotated[str, NoOp("Docker reads detach keys from attach, not from start")] = Field(
        default="", alias="detachKeys"
    )


async def start(request: web.Request) -> web.Response:
    await _engine(request).containers.start(request.match_info["id"])
    return web.Response(status=204)


class AttachQuery(Query):
    detach_keys: str = Field(default="", alias="detachKeys")
    logs: Bool = False
    stream: Bool = False
    stdin: Bool = False
    stdout: Bool = False
    stderr: Bool = False


async def attach(request: web.Request) -> web.StreamResponse:
    engine = _engine(request)
    q = query(request, AttachQuery)
    ref = request.match_info["id"]
    container = engine.containers.get(ref)  # 404 before we switch protocols
    stdin, stdout, stderr = q.stdin, q.stdout, q.stderr
    keys = detach_keys(q.detach_keys) if stdin else b""
    conn = await hijack(request)
    try:
        async with cancel_when_client_leaves(request):
            if q.logs and (stdout or stderr):
                try:
                    chunks = engine.containers.logs(
                        container.id, LogQuery(stdout=stdout, stderr=stderr), _renderer(container.config.tty, False)
                    )
                except NotSupportedByDriver:  # --log-driver none: no past output to replay
                    chunks = None
                if chunks is not None:
                    async with aclosing(chunks):
                        async for chunk in chunks:
                            await conn.write(chunk)
            if not q.stream:
                return conn.response
            try:
                sock = await engine.containers.attach(ref, stdin, stdout, stderr)
            except DockyardError as exc:
                log.info("attach to %s ended: %s", ref, exc)
                return conn.response
            await splice(conn, sock, stdin, keys)
    except (ConnectionResetError, BrokenPipeError):
        pass
    finally:
        conn.close()
    return conn.response


class AttachWsQuery(Query):
    detach_keys: str = Field(default="", alias="detachKeys")
    logs: Bool = False
    stream: Bool = False


async def attach_ws(request: web.Request) -> web.StreamResponse:
    """``GET /containers/{id}/attach/ws``: the container's stdin, stdout and stderr over a websocket, as
    Docker serves them for API 1.41: all three streams, output unmultiplexed in binary messages, input
    from the client's messages; the detach keys end it."""
    engine = _engine(request)
    q = query(request, AttachWsQuery)
    container = engine.containers.get(request.match_info["id"])  # 404 before the upgrade
    keys = detach_keys(q.detach_keys or None)
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    try:
        if q.logs:
            try:  # output unmultiplexed: each record's data as it is
                chunks = engine.containers.logs(
                    container.id, LogQuery(stdout=True, stderr=True), _renderer(True, False)
                )
            except NotSupportedByDriver:  # --log-driver none: no past output to replay
                chunks = None
            if chunks is not None:
                async with aclosing(chunks):
                    async for chunk in chunks:
                        await ws.send_bytes(chunk)
        if q.stream:
            sock = await engine.containers.attach(container.id, True, True, True)
            reader, writer = await asyncio.open_connection(sock=sock)
            unframe = None if container.config.tty else Unframe()

            async def output() -> None:
                while data := await reader.read(1 << 16):
                    data = unframe(data) if unframe is not None else data
                    if data:
                        await ws.send_bytes(data)

            async def input_() -> None:
                typed = b""
                async for message in ws:
                    if message.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
                        continue
                    data = message.data if isinstance(message.data, bytes) else message.data.encode()
                    window = typed + data
                    index = window.find(keys) if keys else -1
                    if index >= 0:  # detached: what came before the keys goes in, the container runs on
                        writer.write(window[len(typed) : index] if index > len(typed) else b"")
                        await writer.drain()
                        return
                    typed = window[len(window) - len(keys) + 1 :] if len(keys) > 1 else b""
                    writer.write(data)
                    await writer.drain()

            tasks = [asyncio.create_task(output()), asyncio.create_task(input_())]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                writer.close()
    except (ConnectionResetError, DockyardError) as exc:
        log.info("websocket attach to %s ended: %s", container.id[:12], exc)
    finally:
        await ws.close()
    return ws


async def splice(
    conn, sock, stdin: bool, detach: bytes = b"", transform: Callable[[bytes], bytes] | None = None
) -> None:
    """Container output to the client until it ends; client bytes to stdin.

    With ``detach`` keys, typing them ends the attach (the container keeps
    running, its stdin stays open); a partial match is held back until decided.
    ``transform`` rewrites the output on its way (exec framing).
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
            if transform is not None:
                data = transform(data)
            if data:
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


class WaitQuery(Query):
    condition: str = "not-running"


async def wait(request: web.Request) -> web.StreamResponse:
    engine = _engine(request)
    ref = request.match_info["id"]
    engine.containers.get(ref)
    condition = query(request, WaitQuery).condition
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


class LogsQuery(Query):
    follow: Bool = False
    stdout: Bool = False
    stderr: Bool = False
    since: str = ""
    until: str = ""
    timestamps: Bool = False
    tail: str = "all"


def _unix_time(name: str, value: str) -> float:
    """``since`` / ``until`` of logs: unix seconds with an optional fraction (what the docker CLI sends)."""
    if not value:
        return 0.0
    try:
        return float(value)
    except ValueError:
        raise InvalidParameter(f"invalid value for {name}: {value!r} is not a unix timestamp") from None


async def logs(request: web.Request) -> web.StreamResponse:
    engine = _engine(request)
    q = query(request, LogsQuery)
    container = engine.containers.get(request.match_info["id"])
    if q.tail in ("all", ""):
        tail = -1
    else:
        try:
            tail = int(q.tail)
        except ValueError:
            raise InvalidParameter(f"invalid value for tail: {q.tail!r}") from None
    log_query = LogQuery(
        stdout=q.stdout,
        stderr=q.stderr,
        tail=tail,
        since=_unix_time("since", q.since),
        until=_unix_time("until", q.until),
    )
    chunks = engine.containers.logs(
        container.id, log_query, _renderer(container.config.tty, q.timestamps), follow=q.follow
    )
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


class InspectQuery(Query):
    size: Bool = False


async def inspect(request: web.Request) -> web.Response:
    containers = _engine(request).containers
    return json_response(
        await asyncio.to_thread(containers.inspect, request.match_info["id"], query(request, InspectQuery).size)
    )


class ListQuery(Query):
    all: Bool = False
    limit: int = -1
    size: Bool = False
    filters: Annotated[FiltersParam, FilterKeys(*PS_FILTERS)] = Filters()


async def list_containers(request: web.Request) -> web.Response:
    q = query(request, ListQuery)
    return json_response(
        await _engine(request).containers.summaries(all_containers=q.all, limit=q.limit, filters=q.filters, size=q.size)
    )


class StopQuery(Query):
    t: int | None = None


async def stop(request: web.Request) -> web.Response:
    await _engine(request).containers.stop(request.match_info["id"], query(request, StopQuery).t)
    return web.Response(status=204)


class KillQuery(Query):
    signal: str = "SIGKILL"


async def kill(request: web.Request) -> web.Response:
    await _engine(request).containers.kill(request.match_info["id"], query(request, KillQuery).signal)
    return web.Response(status=204)


async def restart(request: web.Request) -> web.Response:
    await _engine(request).containers.restart(request.match_info["id"], query(request, StopQuery).t)
    return web.Response(status=204)


class ResizeQuery(Query):
    h: int
    w: int


async def resize(request: web.Request) -> web.Response:
    q = query(request, ResizeQuery)
    await _engine(request).containers.resize(request.match_info["id"], q.h, q.w)
    return web.Response(status=200)


class DeleteQuery(Query):
    v: Bool = False
    force: Bool = False
    link: Bool = False


async def delete(request: web.Request) -> web.Response:
    q = query(request, DeleteQuery)
    containers = _engine(request).containers
    if q.link:  # DELETE /containers/{id}?link=1: the id is "/<parent>/<alias>", a legacy link
        await containers.remove_link(request.match_info["id"])
    else:
        await containers.remove(request.match_info["id"], force=q.force, volumes=q.v)
    return web.Response(status=204)


class RenameQuery(Query):
    name: str


async def rename(request: web.Request) -> web.Response:
    await _engine(request).containers.rename(request.match_info["id"], query(request, RenameQuery).name)
    return web.Response(status=204)


class ArchiveQuery(Query):
    path: str


class ArchivePutQuery(ArchiveQuery):
    no_overwrite_dir_non_dir: Bool = Field(default=False, alias="noOverwriteDirNonDir")
    copy_uid_gid: Bool = Field(default=False, alias="copyUIDGID")


async def archive_get(request: web.Request) -> web.StreamResponse:
    engine, ref, path = _engine(request), request.match_info["id"], query(request, ArchiveQuery).path
    async with engine.containers.frozen(ref):  # cp, as Docker, freezes a running container
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
    engine, ref, q = _engine(request), request.match_info["id"], query(request, ArchivePutQuery)
    body = await spool_body(request, engine.data_root / "tmp")  # a slow sender freezes nothing
    try:
        async with engine.containers.frozen(ref):
            await in_own_thread(_extract_file, engine, ref, q, body, name="cp-extract")
    finally:
        await asyncio.to_thread(os.unlink, body)
    return web.Response(status=200)


def _extract_file(engine, ref: str, q: ArchivePutQuery, body: str) -> None:
    with open(body, "rb") as f:
        engine.files.extract(
            ref, q.path, f, no_overwrite_dir_non_dir=q.no_overwrite_dir_non_dir, copy_uid_gid=q.copy_uid_gid
        )


async def pause(request: web.Request) -> web.Response:
    await _engine(request).containers.pause(request.match_info["id"])
    return web.Response(status=204)


async def unpause(request: web.Request) -> web.Response:
    await _engine(request).containers.unpause(request.match_info["id"])
    return web.Response(status=204)


class TopQuery(Query):
    ps_args: str = "-ef"


async def top(request: web.Request) -> web.Response:
    return json_response(
        await _engine(request).containers.top(request.match_info["id"], query(request, TopQuery).ps_args)
    )


class StatsQuery(Query):
    stream: Bool = True
    one_shot: Bool = Field(default=False, alias="one-shot")


async def stats(request: web.Request) -> web.StreamResponse:
    engine = _engine(request)
    q = query(request, StatsQuery)
    ref = request.match_info["id"]
    engine.containers.get(ref)
    if not q.stream or q.one_shot:
        sample = await engine.containers.stats(ref)
        if not q.one_shot and sample.get("cpu_stats"):
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
    warnings = await _engine(request).containers.update(request.match_info["id"], body(request, UpdateRequest))
    return json_response({"Warnings": warnings})


class PruneQuery(Query):
    filters: Annotated[FiltersParam, FilterKeys(*PRUNE_FILTERS)] = Filters()


async def prune(request: web.Request) -> web.Response:
    deleted, reclaimed = await _engine(request).containers.prune(query(request, PruneQuery).filters)
    return json_response({"ContainersDeleted": deleted, "SpaceReclaimed": reclaimed})


def register(app: web.Application) -> None:
    add_route(app, "POST", "/containers/create", create, query=CreateQuery, body=CreateRequest)
    add_route(app, "GET", "/containers/json", list_containers, query=ListQuery)
    add_route(app, "POST", "/containers/prune", prune, query=PruneQuery)
    add_route(app, "POST", "/containers/{id}/start", start, query=StartQuery)
    add_route(app, "POST", "/containers/{id}/attach", attach, query=AttachQuery)
    add_route(app, "GET", "/containers/{id}/attach/ws", attach_ws, query=AttachWsQuery)
    add_route(app, "POST", "/containers/{id}/wait", wait, query=WaitQuery)
    add_route(app, "GET", "/containers/{id}/logs", logs, query=LogsQuery)
    add_route(app, "GET", "/containers/{id}/json", inspect, query=InspectQuery)
    add_route(app, "POST", "/containers/{id}/stop", stop, query=StopQuery)
    add_route(app, "POST", "/containers/{id}/kill", kill, query=KillQuery)
    add_route(app, "POST", "/containers/{id}/restart", restart, query=StopQuery)
    add_route(app, "POST", "/containers/{id}/resize", resize, query=ResizeQuery)
    # a name, or a legacy link's "/<parent>/<alias>" (rm --link): no deeper, or every unknown GET under
    # /containers/ would match it and be answered 405 instead of 404 (docker inspect asks for a container
    # first, and tries an image only after a 404)
    add_route(app, "DELETE", "/containers/{id:/?[^/]+(?:/[^/]+)?}", delete, query=DeleteQuery)
    add_route(app, "POST", "/containers/{id}/rename", rename, query=RenameQuery)
    add_route(app, "GET", "/containers/{id}/archive", archive_get, query=ArchiveQuery)
    add_route(app, "HEAD", "/containers/{id}/archive", archive_get, query=ArchiveQuery)
    add_route(app, "PUT", "/containers/{id}/archive", archive_put, query=ArchivePutQuery, binary_body=True)
    add_route(app, "POST", "/containers/{id}/pause", pause)
    add_route(app, "POST", "/containers/{id}/unpause", unpause)
    add_route(app, "GET", "/containers/{id}/top", top, query=TopQuery)
    add_route(app, "GET", "/containers/{id}/stats", stats, query=StatsQuery)
    add_route(app, "POST", "/containers/{id}/update", update, body=UpdateRequest)
