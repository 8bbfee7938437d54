"""A small in-process event bus: what ``GET /events`` streams.

Services emit (:meth:`EventBus.emit`); the events route only streams
(:meth:`EventBus.stream`).  The last ``keep`` events are kept for ``--since``.
Events may be emitted from worker threads (a pull, a push); they are handed to the subscribers on
the event loop's thread, the only one that may touch an ``asyncio.Queue``.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator


class EventBus:
    #: events a subscriber may fall behind by; one that falls further is sent ``None`` and dropped,
    #: so a client that never reads cannot make the daemon hold every event for it
    BACKLOG = 4096

    def __init__(self, keep: int = 1024) -> None:
        self.history: deque[dict] = deque(maxlen=keep)
        self._queues: set[asyncio.Queue] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

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
        loop = self._loop
        if loop is not None and not _running(loop):
            try:
                loop.call_soon_threadsafe(self._publish, event)
            except RuntimeError:  # the loop is closed: nobody listens any more
                pass
            return
        self._publish(event)

    def _publish(self, event: dict) -> None:
        for queue in list(self._queues):
            if queue.qsize() < self.BACKLOG:
                queue.put_nowait(event)
            else:
                self._queues.discard(queue)
                queue.put_nowait(None)

    def subscribe(self) -> asyncio.Queue:
        self._loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue(self.BACKLOG + 1)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self._queues.discard(queue)

    async def stream(self, since: int = 0, until: int = 0,
                     filters: dict[str, list[str]] | None = None) -> AsyncIterator[dict]:
        """Kept events from ``since`` (unix seconds), then new ones until ``until`` (forever with 0)."""
        filters = filters or {}
        queue = self.subscribe()
        try:
            if since:
                for event in list(self.history):
                    if since <= event["time"] and (not until or event["time"] <= until) and matches(event, filters):
                        yield event
            while True:
                timeout = None
                if until:
                    timeout = until - time.time()
                    if timeout <= 0:
                        return
                try:
                    event = await asyncio.wait_for(queue.get(), timeout)
                except asyncio.TimeoutError:
                    return
                if event is None:  # the bus dropped us: we fell too far behind
                    return
                if matches(event, filters):
                    yield event
        finally:
            self.unsubscribe(queue)


def matches(event: dict, filters: dict[str, list[str]]) -> bool:
    """``docker events --filter``: type, event, container and image (ID, ID prefix or name)."""
    for key, values in filters.items():
        if key == "type" and event["Type"] not in values:
            return False
        if key == "event" and event["Action"] not in values:
            return False
        if key in ("container", "image") and not any(
                v == event["Actor"]["ID"] or event["Actor"]["ID"].startswith(v)
                or v == event["Actor"]["Attributes"].get("name") for v in values):
            return False
    return True


def _running(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether the caller runs on ``loop``'s thread."""
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
