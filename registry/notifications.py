"""Registry events POSTed to webhooks, as distribution's notifications do.

Each event (push, pull, delete, mount) is queued for every endpoint that wants
its action; a queue is bounded (``notifications.queue_size``): when a receiver
is down for long, the oldest events are dropped and counted, so a dead
receiver never grows the registry's memory.  One delivery task per endpoint
sends envelopes (``{"events": [...]}``, ``Content-Type:
application/vnd.docker.distribution.events.v1+json``) of the events waiting,
and retries a failed delivery ``retries`` times with exponential backoff from
``backoff`` seconds; an answer other than 2xx is a failure.  Events are kept in
memory only: a registry that stops loses what was not delivered (as
distribution does).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid as uuidlib
from collections import deque

from aiohttp import ClientSession, ClientTimeout, web

from dockyard.timefmt import iso_now

from .config import Endpoint, NotificationSettings

log = logging.getLogger("dockyard.registry.notifications")

MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"
MAX_BATCH = 100


class EndpointQueue:
    def __init__(self, endpoint: Endpoint, size: int) -> None:
        self.endpoint = endpoint
        self.events: deque[dict] = deque(maxlen=size)
        self.wakeup = asyncio.Event()
        self.dropped = 0
        self.delivered = 0
        self.failed = 0

    def put(self, event: dict) -> None:
        if len(self.events) == self.events.maxlen:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.warning(
                    "notifications: %s is behind: its queue of %d is full, %d events dropped so far",
                    self.endpoint.name,
                    self.events.maxlen,
                    self.dropped,
                )
        self.events.append(event)
        self.wakeup.set()


class Notifier:
    def __init__(self, settings: NotificationSettings, instance: str | None = None) -> None:
        self.settings = settings
        self.instance = instance or str(uuidlib.uuid4())
        self.queues = [EndpointQueue(e, settings.queue_size) for e in settings.endpoints]
        self._tasks: list[asyncio.Task] = []
        self._session: ClientSession | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.queues)

    async def start(self) -> None:
        if not self.queues:
            return
        self._session = ClientSession()
        self._tasks = [asyncio.create_task(self._deliver(q), name=f"notify-{q.endpoint.name}") for q in self.queues]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def emit(
        self,
        request: web.Request,
        action: str,
        repository: str,
        *,
        digest: str = "",
        media_type: str = "",
        size: int | None = None,
        tag: str = "",
        user: str | None = None,
    ) -> None:
        """Queue an event (never blocks, never fails the request)."""
        if not self.queues:
            return
        target = {
            "mediaType": media_type,
            "digest": digest,
            "repository": repository,
            "url": f"{request.scheme}://{request.host}/v2/{repository}/"
            f"{'manifests' if media_type and 'manifest' in media_type else 'blobs'}/{digest}",
        }
        if size is not None:
            target["size"] = target["length"] = size
        if tag:
            target["tag"] = tag
        peer = request.transport.get_extra_info("peername") if request.transport else None
        event = {
            "id": str(uuidlib.uuid4()),
            "timestamp": iso_now(),
            "action": action,
            "target": target,
            "request": {
                "id": request.headers.get("X-Request-Id", ""),
                "addr": peer[0] if peer else "",
                "host": request.host,
                "method": request.method,
                "useragent": request.headers.get("User-Agent", ""),
            },
            "actor": {"name": user or ""},
            "source": {"addr": socket.gethostname(), "instanceID": self.instance},
        }
        for queue in self.queues:
            if action in queue.endpoint.actions:
                queue.put(event)

    async def _deliver(self, queue: EndpointQueue) -> None:
        while True:
            if not queue.events:
                queue.wakeup.clear()
                await queue.wakeup.wait()
                continue
            batch = [queue.events[i] for i in range(min(MAX_BATCH, len(queue.events)))]
            delivered = await self._post(queue.endpoint, batch)
            done = 0
            for event in batch:  # the oldest events, unless the full queue dropped some meanwhile
                if queue.events and queue.events[0] is event:
                    queue.events.popleft()
                    done += 1
            if delivered:
                queue.delivered += done
            else:
                queue.failed += done

    async def _post(self, endpoint: Endpoint, batch: list[dict]) -> bool:
        delay = endpoint.backoff
        for attempt in range(endpoint.retries + 1):
            try:
                async with self._session.post(
                    endpoint.url,
                    json={"events": batch},
                    headers={"Content-Type": MEDIA_TYPE, **endpoint.headers},
                    timeout=ClientTimeout(total=endpoint.timeout),
                ) as response:
                    await response.read()
                    if 200 <= response.status < 300:
                        return True
                    problem = f"HTTP {response.status}"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a refused connection, a timeout, a reset: all retried
                problem = str(exc) or type(exc).__name__
            if attempt < endpoint.retries:
                log.info(
                    "notifications: %s attempt %d failed (%s), retrying in %.1fs",
                    endpoint.name,
                    attempt + 1,
                    problem,
                    delay,
                )
                await asyncio.sleep(delay)
                delay *= 2
        log.warning(
            "notifications: %s gave up on %d events after %d attempts: %s",
            endpoint.name,
            len(batch),
            endpoint.retries + 1,
            problem,
        )
        return False

    def status(self) -> list[dict]:
        return [
            {
                "name": q.endpoint.name,
                "url": q.endpoint.url,
                "pending": len(q.events),
                "dropped": q.dropped,
                "delivered": q.delivered,
                "failed": q.failed,
            }
            for q in self.queues
        ]


__all__ = ["Notifier", "MEDIA_TYPE"]
