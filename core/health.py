"""Healthchecks: ``HEALTHCHECK`` in a Dockerfile, ``Config.Healthcheck``, ``docker run --health-*``.

The daemon runs each running container's probe in the container (a second
process, as ``docker exec`` runs one) on its interval, as moby's
``daemon/health.go`` does:

* the first probe runs one interval after the start; each probe has a timeout
  (a probe that exceeds it counts as failed, exit code -1);
* exit 0 is healthy and resets the failing streak; anything else adds to it,
  except while the container has never been healthy and is still inside its
  start period; ``retries`` failures in a row make it unhealthy;
* ``State.Health`` keeps the status, the failing streak and the last five
  results (output cut at 4096 bytes); each change of status is a
  ``health_status: <status>`` event;
* defaults: interval 30s, timeout 30s, start period 0, retries 3; a paused
  container is not probed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from dockyard.errors import DockyardError, InvalidParameter
from dockyard.models.container import ContainerConfig, Health, HealthConfig, HealthLog
from dockyard.timefmt import iso, parse_iso

if TYPE_CHECKING:
    from dockyard.containers import Container, ContainerService

__all__ = ["HealthMonitor", "check_config", "probe_of"]

log = logging.getLogger(__name__)

SECOND = 1_000_000_000
DEFAULT_INTERVAL = 30 * SECOND
DEFAULT_TIMEOUT = 30 * SECOND
DEFAULT_RETRIES = 3
MAX_LOG = 5
MINIMUM = 1_000_000  # 1ms, moby's container.MinimumDuration

Probe = Callable[["Container", list[str]], tuple[int, str]]


def check_config(config: HealthConfig | None) -> None:
    """Refuse what Docker refuses at create (durations under 1ms, negative retries)."""
    if config is None:
        return
    for name, value in (
        ("Interval", config.interval),
        ("Timeout", config.timeout),
        ("StartPeriod", config.start_period),
    ):
        if value and value < MINIMUM:
            raise InvalidParameter(f"{name} in Healthcheck cannot be less than 1ms")
    if config.retries < 0:
        raise InvalidParameter("Retries in Healthcheck cannot be negative")
    if config.test and config.test[0] not in ("NONE", "CMD", "CMD-SHELL"):
        raise InvalidParameter(f"unknown healthcheck type {config.test[0]!r} (expected NONE, CMD or CMD-SHELL)")
    if config.test and config.test[0] == "CMD-SHELL" and len(config.test) != 2:
        raise InvalidParameter("a CMD-SHELL healthcheck takes one command string")


def probe_of(config: ContainerConfig) -> list[str] | None:
    """The probe's argv, or None when the container has no healthcheck (none, empty or ``NONE``)."""
    check = config.healthcheck
    if check is None or not check.test or check.test[0] not in ("CMD", "CMD-SHELL") or len(check.test) < 2:
        return None
    if check.test[0] == "CMD-SHELL":
        return [*(config.shell or ["/bin/sh", "-c"]), *check.test[1:]]
    return list(check.test[1:])


class HealthMonitor:
    """One asyncio task per probed container, started and stopped by the container service."""

    def __init__(self, containers: ContainerService, probe: Probe) -> None:
        self.containers = containers
        self.probe = probe
        self.tasks: dict[str, asyncio.Task] = {}

    def watch(self, c: Container) -> None:
        """Probe ``c`` from now on (its start, or an unpause); no-op when already probed."""
        if probe_of(c.config) is None or c.id in self.tasks:
            return
        task = asyncio.get_running_loop().create_task(self._run(c), name=f"health-{c.id[:12]}")
        self.tasks[c.id] = task

        def forget(done: asyncio.Task, cid: str = c.id) -> None:
            if self.tasks.get(cid) is done:  # not a newer probe of the same container
                del self.tasks[cid]

        task.add_done_callback(forget)

    def unwatch(self, c: Container) -> None:
        task = self.tasks.pop(c.id, None)
        if task is not None:
            task.cancel()

    def close(self) -> None:
        for task in list(self.tasks.values()):
            task.cancel()
        self.tasks.clear()

    async def _run(self, c: Container) -> None:
        check = c.config.healthcheck
        assert check is not None
        interval = (check.interval or DEFAULT_INTERVAL) / SECOND
        timeout = (check.timeout or DEFAULT_TIMEOUT) / SECOND
        argv = probe_of(c.config) or []
        while True:
            await asyncio.sleep(interval)
            if not c.state.running or c.state.paused or c.removed:
                return
            started = time.time()
            try:
                code, output = await asyncio.wait_for(asyncio.to_thread(self.probe, c, argv), timeout)
            except asyncio.TimeoutError:
                code, output = -1, f"Health check exceeded timeout ({_go_duration(timeout)})"
            except DockyardError as exc:
                code, output = -1, exc.message
            if not c.state.running or c.removed:
                return
            self.record(c, started, time.time(), code, output)

    def record(self, c: Container, started: float, ended: float, code: int, output: str) -> None:
        """Apply one probe's result to the container's ``State.Health`` (moby's ``handleProbeResult``)."""
        check = c.config.healthcheck or HealthConfig()
        current = c.state.health or Health()
        entry = HealthLog(start=iso(started), end=iso(ended), exit_code=code, output=output)
        status, streak = current.status, current.failing_streak
        if code == 0:
            status, streak = "healthy", 0
        else:
            in_start_period = (
                status == "starting" and started - parse_iso(c.state.started_at) < check.start_period / SECOND
            )
            if not in_start_period:
                streak += 1
                if streak >= (check.retries or DEFAULT_RETRIES):
                    status = "unhealthy"
        self.containers.set_health(
            c, Health(status=status, failing_streak=streak, log=[*current.log, entry][-MAX_LOG:])
        )


def _go_duration(seconds: float) -> str:
    """How Go prints a ``time.Duration`` of whole or fractional seconds (``30s``, ``1.5s``, ``1m0s``)."""
    if seconds >= 60:
        minutes, rest = divmod(seconds, 60)
        return f"{int(minutes)}m{rest:g}s"
    return f"{seconds:g}s" if seconds >= 1 else f"{seconds * 1000:g}ms"
