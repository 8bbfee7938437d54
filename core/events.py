"""A small in-process event bus: what ``GET /events`` streams."""

from __future__ import annotations

import asyncio
import time
from collections import deque


class EventBus:
    def __init__(self, keep: int = 1024) -> None:
        self.history: deque[dict] = deque(maxlen=keep)
        self._queues: set[asyncio.Queue] = set()

    @property
    def listeners(self) -> int:
        return len(self._queues)

    def emit(self, kind: str, action: str, actor_id: str, attributes: dict[str, str]) -> None:
        now = time.time_ns()
        event = {"status": action, "id": actor_id, "from": attributes.get("image", ""), "Type": kind,
                 "Action": action, "Actor": {"ID": actor_id, "Attributes": attributes}, "scope": "local",
                 "time": now // 1_000_000_000, "timeNano": now}
        if kind != "container":
            event.pop("status"), event.pop("id"), event.pop("from")
        self.history.append(event)
        for queue in self._queues:
            queue.put_nowait(event)

    def subscribe(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue()
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self._queues.discard(queue)
