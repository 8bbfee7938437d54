"""The daemon's HTTP rules that keep it available whatever clients do: streams stop when their
client leaves, bodies read whole are capped, the debug-mode loop-stall log names the request."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path

from aiohttp import web

from dockyard.daemon import app as daemon_app
from dockyard.daemon.http import (
    MAX_BODY,
    add_route,
    api_middleware,
    cancel_when_client_leaves,
    read_json,
    stream_from_thread,
    stream_to_thread,
)


async def serve(app: web.Application, path: Path) -> web.AppRunner:
    runner = web.AppRunner(app, handler_cancellation=False)
    await runner.setup()
    await web.UnixSite(runner, str(path)).start()
    return runner


async def request(path: Path, raw: bytes, read: int = 1) -> bytes:
    """Send a raw request, read at least ``read`` bytes, then leave (close the connection)."""
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(raw)
    data = b""
    while len(data) < read:
        chunk = await reader.read(65536)
        if not chunk:
            break
        data += chunk
    writer.close()
    return data


def test_a_stream_stops_within_a_second_of_its_client_leaving(tmp_path):
    """A stream with nothing to write (logs -f of a quiet container, events) still notices."""

    async def main() -> float:
        finished = asyncio.Event()

        async def quiet(req: web.Request) -> web.StreamResponse:
            response = web.StreamResponse()
            await response.prepare(req)
            await response.write(b"hello")
            try:
                async with cancel_when_client_leaves(req):
                    await asyncio.sleep(3600)
            finally:
                finished.set()
            return response

        app = web.Application(middlewares=[api_middleware])
        add_route(app, "GET", "/quiet", quiet)
        runner = await serve(app, tmp_path / "s")
        try:
            await request(tmp_path / "s", b"GET /quiet HTTP/1.1\r\nHost: x\r\n\r\n", read=5)
            left = time.monotonic()
            await asyncio.wait_for(finished.wait(), 5)
            return time.monotonic() - left
        finally:
            await runner.cleanup()

    assert asyncio.run(main()) < 1.0


def test_a_producer_thread_stops_when_the_client_leaves(tmp_path):
    stopped = threading.Event()
    written: list[int] = []

    def produce(out) -> None:
        try:
            while True:
                out.write(b"x" * 65536)
                written.append(1)
        finally:
            stopped.set()

    async def main() -> None:
        async def export(req: web.Request) -> web.StreamResponse:
            return await stream_from_thread(req, produce, "application/octet-stream")

        app = web.Application(middlewares=[api_middleware])
        add_route(app, "GET", "/export", export)
        runner = await serve(app, tmp_path / "s")
        try:
            await request(tmp_path / "s", b"GET /export HTTP/1.1\r\nHost: x\r\n\r\n", read=200_000)
            await asyncio.to_thread(stopped.wait, 5)
        finally:
            await runner.cleanup()

    asyncio.run(main())
    assert stopped.is_set()
    # the pipe and the client's socket buffers bound what was produced beyond what was read
    assert len(written) * 65536 < 64 << 20


def test_a_streamed_body_whose_client_leaves_ends_its_consumer(tmp_path):
    """docker import's body: consumed as it arrives, in a thread of its own (not one of the shared
    workers, which a few slow senders would otherwise fill); a client that leaves mid-body ends it."""
    seen: dict = {}

    def consume(body) -> int:
        seen["thread"] = threading.current_thread().name
        total = 0
        while chunk := body.read(65536):
            total += len(chunk)
        seen["total"] = total
        return total

    async def main() -> None:
        async def upload(req: web.Request) -> web.Response:
            try:
                return web.json_response({"total": await stream_to_thread(req, consume)})
            finally:
                seen["handler_done"] = True

        app = web.Application(middlewares=[api_middleware])
        add_route(app, "POST", "/import", upload)
        runner = await serve(app, tmp_path / "s")
        try:
            whole = await request(
                tmp_path / "s",
                b"POST /import HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                b"Content-Length: 300000\r\n\r\n" + b"x" * 300_000,
                read=10_000,
            )
            assert whole.startswith(b"HTTP/1.1 200 ") and b'"total": 300000' in whole
            assert seen["thread"] == "body-consumer"
            seen.clear()
            # a client that announces 10 MB, sends 100 KB and leaves
            await request(
                tmp_path / "s",
                b"POST /import HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n" + b"x" * 100_000,
                read=0,
            )
            deadline = time.monotonic() + 5
            while "handler_done" not in seen and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        finally:
            await runner.cleanup()

    asyncio.run(main())
    assert seen.get("handler_done") and seen.get("total", 0) < 10_000_000  # the consumer saw the body end


def test_json_bodies_are_capped(tmp_path):
    async def main() -> tuple[bytes, bytes]:
        async def echo(req: web.Request) -> web.Response:
            body = await read_json(req)
            return web.json_response({"keys": len(body)})

        app = web.Application(middlewares=[api_middleware], client_max_size=MAX_BODY)
        add_route(app, "POST", "/echo", echo)
        runner = await serve(app, tmp_path / "s")
        try:
            big = b'{"a": "' + b"x" * (MAX_BODY + 10) + b'"}'
            head = (
                b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n"
            )
            too_big = await request(tmp_path / "s", head % len(big) + big, read=10_000)
            small = await request(tmp_path / "s", head % 8 + b'{"a": 1}', read=10_000)
            return too_big, small
        finally:
            await runner.cleanup()

    too_big, small = asyncio.run(main())
    assert too_big.startswith(b"HTTP/1.1 413 ") and b'"message": "request body too large' in too_big
    assert small.startswith(b"HTTP/1.1 200 ")


def test_debug_mode_logs_a_stall_naming_the_request(tmp_path, caplog):
    async def main() -> None:
        daemon_app.watch_loop(asyncio.get_running_loop())

        async def stall(req: web.Request) -> web.Response:
            time.sleep(0.15)  # a handler blocking the loop: what the monitor is for
            return web.Response(text="done")

        app = web.Application(middlewares=[api_middleware])
        add_route(app, "GET", "/stall", stall)
        runner = await serve(app, tmp_path / "s")
        try:
            await request(tmp_path / "s", b"GET /v1.41/stall HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", read=10)
        finally:
            await runner.cleanup()

    with caplog.at_level(logging.WARNING, logger="asyncio"):
        asyncio.run(main())
    stalls = [r.getMessage() for r in caplog.records if r.name == "asyncio" and "took" in r.getMessage()]
    assert any("GET /v1.41/stall" in m for m in stalls), stalls
