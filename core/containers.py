"""Containers: the state machine, its records, and the calls into the drivers.

The core owns state (SQLite rows, in-memory waiters and attach requests); the
exec driver only starts, signals and waits for processes (podman's split of
``libpod`` and ``OCIRuntime``).  Public coroutines take the container's lock and
call ``_unlocked`` helpers.  Blocking driver calls run in worker threads; each
running container has one thread blocked in ``exec_wait``.

States: created -> running -> exited (-> running again on start) -> removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import json
import logging
import random
import re
import shutil
import signal as signals
import socket
import subprocess
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard import confinement, container_views, etc_files, health, ids, logs, netns, paths, rootfs
from dockyard import links as links_
from dockyard.drivers import ExecDriver, NetworkDriver, StorageDriver
from dockyard.errors import (
    Conflict,
    DockyardError,
    Forbidden,
    InvalidParameter,
    NotFound,
    NotModified,
    NotSupportedByDriver,
    System,
)
from dockyard.events import EventBus
from dockyard.filters import Filters
from dockyard.images import ImageService
from dockyard.log_rotation import LogRotator
from dockyard.logs import LogQuery, Render, stream_log
from dockyard.models.container import (
    ContainerConfig,
    ContainerState,
    CreateRequest,
    EndpointSettings,
    Health,
    HostConfig,
    LogConfig,
    UpdateRequest,
)
from dockyard.models.runtime import Confinement, EndpointRequest, ExitStatus, NetworkRequest, Resources, RuntimeSpec
from dockyard.observers import Observers
from dockyard.store import Store
from dockyard.timefmt import NEVER, iso, iso_now, parse_iso
from dockyard.volumes import Mount, VolumeService

log = logging.getLogger(__name__)

_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")


@dataclass
class Container:
    id: str
    name: str
    image_id: str
    image_ref: str
    created: str
    config: ContainerConfig
    host_config: HostConfig
    state: ContainerState
    base_layer: str | None
    storage_driver: str
    exec_driver: str
    path: str = ""
    args: list[str] = field(default_factory=list)
    restart_count: int = 0
    mounts: list[Mount] = field(default_factory=list)
    #: set by stop/kill from a user: restart policies then leave the container stopped
    stopped_by_user: bool = False
    #: NetworkingConfig.EndpointsConfig of create: {"net1": {"Aliases": ["db"], ...}}
    endpoints_config: dict = field(default_factory=dict)
    # runtime only, never persisted
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pending_attaches: list[tuple[bool, bool, bool, asyncio.Future]] = field(default_factory=list)
    exit_waiters: list[asyncio.Future] = field(default_factory=list)
    removed_waiters: list[asyncio.Future] = field(default_factory=list)
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    removed: bool = False

    @property
    def running(self) -> bool:
        return self.state.running

    def networks(self) -> dict[str, dict]:
        """The networks the container is on (by name), with its ``EndpointSettings`` on each: the one
        its network mode names and those it was connected to since, running or not."""
        return dict(self.endpoints_config)

    def primary_network(self) -> str | None:
        """The network of its network mode (``bridge`` for the default); None for ``container:``."""
        mode = self.host_config.network_mode
        if mode.startswith("container:"):
            return None
        if self.config.network_disabled:
            return "none"
        return "bridge" if mode in ("", "default") else mode


def _write_failed(future: Any) -> None:
    """Done callback of a record write nobody waits for."""
    if not future.cancelled() and future.exception() is not None:
        log.error("writing a container record failed", exc_info=future.exception())


def uninterruptible(method: Any) -> Any:
    """A state change that the caller's cancellation (its client left, see
    ``dockyard.daemon.http.cancel_when_client_leaves``) does not cut short: it runs to its end in a
    task of its own, so a container is never left half-started, half-created or half-removed
    (a start cancelled after the driver started the process would leave it running unwatched).
    The caller is released at once; what it then does (remove the container) waits for the
    container's lock as usual."""

    @functools.wraps(method)
    async def run_to_the_end(self: Any, *args: Any, **kwargs: Any) -> Any:
        task = asyncio.ensure_future(method(self, *args, **kwargs))
        task.add_done_callback(_outcome_seen)
        return await asyncio.shield(task)

    return run_to_the_end


def _outcome_seen(task: asyncio.Future) -> None:
    """(An outcome nobody awaits any more is not an "exception never retrieved".)"""
    if not task.cancelled() and task.exception() is not None:
        log.debug("a state change whose caller left failed: %s", task.exception())


def _signal_number(value: str | int | None, default: int = signals.SIGTERM) -> int:
    if value in (None, ""):
        return default
    text = str(value).upper()
    if text.isdigit():
        return int(text)
    text = text if text.startswith("SIG") else "SIG" + text
    try:
        return int(signals.Signals[text])
    except KeyError:
        raise InvalidParameter(f"Invalid signal: {value}") from None


class ContainerService:
    def __init__(
        self,
        root: Path,
        store: Store,
        images: ImageService,
        volumes: VolumeService,
        storage: StorageDriver,
        execution: ExecDriver,
        network: NetworkDriver,
        names: dict[str, str],
        events: EventBus | None = None,
        observers: Observers | None = None,
        security: confinement.DaemonSecurity | None = None,
        log_config: LogConfig | None = None,
    ) -> None:
        self.root = root  # <data-root>/containers
        self.root.mkdir(parents=True, exist_ok=True)
        self.store = store
        self.images = images
        self.volumes = volumes
        self.storage = storage
        self.exec = execution
        self.network = network
        self.driver_names = names
        self.events = events
        self.observers = observers
        self.security = security or confinement.DaemonSecurity()
        self.containers: dict[str, Container] = {}
        #: names of containers being created (name -> ID): taken before the first await
        self._reserved: dict[str, str] = {}
        #: runs healthchecks (the engine wires it in; None: healthchecks are not run)
        self.health: health.HealthMonitor | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        #: the daemon's --log-driver and --log-opt: what a container's LogConfig leaves out
        self.log_config = log_config or LogConfig()
        logs.settings(self.log_config)
        self.log_rotator = LogRotator(self)
        #: container records are written by one thread, in the order the loop asked for them (a write
        #: waits on the disk, never the event loop; a later state never loses to an earlier one)
        self._records = ThreadPoolExecutor(max_workers=1, thread_name_prefix="records")

    # -- records -------------------------------------------------------------
    def _row_to_container(self, row: Any) -> Container:
        config = ContainerConfig.model_validate_json(row["config"])
        extra = json.loads(row["state"])
        state = ContainerState.model_validate(extra.get("State", {}))
        return Container(
            id=row["id"],
            name=row["name"],
            image_id=row["image_id"],
            image_ref=row["image_ref"],
            created=row["created"],
            config=config,
            host_config=HostConfig.model_validate_json(row["host_config"]),
            state=state,
            base_layer=row["base_layer"],
            storage_driver=row["storage_driver"],
            exec_driver=row["exec_driver"],
            path=extra.get("Path", ""),
            args=extra.get("Args", []),
            restart_count=row["restart_count"],
            mounts=[Mount(**m) for m in extra.get("Mounts", [])],
            stopped_by_user=extra.get("StoppedByUser", False),
            endpoints_config=extra.get("EndpointsConfig") or {},
        )

    @staticmethod
    def _state_json(c: Container) -> str:
        return json.dumps(
            {
                "State": c.state.api(),
                "Path": c.path,
                "Args": c.args,
                "Mounts": [m.to_json() for m in c.mounts],
                "StoppedByUser": c.stopped_by_user,
                "EndpointsConfig": c.endpoints_config,
            }
        )

    async def _record(self, write: Any, *args: Any, **kwargs: Any) -> None:
        """Run a store write on the records thread (FIFO) and wait for it."""
        await asyncio.get_running_loop().run_in_executor(self._records, functools.partial(write, *args, **kwargs))

    async def _save(self, c: Container) -> None:
        """Write the container's record, as its state is now."""
        await self._record(
            self.store.update_container, c.id, name=c.name, state=self._state_json(c), restart_count=c.restart_count
        )

    def _persist(self, c: Container) -> None:
        """:meth:`_save` for code that cannot await (worker threads, the health monitor's callbacks): the
        write is queued on the records thread, in order with the others; a worker thread waits for it,
        the event loop never does (a failed write is logged)."""
        future = self._records.submit(
            self.store.update_container, c.id, name=c.name, state=self._state_json(c), restart_count=c.restart_count
        )
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            future.result()
            return
        future.add_done_callback(_write_failed)

    def close(self) -> None:
        """Finish the record writes asked for (before the store closes)."""
        self._records.shutdown(wait=True)

    def load(self) -> None:
        for row in self.store.container_rows():
            c = self._row_to_container(row)
            self.containers[c.id] = c

    def _snapshot(self) -> list[Container]:
        """The containers, copied in one step: services running in worker threads read this,
        never the dict the event loop changes."""
        return list(self.containers.values())

    def get(self, ref: str) -> Container:
        """A container by full ID, name (with or without '/') or unique ID prefix."""
        found = self.containers.get(ref)
        if found is not None:
            return found
        everyone = self._snapshot()
        name = ref.lstrip("/")
        for c in everyone:
            if c.name == name:
                return c
        if ref:
            matches = [c for c in everyone if c.id.startswith(ref)]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise InvalidParameter(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def is_running(self, container_id: str) -> bool:
        """Whether the container exists and runs (a stream of its stats ends when not)."""
        c = self.containers.get(container_id)
        return c is not None and c.state.running

    def dir_of(self, c: Container) -> Path:
        return paths.child(self.root, c.id, "container id")

    def log_path(self, c: Container) -> Path:
        return self.dir_of(c) / f"{c.id}-json.log"

    @staticmethod
    def log_settings(c: Container) -> logs.LogSettings:
        return logs.settings(c.host_config.log_config)

    def volume_users(self, name: str) -> list[str]:
        return [c.id for c in self._snapshot() if any(m.name == name for m in c.mounts)]

    def images_in_use(self) -> dict[str, list[tuple[str, bool]]]:
        users: dict[str, list[tuple[str, bool]]] = {}
        for c in self._snapshot():
            users.setdefault(c.image_id, []).append((c.id, c.running))
        return users

    # -- create --------------------------------------------------------------
    @uninterruptible
    async def create(self, request: CreateRequest, name: str | None) -> dict:
        image_ref = request.image
        if not image_ref:
            raise InvalidParameter("Config.Image must be given")
        hc = request.host_config
        image_id, image_config, base_layer = await asyncio.to_thread(self._image_of, image_ref)
        config = self._merge(request.container_config(), image_config)
        argv = list(config.entrypoint or []) + list(config.cmd or [])
        if not argv:
            raise InvalidParameter("No command specified")
        self._check_host_config(hc)
        log_config = logs.merge_config(hc.log_config, self.log_config)  # a bad driver or option is a 400
        if logs.settings(log_config).max_size and not self.exec.rotates_logs:
            raise InvalidParameter(
                f"log opt 'max-size' needs an exec driver that can rotate logs; {self.driver_names['exec']} cannot"
            )
        runtimes = self.exec.runtimes(self.driver_names["exec"])
        runtime = hc.runtime or runtimes.default
        if runtime not in runtimes.paths:
            raise InvalidParameter(f"Unknown runtime specified {runtime}")
        hc = hc.model_copy(update={"runtime": runtime, "log_config": log_config})
        self.confinement(hc, config.domainname)  # a bad --cap-add, --security-opt, --device... is a 400 now
        etc_files.check(hc.extra_hosts, hc.dns, request.hostname, request.domainname, hc.dns_search, hc.dns_options)
        health.check_config(config.healthcheck)
        if config.mac_address and not _MAC.match(config.mac_address):
            raise InvalidParameter(f"invalid MAC address: {config.mac_address}")
        networks = await asyncio.to_thread(
            self._initial_networks, hc.network_mode, request.endpoints(), bool(config.network_disabled)
        )
        links = [links_.normalize(spec, self.get) for spec in hc.links or []]
        if links and (hc.network_mode == "host" or hc.network_mode.startswith("container:")):
            raise InvalidParameter(
                "conflicting options: host type networking can't be used with links. "
                "This would result in undefined behavior"
            )
        cid = ids.new_id()
        name = self._reserve_name(ids.check_name(name) if name else None, cid)
        try:
            if not config.hostname:
                config = config.model_copy(update={"hostname": cid[:12]})
            volumes_from = []
            for spec in hc.volumes_from or []:
                ref, _, mode = spec.partition(":")
                volumes_from.append((self.get(ref).mounts, mode == "ro"))
            mounts = await asyncio.to_thread(
                self.volumes.mounts_for, hc.binds or [], list(config.volumes or {}), volumes_from, hc.mounts or []
            )
            update: dict[str, Any] = {"links": [f"/{child}:/{name}/{alias}" for child, alias in links] or None}
            if hc.network_mode not in ("", "default") and not hc.network_mode.startswith("container:") and networks:
                update["network_mode"] = next(iter(networks))  # a network given by ID is kept by name
            hc = hc.model_copy(update=update)
            c = Container(
                id=cid,
                name=name,
                image_id=image_id,
                image_ref=image_ref,
                created=iso_now(),
                config=config,
                host_config=hc,
                state=ContainerState(),
                base_layer=base_layer,
                storage_driver=self.driver_names["storage"],
                exec_driver=self.driver_names["exec"],
                path=argv[0],
                args=argv[1:],
                mounts=mounts,
                endpoints_config=networks,
            )
            await asyncio.to_thread(self._create_layer, c)
            try:
                await self._record(
                    self.store.insert_container,
                    {
                        "id": c.id,
                        "name": c.name,
                        "image_id": c.image_id,
                        "image_ref": c.image_ref,
                        "base_layer": base_layer,
                        "created": c.created,
                        "config": json.dumps(c.config.api()),
                        "host_config": json.dumps(c.host_config.api()),
                        "state": self._state_json(c),
                        "storage_driver": c.storage_driver,
                        "exec_driver": c.exec_driver,
                    },
                )
            except BaseException:
                await asyncio.to_thread(self._remove_files, c)
                raise
            self.containers[cid] = c
        finally:
            self._reserved.pop(name, None)
        self.event(c, "create")
        return {"Id": cid, "Warnings": []}

    def _image_of(self, ref: str) -> tuple[str, ContainerConfig, str | None]:
        """(image ID, its config, its top layer): store reads, for a worker thread."""
        image_id = self.images.resolve(ref)
        return image_id, self.images.config(image_id).config, self.images.top_layer(image_id)

    def _reserve_name(self, name: str | None, cid: str) -> str:
        """Claim ``name`` (or a generated one) for a container being created, before anything awaits:
        two creates at once never get the same name.  Generated names get a number when taken,
        as Docker's name generator does on retries."""
        if name is not None:
            self._check_name_free(name)
            self._reserved[name] = cid
            return name
        for attempt in range(1000):
            candidate = ids.random_name() + (str(random.randint(0, 9 + attempt)) if attempt else "")
            if not self._name_taken(candidate):
                self._reserved[candidate] = cid
                return candidate
        raise System("could not generate a free container name")

    def _name_taken(self, name: str) -> bool:
        return name in self._reserved or any(c.name == name for c in self.containers.values())

    def _check_host_config(self, hc: HostConfig) -> None:
        """What Docker checks in a HostConfig at create."""
        policy = hc.restart_policy
        if policy.name not in ("", "no") and hc.auto_remove:
            raise InvalidParameter("Conflicting options: --restart and --rm")
        if policy.maximum_retry_count and policy.name != "on-failure":
            raise InvalidParameter(f"maximum retry count cannot be used with restart policy '{policy.name}'")
        if policy.maximum_retry_count < 0:
            raise InvalidParameter("maximum retry count cannot be negative")
        if hc.volume_driver not in ("", "local"):
            raise InvalidParameter(
                f'error looking up volume plugin {hc.volume_driver}: plugin "{hc.volume_driver}" not found'
            )
        if hc.network_mode.startswith("container:"):
            self.get(hc.network_mode.partition(":")[2])  # NotFound early, as Docker
        for group in hc.group_add or []:
            if not group or ":" in group or "\n" in group:
                raise InvalidParameter(f"invalid group: {group!r}")

    def _initial_networks(self, mode: str, endpoints: dict[str, EndpointSettings], disabled: bool) -> dict:
        """The networks a new container is on, by name, with its settings on each (``EndpointsConfig``)."""
        if disabled or mode.startswith("container:"):
            return {}
        if len(endpoints) > 1:
            raise InvalidParameter("Container cannot be connected to network endpoints: " + ", ".join(endpoints))
        primary = "bridge" if mode in ("", "default") else mode
        settings = next(iter(endpoints.values()), EndpointSettings())
        net: dict = {}
        if primary not in ("bridge", "host", "none"):
            try:
                net = self.network.inspect(primary)
            except NotSupportedByDriver:
                raise NotFound(f"network {primary} not found") from None
            primary = net["Name"]
        check_endpoint(primary, net, settings)
        if settings.links and primary in ("host", "none"):
            raise InvalidParameter("links are supported only on bridge and user defined networks")
        return {primary: settings.api()}

    def confinement(self, hc: HostConfig, domainname: str = "") -> Confinement:
        """The container's capabilities, seccomp filter, devices... (see :mod:`dockyard.confinement`).
        ``Config.Domainname`` is the UTS namespace's ``kernel.domainname``, set as a namespaced sysctl."""
        if hc.userns_mode not in ("", "host"):
            raise InvalidParameter(
                f"invalid USER mode: {hc.userns_mode!r} (user namespace remapping is not supported by this daemon)"
            )
        return confinement.resolve(
            privileged=hc.privileged,
            cap_add=hc.cap_add,
            cap_drop=hc.cap_drop,
            capabilities_base=hc.capabilities,
            security_opt=hc.security_opt,
            readonly_rootfs=hc.readonly_rootfs,
            devices=hc.devices,
            device_cgroup_rules=hc.device_cgroup_rules,
            sysctls={**(hc.sysctls or {}), **({"kernel.domainname": domainname} if domainname else {})},
            masked=hc.masked_paths,
            readonly=hc.readonly_paths,
            host_network=hc.network_mode == "host",
            daemon_seccomp=self.security.seccomp_profile,
            daemon_no_new_privileges=self.security.no_new_privileges,
        )

    def _check_name_free(self, name: str) -> None:
        for other in self.containers.values():
            if other.name == name:
                raise Conflict(
                    f'Conflict. The container name "/{name}" is already in use by container '
                    f'"{other.id}". You have to remove (or rename) that container to be able to '
                    "reuse that name."
                )
        if name in self._reserved:
            raise Conflict(
                f'Conflict. The container name "/{name}" is already in use by container '
                f'"{self._reserved[name]}". You have to remove (or rename) that container to be able '
                "to reuse that name."
            )

    @staticmethod
    def _merge(user: ContainerConfig, image: ContainerConfig) -> ContainerConfig:
        """Fill a container's config from its image's, as Docker does at create."""
        update: dict[str, Any] = {}
        image_env = list(image.env or [])
        user_env = list(user.env or [])
        keys = {e.split("=", 1)[0] for e in user_env}
        update["env"] = [e for e in image_env if e.split("=", 1)[0] not in keys] + user_env
        if user.entrypoint is None:
            update["entrypoint"] = image.entrypoint
            if not user.cmd:
                update["cmd"] = image.cmd
        elif user.entrypoint == []:
            update["entrypoint"] = None
        for attr in ("working_dir", "user", "stop_signal", "shell"):
            if not getattr(user, attr) and getattr(image, attr):
                update[attr] = getattr(image, attr)
        if image.healthcheck is not None:
            if user.healthcheck is None:
                update["healthcheck"] = image.healthcheck
            else:  # what the user left out comes from the image (HEALTHCHECK), field by field
                mine, theirs = user.healthcheck, image.healthcheck
                update["healthcheck"] = mine.model_copy(
                    update={
                        "test": mine.test or theirs.test,
                        "interval": mine.interval or theirs.interval,
                        "timeout": mine.timeout or theirs.timeout,
                        "start_period": mine.start_period or theirs.start_period,
                        "retries": mine.retries or theirs.retries,
                    }
                )
        if image.exposed_ports:
            update["exposed_ports"] = {**image.exposed_ports, **(user.exposed_ports or {})}
        if image.labels:
            update["labels"] = {**image.labels, **(user.labels or {})}
        if image.volumes:
            update["volumes"] = {**image.volumes, **(user.volumes or {})}
        return user.model_copy(update=update)

    def _create_layer(self, c: Container) -> None:
        directory = self.dir_of(c)
        directory.mkdir(parents=True, exist_ok=True)
        self.storage.create_layer(c.id, c.base_layer)

    def _remove_files(self, c: Container) -> None:
        if self.storage.exists(c.id):
            self.storage.remove_layer(c.id)
        shutil.rmtree(self.dir_of(c), ignore_errors=True)

    # -- start -----------------------------------------------------------------
    @uninterruptible
    async def start(self, ref: str) -> None:
        c = self.get(ref)
        try:
            async with c.lock:
                if c.state.running:
                    raise NotModified("container already started")
                c.stopped_by_user = False
                await self._start_unlocked(c)
        except Exception as exc:
            if c.host_config.auto_remove and not isinstance(exc, NotModified):
                await self.remove(c.id, force=True)  # as Docker: --rm also cleans up a failed start
            raise

    async def _start_unlocked(self, c: Container) -> None:
        c.exited = asyncio.Event()
        try:
            spec = await asyncio.to_thread(self._prepare, c)
            await asyncio.to_thread(self.exec.create, spec)
            for stdin, stdout, stderr, future in c.pending_attaches:
                if not future.done():
                    sock = await asyncio.to_thread(self.exec.attach, c.id, stdin, stdout, stderr)
                    if future.done():  # its client left meanwhile
                        sock.close()
                    else:
                        future.set_result(sock)
            c.pending_attaches.clear()
            sized = await self._console_size(c)  # before the process runs: it may ask at once (stty size)
            process = await asyncio.to_thread(self.exec.start, c.id)
            if not sized:
                await self._console_size(c)
        except BaseException as exc:
            code = 128
            if isinstance(exc, DockyardError) and "permission denied" in exc.message:
                code = 126
            elif isinstance(exc, DockyardError) and ("not found" in exc.message or "no such file" in exc.message):
                code = 127
            await asyncio.to_thread(self._release, c)
            c.state = c.state.model_copy(
                update={
                    "status": "exited" if c.state.started_at != NEVER else "created",
                    "exit_code": code,
                    "error": str(exc),
                    "running": False,
                }
            )
            await self._save(c)
            self._fail_pending(c, exc)
            c.exited.set()
            raise
        checked = health.probe_of(c.config) is not None
        c.state = ContainerState(
            status="running",
            running=True,
            pid=process.pid,
            started_at=iso(process.started_at.timestamp()) if process.started_at else iso_now(),
            health=(c.state.health or Health()).model_copy(update={"status": "starting", "failing_streak": 0})
            if checked
            else None,
        )
        await self._save(c)
        self.event(c, "start")
        if self.observers is not None:
            self.observers.container_started(c.id, process.pid)
        if self.health is not None and checked:
            self.health.watch(c)
        self._watch(c)

    async def _console_size(self, c: Container) -> bool:
        """Give a tty container the size of the client's terminal (``ConsoleSize``, what ``docker run -t``
        sends); True when done or nothing to do.  Drivers that cannot resize a created process get it
        right after the start instead."""
        size = c.host_config.console_size
        if not (c.config.tty and size and size[0] and size[1]):
            return True
        try:
            await asyncio.to_thread(self.exec.resize, c.id, size[0], size[1])
            return True
        except DockyardError as exc:
            log.debug("terminal size of %s: %s", ids.short(c.id), exc)
            return False

    def _fail_pending(self, c: Container, exc: BaseException) -> None:
        for *_, future in c.pending_attaches:
            if not future.done():
                future.set_exception(exc if isinstance(exc, Exception) else System(str(exc)))
        c.pending_attaches.clear()

    def _prepare(self, c: Container) -> RuntimeSpec:
        """Mount, network, resolve user/cwd/argv: everything the exec driver needs."""
        root = self.storage.mount(c.id)
        try:
            config, hc = c.config, c.host_config
            uid, gid, groups, home = rootfs.resolve_user(root, config.user)
            groups = sorted(set(groups) | set(self.extra_groups(c, root)))
            linked = self._linked(c)
            env = list(config.env or [])
            names = {e.split("=", 1)[0] for e in env}
            link_env = [e for e in self._link_env(c, linked) if e.split("=", 1)[0] not in names]
            env = link_env + env
            names |= {e.split("=", 1)[0] for e in link_env}
            if "PATH" not in names:
                env.insert(0, f"PATH={rootfs.DEFAULT_PATH}")
            if "HOSTNAME" not in names:
                env.append(f"HOSTNAME={config.hostname}")
            if "HOME" not in names:
                env.append(f"HOME={home or '/'}")
            cwd = config.working_dir or "/"
            rootfs.make_workdir(root, cwd, uid, gid)
            problem = rootfs.find_executable(root, c.path, env)
            if problem:
                raise InvalidParameter(f"failed to start container {ids.short(c.id)}: {problem}")
            attachment, settings, resolvers = self._attach_networks(c)
            hosts = [links_.hosts_line(ip, alias, child) for alias, child, ip in linked if ip]
            binds = rootfs.mount_plan(
                root,
                etc_files.write(
                    self.dir_of(c),
                    config.hostname,
                    list(hc.extra_hosts or []) + hosts,
                    hc.dns or [],
                    attachment.netns is None,
                    settings,
                    resolvers,
                    search=hc.dns_search or [],
                    options=hc.dns_options or [],
                )
                + self.volumes.prepare(c.mounts, root),
            )
            return RuntimeSpec(
                container_id=c.id,
                rootfs=root,
                args=[c.path, *c.args],
                env=env,
                cwd=cwd,
                uid=uid,
                gid=gid,
                additional_gids=groups,
                hostname=config.hostname,
                tty=config.tty,
                open_stdin=config.open_stdin,
                stdin_once=config.stdin_once,
                netns=attachment.netns,
                log_path=self.log_path(c) if self.log_settings(c).readable else None,
                stop_signal=_signal_number(config.stop_signal),
                binds=binds,
                confinement=self.confinement(hc, config.domainname),
                runtime=hc.runtime,
                resources=Resources(
                    memory=hc.memory,
                    memory_swap=hc.memory_swap,
                    cpu_shares=hc.cpu_shares,
                    cpuset_cpus=hc.cpuset_cpus,
                    pids_limit=max(hc.pids_limit or 0, 0),
                ),
            )
        except BaseException:
            self._release(c)
            raise

    def _attach_networks(self, c: Container) -> tuple[Any, dict, list[str]]:
        """Prepare the network of the container's mode, then connect it to every other network it is
        on; returns the driver's attachment, the settings after all of them and the nameservers of
        the driver's resolver (if any)."""
        config, hc = c.config, c.host_config
        primary = c.primary_network()
        mode = hc.network_mode
        if config.network_disabled or (primary is not None and primary not in c.networks()):
            mode = "none"  # NetworkDisabled, or disconnected from the network of its mode
        shared = None
        if mode.startswith("container:"):
            other = self.get(mode.partition(":")[2])
            if not other.state.running:
                raise Conflict(f"cannot join network of a non running container: {other.id}")
            shared = netns.path_of(netns.name_for(other.id))
        endpoint = endpoint_request(c.endpoints_config.get(primary or "") or {}, config.mac_address or "")
        attachment = self.network.prepare(
            NetworkRequest(
                container_id=c.id,
                mode=mode,
                hostname=config.hostname,
                name=c.name,
                port_bindings=hc.port_bindings or {},
                exposed_ports=sorted((config.exposed_ports or {}).keys()),
                publish_all=bool(hc.publish_all_ports),
                shared_netns=shared,
                aliases=endpoint.aliases,
                dns=list(hc.dns or []),
                endpoint=endpoint,
            )
        )
        settings = attachment.settings
        for name, wanted in c.networks().items():
            if name == primary or name in ("host", "none") or mode in ("host",) or mode.startswith("container:"):
                continue
            extra = endpoint_request(wanted, "" if mode != "none" else config.mac_address or "")
            settings = self.network.connect(c.id, name, extra.aliases, extra)
        resolvers = self.network.resolvers(c.id) if attachment.netns is not None else None
        return attachment, settings, resolvers if resolvers is not None else attachment.dns

    def extra_groups(self, c: Container, root: Path) -> list[int]:
        """``--group-add``: numbers as given, names looked up in the container's ``/etc/group``."""
        found = []
        for group in c.host_config.group_add or []:
            if group.isdigit():
                found.append(int(group))
                continue
            gid = rootfs.lookup_group(root, group)
            if gid is None:
                raise InvalidParameter(f"Unable to find group {group}: no matching entries in group file")
            found.append(gid)
        return found

    def _linked(self, c: Container) -> list[tuple[str, Container, str]]:
        """(alias, child, child's address) of each ``--link``; every child must be running."""
        result = []
        primary = c.primary_network() or "bridge"
        for stored in c.host_config.links or []:
            child_name, alias = links_.parse(stored)
            try:
                child = self.get(child_name)
            except NotFound:
                raise InvalidParameter(f"could not get container for {child_name}") from None
            if not child.state.running:
                raise Conflict(f"Cannot link to a non running container: /{child.name} AS /{c.name}/{alias}")
            settings = self._network_settings(child)
            ip = (
                ((settings.get("Networks") or {}).get(primary) or {}).get("IPAddress")
                or settings.get("IPAddress")
                or ""
            )
            result.append((alias, child, ip))
        return result

    def _link_env(self, c: Container, linked: list[tuple[str, Container, str]]) -> list[str]:
        if c.primary_network() != "bridge":
            return []  # on user networks links are names only, as in Docker
        return [e for alias, child, ip in linked for e in links_.env(c.name, alias, child, ip)]

    def link_env(self, c: Container) -> list[str]:
        """The link variables of a running container (``docker exec`` processes get them too)."""
        try:
            return self._link_env(c, self._linked(c))
        except DockyardError:
            return []

    def _release(self, c: Container) -> None:
        """Undo :meth:`_prepare` after the process is gone."""
        for step in (lambda: self.network.release(c.id), lambda: self.storage.unmount(c.id)):
            try:
                step()
            except DockyardError as exc:
                log.warning("releasing %s: %s", ids.short(c.id), exc)

    # -- exit ------------------------------------------------------------------
    def _watch(self, c: Container) -> None:
        loop = self.loop or asyncio.get_running_loop()

        def wait_for_exit() -> None:
            try:
                status = self.exec.wait(c.id)
            except Exception as exc:  # the driver lost the process: record it as dead
                log.error("waiting for %s failed: %s", ids.short(c.id), exc)
                status = ExitStatus(exit_code=128, finished_at=_now_dt())
            asyncio.run_coroutine_threadsafe(self._on_exit(c, status), loop)

        self.start_thread(threading.Thread(target=wait_for_exit, name=f"wait-{c.id[:12]}", daemon=True))

    def start_thread(self, thread: threading.Thread) -> None:
        """Start a thread of its own (a daemon thread: the process it waits for outlives us) from a
        worker: ``Thread.start`` waits until the thread runs, which under load stalls the loop."""
        (self.loop or asyncio.get_running_loop()).run_in_executor(None, thread.start)

    async def _on_exit(self, c: Container, status: ExitStatus) -> None:
        if self.health is not None:
            self.health.unwatch(c)
        async with c.lock:
            if not c.state.running:
                return
            await asyncio.to_thread(self._release, c)
            try:
                await asyncio.to_thread(self.exec.delete, c.id)
            except DockyardError as exc:
                log.warning("exec state of %s: %s", ids.short(c.id), exc)
            c.state = c.state.model_copy(
                update={
                    "status": "exited",
                    "running": False,
                    "paused": False,
                    "pid": 0,
                    "exit_code": status.exit_code,
                    "oom_killed": status.oom_killed,
                    "finished_at": iso(status.finished_at.timestamp()),
                }
            )
            await self._save(c)
            self.event(c, "die", exitCode=str(status.exit_code))
            if self.observers is not None:
                self.observers.container_died(c.id, status.exit_code)
            for future in c.exit_waiters:
                if not future.done():
                    future.set_result(status.exit_code)
            c.exit_waiters.clear()
            c.exited.set()
        if c.host_config.auto_remove:
            try:
                await self.remove(c.id, force=True)
            except NotFound:
                pass
        elif self._should_restart(c, status.exit_code):
            c.restart_count += 1
            delay = min(0.1 * 2 ** (c.restart_count - 1), 60.0)  # Docker's back-off: 100 ms, doubling
            c.state = c.state.model_copy(update={"restarting": True, "status": "restarting"})
            await self._save(c)
            asyncio.get_running_loop().call_later(delay, lambda: asyncio.ensure_future(self._auto_restart(c)))

    @staticmethod
    def _should_restart(c: Container, exit_code: int) -> bool:
        policy = c.host_config.restart_policy
        if c.stopped_by_user or c.removed:
            return False
        if policy.name in ("always", "unless-stopped"):
            return True
        if policy.name == "on-failure":
            return exit_code != 0 and (not policy.maximum_retry_count or c.restart_count < policy.maximum_retry_count)
        return False

    async def _auto_restart(self, c: Container) -> None:
        async with c.lock:
            if c.removed or c.state.running or c.stopped_by_user:
                c.state = c.state.model_copy(update={"restarting": False})
                return
            try:
                await self._start_unlocked(c)
            except DockyardError as exc:
                log.error("restarting %s failed: %s", ids.short(c.id), exc)

    # -- attach / wait -------------------------------------------------------------
    async def attach(self, ref: str, stdin: bool, stdout: bool, stderr: bool) -> socket.socket:
        """A socket carrying the container's streams (see ``exec_attach``).

        For a container that is not running yet, the socket arrives when it
        starts, so no output is missed; cancelling the await withdraws it.
        """
        c = self.get(ref)
        async with c.lock:
            if c.state.running:
                return await asyncio.to_thread(self.exec.attach, c.id, stdin, stdout, stderr)
            future: asyncio.Future = asyncio.get_running_loop().create_future()
            entry = (stdin, stdout, stderr, future)
            c.pending_attaches.append(entry)
        try:
            return await future
        finally:
            # a client that went away withdraws its request (start skips done futures)
            if entry in c.pending_attaches:
                c.pending_attaches.remove(entry)

    async def wait(self, ref: str, condition: str = "not-running") -> int:
        c = self.get(ref)
        loop = asyncio.get_running_loop()
        if condition == "removed":
            waiters = c.removed_waiters
        elif condition == "not-running" and not c.state.running:
            return c.state.exit_code
        elif condition not in ("not-running", "next-exit"):
            raise InvalidParameter(f"invalid condition: {condition!r}")
        else:
            waiters = c.exit_waiters
        future = loop.create_future()
        waiters.append(future)
        try:
            return await future
        finally:
            if future in waiters:  # a waiter that gave up (its client left) is not kept
                waiters.remove(future)

    # -- stop / kill / restart -------------------------------------------------------------
    @uninterruptible
    async def stop(self, ref: str, timeout: float | None = None) -> None:
        """``docker stop``: the stop signal, then SIGKILL after ``timeout`` seconds (the container's
        ``StopTimeout`` when not given, else 10; negative: wait forever, as Docker)."""
        c = self.get(ref)
        # Decide under the lock: an automatic restart holds it while it starts the
        # container, and a stop that slipped in then would be undone by that start.
        async with c.lock:
            if not c.state.running:
                if c.state.restarting:  # waiting out a back-off: just cancel the restart
                    c.stopped_by_user = True
                    c.state = c.state.model_copy(update={"restarting": False, "status": "exited"})
                    await self._save(c)
                    return
                raise NotModified("container already stopped")
            c.stopped_by_user = True
        if timeout is None:
            timeout = c.config.stop_timeout if c.config.stop_timeout is not None else 10
        wait = float(timeout) if timeout >= 0 else 365 * 24 * 3600.0
        sig = _signal_number(c.config.stop_signal)
        await asyncio.to_thread(self.exec.stop, c.id, sig, wait)
        await c.exited.wait()
        self.event(c, "stop")

    @uninterruptible
    async def kill(self, ref: str, signal: str | int | None = None) -> None:
        c = self.get(ref)
        sig = _signal_number(signal, signals.SIGKILL)
        if not c.state.running:
            raise Conflict(f"Cannot kill container: {ref}: Container {c.id} is not running")
        if sig in (signals.SIGKILL, signals.SIGTERM, signals.SIGINT):
            c.stopped_by_user = True
        await asyncio.to_thread(self.exec.kill, c.id, sig)
        self.event(c, "kill", signal=str(sig))
        if sig == signals.SIGKILL:
            try:
                await asyncio.wait_for(c.exited.wait(), 10)
            except asyncio.TimeoutError:
                raise System(f"container {ids.short(c.id)} did not exit after SIGKILL") from None

    @uninterruptible
    async def restart(self, ref: str, timeout: float | None = None) -> None:
        c = self.get(ref)
        if c.state.running:
            await self.stop(ref, timeout)
        async with c.lock:
            if not c.state.running:
                c.restart_count += 0  # a manual restart is not counted, as in Docker
                c.stopped_by_user = False
                await self._start_unlocked(c)
        self.event(c, "restart")

    @contextlib.asynccontextmanager
    async def frozen(self, ref: str | Container, pause: bool = True) -> AsyncIterator[None]:
        """Keep a running container frozen while the daemon reads or writes its files (``cp``, ``commit``,
        ``export``; Docker pauses for these too, ``commit --pause=false`` opts out): none of its processes can
        change a path meanwhile.  Internal: no state change, no events; a paused container stays paused."""
        c = self.get(ref) if isinstance(ref, str) else ref
        froze = False
        async with c.lock:
            if pause and c.state.running and not c.state.paused:
                try:
                    await asyncio.to_thread(self.exec.pause, c.id)
                    froze = True
                except NotSupportedByDriver:
                    log.warning("exec driver cannot pause %s: its files are handled while it runs", ids.short(c.id))
            try:
                yield
            finally:
                if froze:
                    try:
                        await asyncio.to_thread(self.exec.unpause, c.id)
                    except DockyardError as exc:
                        log.error("unpausing %s after a file operation: %s", ids.short(c.id), exc)

    @uninterruptible
    async def pause(self, ref: str) -> None:
        c = self.get(ref)
        async with c.lock:
            if not c.state.running:
                raise Conflict(f"Container {c.id} is not running")
            if c.state.paused:
                raise Conflict(f"Container {c.id} is already paused")
            await asyncio.to_thread(self.exec.pause, c.id)
            c.state = c.state.model_copy(update={"paused": True, "status": "paused"})
            await self._save(c)
        if self.health is not None:
            self.health.unwatch(c)  # a paused container is not probed; unpause resumes, as Docker
        self.event(c, "pause")

    @uninterruptible
    async def unpause(self, ref: str) -> None:
        c = self.get(ref)
        async with c.lock:
            if not c.state.paused:
                raise Conflict(f"Container {c.id} is not paused")
            await asyncio.to_thread(self.exec.unpause, c.id)
            c.state = c.state.model_copy(update={"paused": False, "status": "running"})
            await self._save(c)
        if self.health is not None and c.state.health is not None:
            self.health.watch(c)
        self.event(c, "unpause")

    async def top(self, ref: str, ps_args: str = "-ef") -> dict:
        """``docker top``: ``ps`` on the host, limited to the container's processes."""
        c = self.get(ref)
        if not c.state.running:
            raise Conflict(f"Container {c.id} is not running")
        pids = set(await asyncio.to_thread(self.exec.processes, c.id))
        args = ps_args.split() if ps_args else ["-ef"]
        # (asyncio's subprocesses start a watcher thread each, from the loop: a worker runs ps instead)
        proc = await asyncio.to_thread(subprocess.run, ["ps", *args], capture_output=True)
        if proc.returncode != 0:
            raise InvalidParameter(f"Error running ps: {proc.stderr.decode().strip()}")
        lines = proc.stdout.decode().splitlines()
        titles = lines[0].split()
        if "PID" not in titles:
            raise InvalidParameter("Couldn't find PID field in ps output")
        column = titles.index("PID")
        processes = []
        for line in lines[1:]:
            fields = line.split(None, len(titles) - 1)
            if len(fields) > column and fields[column].isdigit() and int(fields[column]) in pids:
                processes.append(fields)
        return {"Titles": titles, "Processes": processes}

    async def stats(self, ref: str) -> dict:
        c = self.get(ref)
        base = {
            "read": iso_now(),
            "preread": NEVER,
            "name": "/" + c.name,
            "id": c.id,
            "num_procs": 0,
            "pids_stats": {},
            "blkio_stats": {},
            "cpu_stats": {},
            "precpu_stats": {},
            "memory_stats": {},
            "networks": {},
        }
        if not c.state.running:
            return base
        base.update(await asyncio.to_thread(self.exec.stats, c.id))
        return base

    @uninterruptible
    async def update(self, ref: str, request: UpdateRequest) -> list[str]:
        """``docker update``: cgroup limits (0 keeps the current value) and the restart policy."""
        c = self.get(ref)
        changes: dict[str, Any] = {
            name: getattr(request, name)
            for name in ("memory", "memory_swap", "cpu_shares", "cpuset_cpus", "pids_limit")
            if getattr(request, name)
        }
        policy = request.restart_policy
        if policy is not None and policy.name:
            if c.host_config.auto_remove and policy.name != "no":
                raise InvalidParameter(
                    "Restart policy cannot be updated because AutoRemove is enabled for the container"
                )
            if policy.maximum_retry_count and policy.name != "on-failure":
                raise InvalidParameter(f"maximum retry count cannot be used with restart policy '{policy.name}'")
            changes["restart_policy"] = policy
        hc = c.host_config.model_copy(update=changes)
        if c.state.running and changes.keys() - {"restart_policy"}:
            await asyncio.to_thread(
                self.exec.update,
                c.id,
                Resources(
                    memory=request.memory,
                    memory_swap=request.memory_swap,
                    cpu_shares=request.cpu_shares,
                    cpuset_cpus=request.cpuset_cpus,
                    pids_limit=max(request.pids_limit or 0, 0),
                ),
            )
        c.host_config = hc
        await self._record(self.store.update_container, c.id, host_config=json.dumps(hc.api()))
        self.event(c, "update")
        return []

    @uninterruptible
    async def rename(self, ref: str, new_name: str) -> None:
        c = self.get(ref)
        if not new_name:
            raise InvalidParameter("Neither old nor new names may be empty")
        name = ids.check_name(new_name)
        if name == c.name:
            raise InvalidParameter("Renaming a container with the same name as its current name")
        self._check_name_free(name)
        old = c.name
        c.name = name
        try:
            await self._save(c)
        except Conflict:
            c.name = old
            raise
        self.event(c, "rename", oldName="/" + old)

    # -- remove ------------------------------------------------------------------
    @uninterruptible
    async def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        c = self.get(ref)
        while True:
            if c.state.running:
                if not force:
                    raise Conflict(
                        f"You cannot remove a running container {c.id}. Stop the container before "
                        "attempting removal or force remove"
                    )
                try:
                    await self.kill(c.id, signals.SIGKILL)
                except Conflict:
                    pass  # it exited meanwhile: removing it is all that is left to do
            async with c.lock:
                if c.removed:
                    return
                if not c.state.running:
                    await self._remove_unlocked(c, volumes)
                    return
            # a start that held the lock finished meanwhile: the container runs again

    async def _remove_unlocked(self, c: Container, volumes: bool) -> None:
        try:
            await asyncio.to_thread(self.exec.delete, c.id)
        except DockyardError as exc:
            log.warning("exec state of %s: %s", ids.short(c.id), exc)
        try:
            await asyncio.to_thread(self.network.remove, c.id)  # rm frees the address and ports
        except DockyardError as exc:
            log.warning("network of %s: %s", ids.short(c.id), exc)
        await asyncio.to_thread(self._remove_files, c)
        await self._record(self.store.delete_container, c.id)
        self.containers.pop(c.id, None)
        if volumes:
            for m in c.mounts:
                if m.type == "volume" and self.volumes.is_anonymous(m.name) and not self.volume_users(m.name):
                    await asyncio.to_thread(self.volumes.remove, m.name)
        c.removed = True
        self._fail_pending(c, NotFound(f"No such container: {c.id}"))
        for future in c.removed_waiters:
            if not future.done():
                future.set_result(c.state.exit_code)
        self.event(c, "destroy")

    # -- networks (the list is ours; the plumbing is the driver's) ------------------------------------
    def connect(self, c: Container, net: dict, settings: EndpointSettings) -> None:
        """Put ``c`` on ``net`` (an inspect dict): now if it runs, at each start from now on.  Blocks."""
        name = net["Name"]
        mode = c.host_config.network_mode
        if mode.startswith("container:") or mode == "host":
            raise InvalidParameter(
                "container sharing network namespace with another container or host cannot "
                "be connected to any other network"
            )
        if name == "host":
            raise InvalidParameter("container cannot be disconnected from host network or connected to host network")
        if name == "none" or "none" in c.networks():
            raise InvalidParameter(
                "container cannot be connected to multiple networks with one of the networks in private (none) mode"
            )
        check_endpoint(name, net, settings)
        if name in c.networks():
            raise Forbidden(f"endpoint with name {c.name} already exists in network {name}")
        if c.state.running:
            wanted = endpoint_request(settings.api(), "")
            self.network.connect(c.id, name, wanted.aliases, wanted)
            self._refresh_resolv_conf(c)
        c.endpoints_config = {**c.endpoints_config, name: settings.api()}
        self._persist(c)

    def disconnect(self, c: Container, net: dict, force: bool = False) -> None:
        """Take ``c`` off ``net``, now and for its next starts.  Blocks."""
        name = net["Name"]
        if name in ("host", "none") and name in c.networks():
            raise InvalidParameter(f"container cannot be disconnected from {name} network")
        if name not in c.networks() and not (force and c.state.running):
            raise InvalidParameter(f"container {c.id} is not connected to network {name}")
        if c.state.running:
            try:
                self.network.disconnect(c.id, name)
            except NotFound:
                if not force:
                    raise
        c.endpoints_config = {k: v for k, v in c.endpoints_config.items() if k != name}
        self._persist(c)

    def _refresh_resolv_conf(self, c: Container) -> None:
        """Point a running container's resolv.conf at the resolver its networks offer now (a container
        first on the default bridge gets the embedded DNS of a user network it joins, as in Docker)."""
        if c.host_config.network_mode == "host":
            return
        resolvers = self.network.resolvers(c.id)
        hc = c.host_config
        if resolvers is not None:
            etc_files.write_resolv_conf(
                self.dir_of(c), hc.dns or [], False, resolvers, hc.dns_search or [], hc.dns_options or []
            )

    async def remove_link(self, link: str) -> None:
        """``DELETE /containers/<parent>/<alias>?link=1``: drop one legacy link of the parent; a running
        parent's ``/etc/hosts`` loses its line at once."""
        parent_name, _, alias = link.strip("/").rpartition("/")
        if not parent_name:
            raise InvalidParameter("Conflict, cannot remove the default link name of the container")
        try:
            parent = self.get(parent_name)
        except NotFound:
            raise InvalidParameter(f"Cannot get parent /{parent_name} for link name /{link.strip('/')}") from None
        kept = [item for item in parent.host_config.links or [] if links_.parse(item)[1] != alias]
        if len(kept) == len(parent.host_config.links or []):
            raise NotFound(f"No such container: /{link.strip('/')}")
        parent.host_config = parent.host_config.model_copy(update={"links": kept or None})
        await self._record(self.store.update_container, parent.id, host_config=json.dumps(parent.host_config.api()))
        if parent.state.running:
            await asyncio.to_thread(self._rewrite_hosts, parent)

    def _rewrite_hosts(self, c: Container) -> None:
        """Rewrite a running container's ``/etc/hosts`` in place (links changed)."""
        settings = self._network_settings(c)
        hosts = []
        for alias, child, ip in self._linked_running(c):
            hosts.append(links_.hosts_line(ip, alias, child))
        etc_files.write_hosts(
            self.dir_of(c),
            c.config.hostname,
            list(c.host_config.extra_hosts or []) + hosts,
            c.host_config.network_mode == "host",
            settings,
        )

    def _linked_running(self, c: Container) -> list[tuple[str, Container, str]]:
        try:
            return self._linked(c)
        except DockyardError:
            return []

    async def prune(self, filters: Filters) -> tuple[list[str], int]:
        """``docker container prune``: remove stopped containers (created before ``until``, with the
        labels asked for); returns their IDs and the bytes their layers held."""
        until = filters.until()
        deleted, reclaimed = [], 0
        for c in self._snapshot():
            if c.state.running or c.state.restarting or c.removed:
                continue
            if until is not None and parse_iso(c.created) >= until:
                continue
            if not filters.match_labels(c.config.labels):
                continue
            size = (await asyncio.to_thread(self.sizes, c.id))[0]
            try:
                await self.remove(c.id)
            except DockyardError as exc:
                log.warning("prune: %s: %s", ids.short(c.id), exc)
                continue
            deleted.append(c.id)
            reclaimed += size
        self.events_prune("container", reclaimed)
        return deleted, reclaimed

    def events_prune(self, kind: str, reclaimed: int) -> None:
        if self.events is not None:
            self.events.emit(kind, "prune", "", {"reclaimed": str(reclaimed)})

    # -- logs, terminal size, commit ----------------------------------------------------------------
    def logs(self, ref: str, query: LogQuery, render: Render, follow: bool = False) -> AsyncGenerator[bytes, None]:
        """The container's log as ``render`` puts each record, batch by batch (:func:`dockyard.logs.stream_log`);
        with ``follow``, until it stops running.  Use it under ``contextlib.aclosing``."""
        if not (query.stdout or query.stderr):
            raise InvalidParameter("Bad parameters: you must choose at least one stream")
        c = self.get(ref)
        if not self.log_settings(c).readable:
            raise NotSupportedByDriver("configured logging driver does not support reading")
        return stream_log(
            self.log_path(c), query, render, follow=follow, running=lambda: c.state.running and not c.removed
        )

    async def resize(self, ref: str, height: int, width: int) -> None:
        """Set a running tty container's terminal size; nothing to do for others (as Docker)."""
        c = self.get(ref)
        if c.config.tty and c.state.running:
            await asyncio.to_thread(self.exec.resize, c.id, height, width)

    async def commit(
        self,
        ref: str,
        config: ContainerConfig | None,
        repo: str | None,
        tag: str | None,
        comment: str = "",
        author: str = "",
        changes: Sequence[str] = (),
        pause: bool = True,
    ) -> str:
        """``docker commit``: a new image from the container's layer (frozen meanwhile unless not ``pause``);
        returns its ID.  A given config is merged over the container's, as Docker merges it."""
        c = self.get(ref)
        merged = self._merge(config, c.config) if config is not None else c.config
        async with self.frozen(c, pause):
            image_id = await asyncio.to_thread(
                self.images.commit,
                c.id,
                c.image_id,
                merged,
                " ".join([c.path, *c.args]),
                repo,
                tag,
                comment,
                author,
                list(changes),
            )
        self.event(c, "commit")
        return image_id

    # -- views (formatting in container_views) --------------------------------------------------
    def inspect(self, ref: str, size: bool = False) -> dict:
        """``GET /containers/{id}/json`` (blocks: the network driver and, with ``size``, the layer)."""
        c = self.get(ref)
        return container_views.inspect(
            c,
            self.dir_of(c),
            self.log_path(c) if self.log_settings(c).readable else None,
            self._network_settings(c),
            self.sizes(c.id) if size else None,
        )

    async def summaries(
        self, all_containers: bool = False, limit: int = -1, filters: Filters | None = None, size: bool = False
    ) -> list[dict]:
        """``GET /containers/json``; with ``size`` each row has SizeRw and SizeRootFs."""
        return await asyncio.to_thread(self._summaries, all_containers, limit, filters or Filters(), size)

    def summaries_now(
        self, all_containers: bool = False, limit: int = -1, filters: Filters | None = None, size: bool = False
    ) -> list[dict]:
        """:meth:`summaries` for a worker thread."""
        return self._summaries(all_containers, limit, filters or Filters(), size)

    def _summaries(self, all_containers: bool, limit: int, filters: Filters, size: bool) -> list[dict]:
        settings: dict[str, dict] = {}

        def settings_of(c: Container) -> dict:
            if c.id not in settings:
                settings[c.id] = self._network_settings(c)
            return settings[c.id]

        ancestors = None
        if filters.contains("ancestor"):
            ancestors = set()
            for name in filters.get("ancestor"):
                try:
                    ancestors |= self.images.descendants(self.images.resolve(name))
                except DockyardError:
                    log.warning("ps: no image %s for the ancestor filter", name)
        network_ids: dict[str, str] = {}
        if filters.contains("network"):
            try:
                network_ids = {n["Name"]: n["Id"] for n in self.network.list()}
            except DockyardError:
                network_ids = {}

        def networks_of(c: Container) -> dict[str, str]:
            live = settings_of(c).get("Networks") or {}
            return {
                name: (live.get(name) or {}).get("NetworkID") or network_ids.get(name, "")
                for name in {*c.networks(), *live}
            }

        selection = container_views.Selection(
            all=all_containers,
            limit=limit,
            filters=filters,
            ancestors=ancestors,
            ports=lambda c: container_views.ps_ports(settings_of(c).get("Ports") or {}),
            networks=networks_of,
        )
        rows = []
        for c in container_views.select(self._snapshot(), selection, self.get):
            row = container_views.summary(
                c, container_views.ps_ports(settings_of(c).get("Ports") or {}), settings_of(c)
            )
            if size:
                row["SizeRw"], row["SizeRootFs"] = self.sizes(c.id)
            rows.append(row)
        return rows

    def _network_settings(self, c: Container) -> dict:
        """The network driver's view of a running container; nothing for others (or a failing driver)."""
        if not c.state.running:
            return {}
        try:
            return self.network.settings(c.id)
        except DockyardError:
            return {}

    def sizes(self, ref: str) -> tuple[int, int]:
        """(SizeRw, SizeRootFs): the container's own bytes, and with its image's."""
        c = self.get(ref)
        own = self.storage.diff_size(c.id) if self.storage.exists(c.id) else 0
        row = self.store.image_row(c.image_id)
        return own, own + (row["size"] if row else 0)

    def counts(self) -> tuple[int, int, int, int]:
        running = sum(1 for c in self.containers.values() if c.state.running and not c.state.paused)
        paused = sum(1 for c in self.containers.values() if c.state.paused)
        total = len(self.containers)
        return total, running, paused, total - running - paused

    # -- daemon restart ------------------------------------------------------------
    async def recover(self) -> None:
        """Reconcile records with the exec driver after a (possibly unclean) restart."""
        self.loop = asyncio.get_running_loop()
        for c in list(self.containers.values()):
            if not c.state.running:
                continue
            try:
                process = await asyncio.to_thread(self.exec.restore, c.id)
            except DockyardError as exc:
                log.error("restoring %s: %s", ids.short(c.id), exc)
                process = None
            if process is not None and process.status in ("running", "paused"):
                # re-take the mount reference the dead daemon held
                await asyncio.to_thread(self.storage.mount, c.id)
                c.state = c.state.model_copy(update={"pid": process.pid, "paused": process.status == "paused"})
                await self._save(c)
                self._watch(c)
                if self.health is not None and not c.state.paused:
                    self.health.watch(c)
                log.info("container %s is still running (pid %d)", ids.short(c.id), process.pid)
                continue
            code = process.exit_code if process is not None and process.exit_code is not None else 128
            finished = process.finished_at if process is not None and process.finished_at else None
            await asyncio.to_thread(self._release, c)
            try:
                await asyncio.to_thread(self.exec.delete, c.id)
            except DockyardError:
                pass
            c.state = c.state.model_copy(
                update={
                    "status": "exited",
                    "running": False,
                    "pid": 0,
                    "exit_code": code,
                    "oom_killed": bool(process and process.oom_killed),
                    "finished_at": iso(finished.timestamp()) if finished else iso_now(),
                }
            )
            await self._save(c)
            log.info("container %s exited (%d) while the daemon was down", ids.short(c.id), code)
            if self.observers is not None:
                self.observers.container_died(c.id, code)
        for c in list(self.containers.values()):
            policy = c.host_config.restart_policy.name
            if not c.state.running and (
                policy == "always"
                or policy == "unless-stopped"
                and not c.stopped_by_user
                or policy == "on-failure"
                and self._should_restart(c, c.state.exit_code)
            ):
                async with c.lock:
                    try:
                        await self._start_unlocked(c)
                    except DockyardError as exc:
                        log.error("restarting %s at daemon start failed: %s", ids.short(c.id), exc)

    def set_health(self, c: Container, value: Health) -> None:
        """Record a probe's outcome (:mod:`dockyard.health`); a change of status is an event."""
        before = c.state.health.status if c.state.health else None
        c.state = c.state.model_copy(update={"health": value})
        self._persist(c)
        if value.status != before:
            self.event(c, f"health_status: {value.status}")

    def event(self, c: Container, action: str, **attributes: str) -> None:
        """Emit a container event (``docker events``) with Docker's attributes."""
        if self.events is not None:  # the container's labels too, as Docker's events carry them
            self.events.emit(
                "container",
                action,
                c.id,
                {**(c.config.labels or {}), "image": c.image_ref, "name": c.name, **attributes},
            )


def check_endpoint(name: str, net: dict, settings: EndpointSettings) -> None:
    """Docker's checks of an endpoint's settings against the network it is for."""
    user_defined = name not in ("bridge", "host", "none")
    ipam = settings.ipam_config
    if not user_defined and settings.aliases:
        raise InvalidParameter("network-scoped alias is supported only for containers in user defined networks")
    if ipam is not None and (ipam.ipv4_address or ipam.ipv6_address):
        if not user_defined:
            raise InvalidParameter("user specified IP address is supported on user defined networks only")
    if ipam is not None:
        for value, version in ((ipam.ipv4_address, 4), (ipam.ipv6_address, 6)):
            if value:
                try:
                    if ipaddress.ip_address(value).version != version:
                        raise ValueError
                except ValueError:
                    raise InvalidParameter(f"invalid IPv{version} address: {value}") from None
        for value in ipam.link_local_ips or []:
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise InvalidParameter(f"invalid link-local IP address: {value}") from None


def endpoint_request(settings: dict, mac_address: str) -> EndpointRequest:
    """What a container's ``EndpointSettings`` (API shape) ask of the network driver."""
    ipam = settings.get("IPAMConfig") or {}
    return EndpointRequest(
        aliases=list(settings.get("Aliases") or []),
        ipv4_address=ipam.get("IPv4Address") or "",
        ipv6_address=ipam.get("IPv6Address") or "",
        link_local_ips=list(ipam.get("LinkLocalIPs") or []),
        mac_address=mac_address,
    )


def _now_dt():
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)
