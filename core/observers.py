"""Observers: plugins that watch the engine (metrics, audit, webhooks), fanned out 1:N.

An observer is found by entry point in the group ``dockyard.observers``; the
entry point names a module whose functions are hook implementations, or a
class (constructed without arguments) whose methods are::

    [project.entry-points."dockyard.observers"]
    webhook = "dockyard_webhook_notifier"

Every installed observer is loaded when the engine opens and registered with
the drivers' plugin manager, so the observer hooks of :mod:`dockyard.hookspecs`
(``daemon_configured``, ``container_started``, ``container_died``,
``image_pushed``) reach all of them.  Services call the methods of
:class:`Observers`, never ``pm.hook``.

``DOCKYARD_DISABLE_PLUGIN_AUTOLOAD=1`` loads none; ``DOCKYARD_BLOCK_PLUGINS=a,b``
skips those names.  An observer that cannot be loaded stops the daemon with a
message naming it (block it to start without it).
"""

from __future__ import annotations

import inspect
import logging
import os
import queue
import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

import pluggy

from dockyard.errors import System

log = logging.getLogger(__name__)

GROUP = "dockyard.observers"
#: the hooks dispatched here (drivers may implement them too)
HOOKS = ("container_started", "container_died", "image_pushed")


def load_observers(pm: pluggy.PluginManager) -> list[str]:
    """Register every installed observer with ``pm``; returns their names."""
    if os.environ.get("DOCKYARD_DISABLE_PLUGIN_AUTOLOAD"):
        return []
    blocked = {n.strip() for n in os.environ.get("DOCKYARD_BLOCK_PLUGINS", "").split(",") if n.strip()}
    names = []
    for ep in sorted(entry_points(group=GROUP), key=lambda ep: ep.name):
        if ep.name in blocked or pm.has_plugin(f"observer:{ep.name}"):
            continue
        try:
            loaded = ep.load()
            plugin = loaded() if inspect.isclass(loaded) else loaded
            pm.register(plugin, name=f"observer:{ep.name}")
        except Exception as exc:  # an import error, a bad hook name or signature: name the culprit
            raise System(
                f"observer plugin {ep.name!r} ({ep.value}) cannot be loaded: {exc}; "
                f"start with DOCKYARD_BLOCK_PLUGINS={ep.name} to go without it"
            ) from exc
        names.append(ep.name)
    if names:
        log.info("observers: %s", ", ".join(names))
    return names


class Observers:
    """The observer hooks as typed calls, delivered from one worker thread in order.

    Each registered implementation is called on its own (pluggy's ``subset_hook_caller``),
    so one that raises is logged and the next still sees the event.
    """

    _STOP = object()

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self._pm = pm
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- the events -----------------------------------------------------------------------------------
    def daemon_configured(self, config: Any) -> None:
        """Historic: observers registered later are called at registration (by pluggy)."""
        try:
            self._pm.hook.daemon_configured.call_historic(kwargs={"config": config})
        except Exception:
            log.exception("an observer failed in daemon_configured")

    def container_started(self, container_id: str, pid: int) -> None:
        self._post("container_started", container_id=container_id, pid=pid)

    def container_died(self, container_id: str, exit_code: int) -> None:
        self._post("container_died", container_id=container_id, exit_code=exit_code)

    def image_pushed(self, reference: str, digest: str) -> None:
        self._post("image_pushed", reference=reference, digest=digest)

    # -- delivery -------------------------------------------------------------------------------------
    def _post(self, hook: str, **kwargs: Any) -> None:
        if not getattr(self._pm.hook, hook).get_hookimpls():
            return  # nobody listens: no thread, no queue
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._deliver, name="observers", daemon=True)
                self._thread.start()
        self._queue.put((hook, kwargs))

    def _deliver(self) -> None:
        while (item := self._queue.get()) is not self._STOP:
            hook, kwargs = item
            if callable(hook):  # a flush marker
                hook()
                continue
            for impl in getattr(self._pm.hook, hook).get_hookimpls():
                others = [i.plugin for i in getattr(self._pm.hook, hook).get_hookimpls() if i is not impl]
                try:
                    self._pm.subset_hook_caller(hook, remove_plugins=others)(**kwargs)
                except Exception:
                    log.exception("observer %s failed in %s", impl.plugin_name, hook)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything posted so far was delivered; False on timeout."""
        with self._lock:
            if self._thread is None:
                return True
        done = threading.Event()
        marker: Callable[[], None] = done.set
        self._queue.put((marker, {}))
        return done.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (for at most ``timeout`` seconds), then stop."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(self._STOP)
            thread.join(timeout)
