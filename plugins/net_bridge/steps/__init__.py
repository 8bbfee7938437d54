"""Network set-up as a queue of named steps, one module each (libnetwork's
``bridge/setup_*.go``).

Every step module has ``NAME``, ``do(ctx)`` and ``undo(ctx)``.  :func:`run`
performs a queue in order; when a step fails, the steps already done are undone
in reverse order and the failure is re-raised, so a failed start leaves nothing
behind.  ``undo`` must be idempotent and must not raise for something missing.

Network queue (:data:`NETWORK`), run for every network at daemon start and at
``network create``::

    bridge_device -> bridge_address -> route_localnet -> ip_forward

Endpoint queue (:data:`ENDPOINT`), run at each container start::

    sandbox -> veth -> interface -> port_reservation -> port_rules

(the firewall table itself is applied by the driver after the network queue,
and by ``port_rules`` when a container's mappings change).
"""

from __future__ import annotations

import logging
import time
from types import ModuleType
from typing import Any

from . import (
    bridge_address,
    bridge_device,
    interface,
    ip_forward,
    port_reservation,
    port_rules,
    route_localnet,
    sandbox,
    veth,
)

log = logging.getLogger(__name__)

NETWORK: list[ModuleType] = [bridge_device, bridge_address, route_localnet, ip_forward]
ENDPOINT: list[ModuleType] = [sandbox, veth, interface, port_reservation, port_rules]


def run(queue: list[ModuleType], ctx: Any, timings: dict[str, float] | None = None) -> None:
    done: list[ModuleType] = []
    try:
        for step in queue:
            start = time.perf_counter()
            step.do(ctx)
            done.append(step)
            if timings is not None:
                timings[step.NAME] = time.perf_counter() - start
    except BaseException:
        for step in reversed(done):
            try:
                step.undo(ctx)
            except Exception as exc:  # keep undoing; report the original failure
                log.warning("undoing step %s: %s", step.NAME, exc)
        raise
