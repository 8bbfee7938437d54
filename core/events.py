"""A small in-process event bus: what ``GET /events`` streams.

Services emit (:meth:`EventBus.emit`); the events route only streams
(:meth:`EventBus.stream`).  The last ``keep`` events are kept for ``--since``.
Events may be emitted from worker threads (a pull, a push); they are handed to the subscribers on
the event loop's thread, the only one that may touch an ``asyncio.Queue``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator

from dockyard import reference
from dockyard.errors import DockyardError
from dockyard.filters import Filters


class EventBus:
    """Services emit from the event loop or from worker threads; each subscriber's queue is fed on
    its own loop."""

    #: events a subscriber may fall behind by; one that falls further is sent ``None`` and dropped,
    #: so a client that never reads cannot make the daemon hold every event for it
    BACKLOG = 4096

    def __init__(self, keep: int = 1024) -> None:
        self.history: deque[dict] = deque(maxlen=keep)
        self._queues: dict[asyncio.Queue, asyncio.AbstractEventLoop] = {}
        self._lock = threading.Lock()

    @property
    def listeners(self) -> int:
        return len(self._queues)

    def emit(self, kind: str, action: str, actor_id: str, attributes: dict[str, str]) -> None:
        now = time.time_ns()
        event = {
            "status": action,
            "id": actor_id,
            "from": attributes.get("image", ""),
            "Type": kind,
            "Action": action,
            "Actor": {"ID": actor_id, "Attributes": attributes},
            "scope": "local",
            "time": now // 1_000_000_000,
            "timeNano": now,
        }
        if kind != "container":
            event.pop("status"), event.pop("id"), event.pop("from")
        with self._lock:
            self.history.append(event)
            subscribers = list(self._queues.items())
        for queue, loop in subscribers:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                self._offer(queue, event)
            elif not loop.is_closed():
                try:
                    loop.call_soon_threadsafe(self._offer, queue, event)
                except RuntimeError:  # the loop closed meanwhile: nobody listens any more
                    pass

    def _offer(self, queue: asyncio.Queue, event: dict) -> None:
        """Hand ``event`` to one subscriber (on its loop), or drop a subscriber that fell too far behind."""
        if queue.qsize() < self.BACKLOG:
            queue.put_nowait(event)
            return
        with self._lock:
            subscribed = self._queues.pop(queue, None) is not None
        if subscribed:
            queue.put_nowait(None)

    def subscribe(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(self.BACKLOG + 1)
        with self._lock:
            self._queues[queue] = asyncio.get_running_loop()
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        with self._lock:
            self._queues.pop(queue, None)

    async def stream(
        self, since: float = 0, until: float = 0, filters: Filters | None = None
    ) -> AsyncGenerator[dict, None]:
        """Kept events from ``since`` (unix seconds), then new ones until ``until`` (forever with 0;
        with an ``until`` in the past, only kept events)."""
        filters = filters or Filters()
        queue = self.subscribe()
        try:
            if since or (until and until <= time.time()):
                with self._lock:
                    kept = list(self.history)
                for event in kept:
                    at = event["timeNano"] / 1e9
                    if since <= at and (not until or at <= until) and matches(event, filters):
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


#: ``docker events --filter`` keys (moby's events filter); swarm and plugin ones match nothing here,
#: as no such object exists on this daemon
EVENT_FILTERS = (
    "config",
    "container",
    "daemon",
    "event",
    "image",
    "label",
    "network",
    "node",
    "plugin",
    "scope",
    "secret",
    "service",
    "type",
    "volume",
)


def matches(event: dict, filters: Filters) -> bool:
    """moby's event filter: every key given must hold."""
    actor = event["Actor"]
    attributes = actor["Attributes"]
    action = event["Action"]
    if any(v in ("health_status", "exec_create", "exec_start") for v in filters.get("event")):
        # "health_status" stands for "health_status: healthy" and the rest
        if not filters.fuzzy_match("event", action):
            return False
    elif not filters.exact_match("event", action):
        return False
    if not filters.exact_match("type", event["Type"]) or not filters.exact_match("scope", event["scope"]):
        return False
    for kind in ("daemon", "container", "plugin", "volume", "network", "node", "service", "secret", "config"):
        if not (filters.fuzzy_match(kind, actor["ID"]) or filters.fuzzy_match(kind, attributes.get("name", ""))):
            return False
    if filters.contains("image"):
        name = attributes.get("name" if event["Type"] == "image" else "image", "")
        if not any(
            filters.exact_match("image", candidate)
            for candidate in (actor["ID"], name, _strip_tag(actor["ID"]), _strip_tag(name))
            if candidate
        ):
            return False
    return filters.match_kv_list("label", attributes)


def _strip_tag(name: str) -> str:
    try:
        return reference.parse(name).repository
    except DockyardError:
        return name
