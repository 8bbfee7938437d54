"""The event bus: emits from worker threads reach subscribers; a subscriber that never reads is dropped."""

from __future__ import annotations

import asyncio
import threading

from dockyard.events import EventBus


def test_an_event_emitted_by_a_worker_thread_wakes_a_subscriber():
    async def main() -> dict:
        bus = EventBus()
        queue = bus.subscribe()
        loop = asyncio.get_running_loop()
        loop.set_debug(True)  # asyncio refuses loop calls from other threads in debug mode
        threading.Thread(target=bus.emit, args=("image", "pull", "busybox:latest", {"name": "busybox:latest"})).start()
        return await asyncio.wait_for(queue.get(), 5)

    event = asyncio.run(main())
    assert event["Type"] == "image" and event["Action"] == "pull"


def test_a_subscriber_that_falls_too_far_behind_is_dropped():
    async def main() -> tuple[int, object, int]:
        bus = EventBus()
        slow = bus.subscribe()
        for i in range(EventBus.BACKLOG + 10):
            bus.emit("container", "start", f"c{i}", {})
        drained = 0
        last = None
        while not slow.empty():
            last = slow.get_nowait()
            drained += 1
        return drained, last, bus.listeners

    drained, last, listeners = asyncio.run(main())
    assert drained == EventBus.BACKLOG + 1 and last is None and listeners == 0
