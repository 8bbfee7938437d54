"""Finding, loading and calling drivers.

stevedore finds driver classes by entry point (``dockyard.storage``,
``dockyard.exec``, ``dockyard.network``, ``dockyard.distribution``); the chosen
one of each kind is instantiated and registered with one pluggy
``PluginManager``.  Core code calls drivers only through the typed façades at
the bottom of this module, never ``pm.hook`` directly.

Environment knobs (tests and debugging):

``DOCKYARD_TRACE_HOOKS=1``
    log every hook call and result at debug level.
"""

from __future__ import annotations

import builtins
import inspect
import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Sequence
from typing import Any, BinaryIO

import pluggy
from stevedore import ExtensionManager

from dockyard import hookspecs
from dockyard.errors import DriverNotFound, DriverNotSupported, NotSupportedByDriver
from dockyard.models.runtime import (
    Change,
    EndpointRequest,
    ExitStatus,
    NetworkAttachment,
    NetworkRequest,
    ProcessSpec,
    ProcessState,
    Resources,
    Runtimes,
    RuntimeSpec,
)

log = logging.getLogger(__name__)

KINDS = ("storage", "exec", "network", "distribution")
NAMESPACE = {kind: f"dockyard.{kind}" for kind in KINDS}

#: automatic selection order when no name is given (first usable wins)
PRIORITY = {
    "storage": ["overlay", "btrfs", "aufs", "vfs"],
    "exec": ["lxc", "oci"],
    "network": ["bridge", "none"],
    "distribution": ["http"],
}


def _extensions(kind: str) -> ExtensionManager:
    return ExtensionManager(namespace=NAMESPACE[kind], invoke_on_load=False, on_load_failure_callback=_load_failed)


_load_failures: dict[tuple[str, str], str] = {}


def _load_failed(manager: ExtensionManager, entrypoint: Any, exc: BaseException) -> None:
    _load_failures[(manager.namespace, entrypoint.name)] = f"cannot be imported: {exc}"


def available(kind: str) -> dict[str, str | None]:
    """Every installed driver of a kind, mapped to why it is unusable (None = usable)."""
    manager = _extensions(kind)
    result: dict[str, str | None] = {}
    for ext in manager:
        result[ext.name] = _why_unusable(ext.plugin)
    for (namespace, name), why in _load_failures.items():
        if namespace == NAMESPACE[kind]:
            result.setdefault(name, why)
    return result


def _why_unusable(cls: type) -> str | None:
    check = getattr(cls, "check_supported", None)
    if check is None:
        return None
    try:
        check()
    except DriverNotSupported as exc:
        return exc.reason
    return None


def _auto_selectable(kind: str, name: str, root: Path | None = None) -> bool:
    """A driver may ask not to be picked automatically (aufs on its FUSE fallback:
    Docker only ever chose *kernel* aufs by itself; btrfs off a btrfs data root);
    naming it still works.  ``auto_selectable(root)`` gets the kind's data root
    (None when unknown); a driver written for the zero-argument form gets none."""
    check = getattr(_extensions(kind)[name].plugin, "auto_selectable", None)
    if check is None:
        return True
    try:
        inspect.signature(check).bind(root)
    except TypeError:  # auto_selectable() takes no argument
        return bool(check())
    except ValueError:  # no signature to inspect (a builtin): try the documented form
        pass
    return bool(check(root))


def driver_class(kind: str, name: str) -> type:
    """The class registered under ``name`` in ``kind``'s namespace, checked usable."""
    manager = _extensions(kind)
    if name not in manager.names():
        raise DriverNotFound(kind, name, available(kind))
    cls = manager[name].plugin
    try:
        if hasattr(cls, "check_supported"):
            cls.check_supported()
    except DriverNotSupported:
        raise DriverNotFound(kind, name, available(kind)) from None
    return cls


def choose(kind: str, name: str | None, root: Path | None = None) -> str:
    """Resolve ``None`` to the first usable driver in priority order.

    ``root``: where the kind's data will live (``<data-root>/<kind>``), for
    drivers whose fitness depends on it (btrfs wants a btrfs file system).
    """
    if name:
        return name
    usable = {n for n, why in available(kind).items() if why is None}
    for candidate in PRIORITY.get(kind, []):
        if candidate in usable and _auto_selectable(kind, candidate, root):
            return candidate
    if usable:
        return sorted(usable)[0]
    raise DriverNotFound(kind, "(automatic)", available(kind))


@dataclass
class LoadedDrivers:
    pm: pluggy.PluginManager
    names: dict[str, str] = field(default_factory=dict)
    instances: dict[str, Any] = field(default_factory=dict)


def make_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    if os.environ.get("DOCKYARD_TRACE_HOOKS"):
        pm.add_hookcall_monitoring(
            lambda name, impls, kwargs: log.debug("hook %s(%s)", name, kwargs),
            lambda outcome, name, impls, kwargs: log.debug(
                "hook %s -> %r", name, outcome.get_result() if outcome.exception is None else outcome.exception
            ),
        )
    return pm


def load_drivers(
    data_root: Path,
    choices: dict[str, str | None],
    options: dict[str, dict] | None = None,
    extra_plugins: Sequence[object] = (),
) -> LoadedDrivers:
    """Instantiate and register one driver per kind in ``choices``.

    ``choices`` maps a kind to a driver name, or None for automatic selection.
    Raises :class:`DriverNotFound` naming the available drivers and why each
    unusable one is unusable.
    """
    options = options or {}
    pm = make_plugin_manager()
    loaded = LoadedDrivers(pm=pm)
    for kind, requested in choices.items():
        name = choose(kind, requested, data_root / kind)
        cls = driver_class(kind, name)
        root = data_root / kind / name
        root.mkdir(parents=True, exist_ok=True)
        try:
            instance = cls(root, dict(options.get(kind, {})))
        except DriverNotSupported:
            raise DriverNotFound(kind, name, available(kind)) from None
        pm.register(instance, name=f"{kind}:{name}")
        loaded.names[kind] = name
        loaded.instances[kind] = instance
    from dockyard import storage_fallbacks  # late: needs the façade below

    pm.register(storage_fallbacks.NaiveDiff(StorageDriver(pm)), name="storage:naive-diff")
    for plugin in extra_plugins:
        pm.register(plugin)
    pm.check_pending()
    return loaded


class _Facade:
    """Calls a hook and turns 'nobody implements it' into :class:`NotSupportedByDriver` (501)."""

    kind = ""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self._pm = pm

    def _call(self, hook_name: str, **kwargs: Any) -> Any:
        caller = getattr(self._pm.hook, hook_name)
        if not caller.get_hookimpls():
            raise NotSupportedByDriver(f"the {self.kind} driver does not implement {hook_name}")
        result = caller(**kwargs)
        if result is None and hook_name not in self._may_return_none:
            raise NotSupportedByDriver(f"the {self.kind} driver does not implement {hook_name}")
        return result

    _may_return_none: frozenset[str] = frozenset()


class StorageDriver(_Facade):
    kind = "storage"
    _may_return_none = frozenset({"storage_path"})

    def create_layer(self, layer_id: str, parent_id: str | None) -> None:
        self._call("storage_create_layer", layer_id=layer_id, parent_id=parent_id)

    def remove_layer(self, layer_id: str) -> None:
        self._call("storage_remove_layer", layer_id=layer_id)

    def mount(self, layer_id: str) -> Path:
        return Path(self._call("storage_mount", layer_id=layer_id))

    def unmount(self, layer_id: str) -> None:
        self._call("storage_unmount", layer_id=layer_id)

    def path(self, layer_id: str) -> Path | None:
        return self._call("storage_path", layer_id=layer_id)

    def parent(self, layer_id: str) -> str | None:
        """The parent layer's id, ``None`` for a base layer."""
        return self._call("storage_parent", layer_id=layer_id) or None

    def exists(self, layer_id: str) -> bool:
        return bool(self._call("storage_exists", layer_id=layer_id))

    def layers(self) -> list[str]:
        return list(self._call("storage_layers"))

    def apply_diff(self, layer_id: str, diff: BinaryIO) -> int:
        return int(self._call("storage_apply_diff", layer_id=layer_id, diff=diff))

    def diff(self, layer_id: str) -> BinaryIO:
        return self._call("storage_diff", layer_id=layer_id)

    def changes(self, layer_id: str) -> list[Change]:
        return list(self._call("storage_changes", layer_id=layer_id))

    def diff_size(self, layer_id: str) -> int:
        return int(self._call("storage_diff_size", layer_id=layer_id))

    def status(self) -> list[tuple[str, str]]:
        return list(self._call("storage_status"))

    def cleanup(self) -> None:
        self._call("storage_cleanup")


class ExecDriver(_Facade):
    kind = "exec"
    _may_return_none = frozenset({"exec_state", "exec_restore"})

    def create(self, spec: RuntimeSpec) -> None:
        self._call("exec_create", spec=spec)

    def attach(self, container_id: str, stdin: bool, stdout: bool, stderr: bool) -> socket.socket:
        return self._call("exec_attach", container_id=container_id, stdin=stdin, stdout=stdout, stderr=stderr)

    def start(self, container_id: str) -> ProcessState:
        return self._call("exec_start", container_id=container_id)

    def wait(self, container_id: str) -> ExitStatus:
        return self._call("exec_wait", container_id=container_id)

    def kill(self, container_id: str, signal: int) -> None:
        self._call("exec_kill", container_id=container_id, signal=signal)

    def stop(self, container_id: str, signal: int, timeout: float) -> ExitStatus:
        return self._call("exec_stop", container_id=container_id, signal=signal, timeout=timeout)

    def state(self, container_id: str) -> ProcessState | None:
        return self._call("exec_state", container_id=container_id)

    def resize(self, container_id: str, height: int, width: int) -> None:
        self._call("exec_resize", container_id=container_id, height=height, width=width)

    def reopen_log(self, container_id: str) -> None:
        self._call("exec_reopen_log", container_id=container_id)

    @property
    def rotates_logs(self) -> bool:
        """Whether the driver can start a new log file after a rotation (``exec_reopen_log``)."""
        return bool(self._pm.hook.exec_reopen_log.get_hookimpls())

    def list(self) -> list[str]:
        return list(self._call("exec_list"))

    def restore(self, container_id: str) -> ProcessState | None:
        return self._call("exec_restore", container_id=container_id)

    def delete(self, container_id: str) -> None:
        self._call("exec_delete", container_id=container_id)

    def status(self) -> builtins.list[tuple[str, str]]:
        return list(self._call("exec_status"))

    def runtimes(self, driver_name: str) -> Runtimes:
        """The driver's runtimes; a driver without the hook is its own only runtime."""
        if not self._pm.hook.exec_runtimes.get_hookimpls():
            return Runtimes(default=driver_name, paths={driver_name: driver_name})
        return self._call("exec_runtimes")

    def run(self, container_id: str, exec_id: str, spec: ProcessSpec) -> socket.socket:
        return self._call("exec_run", container_id=container_id, exec_id=exec_id, spec=spec)

    def run_wait(self, container_id: str, exec_id: str) -> int:
        return int(self._call("exec_run_wait", container_id=container_id, exec_id=exec_id))

    def run_resize(self, container_id: str, exec_id: str, height: int, width: int) -> None:
        self._call("exec_run_resize", container_id=container_id, exec_id=exec_id, height=height, width=width)

    def pause(self, container_id: str) -> None:
        self._call("exec_pause", container_id=container_id)

    def unpause(self, container_id: str) -> None:
        self._call("exec_unpause", container_id=container_id)

    def processes(self, container_id: str) -> builtins.list[int]:
        return list(self._call("exec_processes", container_id=container_id))

    def stats(self, container_id: str) -> dict:
        return dict(self._call("exec_stats", container_id=container_id))

    def update(self, container_id: str, resources: Resources) -> None:
        self._call("exec_update", container_id=container_id, resources=resources)


class NetworkDriver(_Facade):
    kind = "network"

    def prepare(self, request: NetworkRequest) -> NetworkAttachment:
        return self._call("network_prepare", request=request)

    def release(self, container_id: str) -> None:
        self._call("network_release", container_id=container_id)

    def remove(self, container_id: str) -> None:
        """rm: free address and ports; a driver without the hook has nothing more to free."""
        if self._pm.hook.network_remove.get_hookimpls():
            self._call("network_remove", container_id=container_id)

    def cleanup(self) -> None:
        if self._pm.hook.network_cleanup.get_hookimpls():
            self._call("network_cleanup")

    def create(self, name: str, options: dict) -> dict:
        return dict(self._call("network_create", name=name, options=options))

    def delete(self, name: str) -> None:
        self._call("network_delete", name=name)

    def list(self) -> list[dict]:
        return list(self._call("network_list"))

    def inspect(self, name: str) -> dict:
        return dict(self._call("network_inspect", name=name))

    def connect(
        self, container_id: str, network: str, aliases: builtins.list[str], endpoint: EndpointRequest | None = None
    ) -> dict:
        return dict(
            self._call(
                "network_connect",
                container_id=container_id,
                network=network,
                aliases=aliases,
                endpoint=endpoint or EndpointRequest(aliases=aliases),
            )
        )

    def resolvers(self, container_id: str) -> builtins.list[str] | None:
        """The driver's resolvers for a running container (:func:`~dockyard.hookspecs.network_resolvers`);
        None when the driver has no such hook."""
        if not self._pm.hook.network_resolvers.get_hookimpls():
            return None
        return list(self._call("network_resolvers", container_id=container_id) or [])

    def disconnect(self, container_id: str, network: str) -> None:
        self._call("network_disconnect", container_id=container_id, network=network)

    def settings(self, container_id: str) -> dict:
        return dict(self._call("network_settings", container_id=container_id))

    def status(self) -> builtins.list[tuple[str, str]]:
        return list(self._call("network_status"))


class DistributionDriver(_Facade):
    kind = "distribution"

    def pull(
        self, reference: str, auth: dict, progress, layer_exists=None, work_dir: str | None = None, layer_ready=None
    ) -> dict:
        return self._call(
            "distribution_pull",
            reference=reference,
            auth=auth,
            progress=progress,
            layer_exists=layer_exists,
            work_dir=work_dir,
            layer_ready=layer_ready,
        )

    def push(self, reference: str, image: dict, auth: dict, progress) -> dict:
        return self._call("distribution_push", reference=reference, image=image, auth=auth, progress=progress)

    def login(self, server: str, username: str, password: str, email: str = "") -> dict:
        return self._call("distribution_login", server=server, username=username, password=password, email=email)

    def search(self, term: str, limit: int, auth: dict) -> list[dict]:
        return list(self._call("distribution_search", term=term, limit=limit, auth=auth))
