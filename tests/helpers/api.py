"""Call the Engine API of an in-process engine (aiohttp's test server, no socket file)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp.test_utils import TestClient, TestServer

from dockyard.daemon.app import make_app
from dockyard.engine import Engine

T = TypeVar("T")


def call_api(engine: Engine, script: Callable[[TestClient], Awaitable[T]]) -> T:
    """Serve ``engine``'s API for the duration of ``await script(client)`` and return its result."""

    async def run() -> Any:
        engine.containers.loop = asyncio.get_running_loop()
        async with TestClient(TestServer(make_app(engine))) as client:
            return await script(client)

    return asyncio.run(run())
