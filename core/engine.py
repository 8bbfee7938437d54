"""The engine: one object wiring the store, the drivers and the services.

Built once per daemon (and per test); the API routes reach everything through it.
"""

from __future__ import annotations

import logging
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path

from dockyard import confinement, logs, registry_hosts, storage_migration
from dockyard.container_files import ContainerFiles
from dockyard.containers import ContainerService
from dockyard.drivers import DistributionDriver, ExecDriver, LoadedDrivers, NetworkDriver, StorageDriver, load_drivers
from dockyard.errors import Conflict
from dockyard.events import EventBus
from dockyard.execs import ExecService
from dockyard.health import HealthMonitor
from dockyard.images import ImageService
from dockyard.models.container import LogConfig
from dockyard.networks import NetworkService
from dockyard.observers import Observers, load_observers
from dockyard.store import Store
from dockyard.volumes import VolumeService

log = logging.getLogger(__name__)


@dataclass
class Engine:
    data_root: Path
    store: Store
    drivers: LoadedDrivers
    storage: StorageDriver
    execution: ExecDriver
    network: NetworkDriver
    images: ImageService
    volumes: VolumeService
    containers: ContainerService
    execs: ExecService
    events: EventBus
    distribution: DistributionDriver
    files: ContainerFiles
    networks: NetworkService
    observers: Observers
    #: ``RegistryConfig`` of ``GET /info``, from the daemon's registry settings
    registry_config: dict

    @classmethod
    def open(
        cls,
        data_root: Path,
        storage: str | None = None,
        execution: str | None = None,
        network: str | None = None,
        options: dict[str, dict] | None = None,
        distribution: str | None = None,
        migrate_storage: bool = False,
        security: confinement.DaemonSecurity | None = None,
        log_config: LogConfig | None = None,
    ) -> "Engine":
        _private_root(data_root)
        (data_root / "tmp").mkdir(mode=0o700, exist_ok=True)
        for stale in (data_root / "tmp").glob("*"):  # a build, import or load cut short by a crash
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)
        store = Store(data_root)
        previous = store.setting("storage_driver")
        if storage and previous and storage != previous:
            if not migrate_storage:
                store.close()
                raise Conflict(
                    f"the data root {data_root} holds layers of the {previous!r} storage driver; "
                    f"refusing to start with {storage!r} (use --storage-driver {previous}, another "
                    f"--data-root, or --storage-migrate to move the layers to {storage!r})"
                )
            try:
                storage_migration.migrate(data_root, store, previous, storage, options or {})
            except BaseException:
                store.close()
                raise
        try:
            drivers = load_drivers(
                data_root,
                {"storage": storage or previous, "exec": execution, "network": network, "distribution": distribution},
                options,
            )
            load_observers(drivers.pm)
            drivers.pm.check_pending()
        except BaseException:
            store.close()
            raise
        store.set_setting("storage_driver", drivers.names["storage"])
        if not store.setting("daemon_id"):
            import uuid

            store.set_setting("daemon_id", str(uuid.uuid4()).upper())
        storage_facade = StorageDriver(drivers.pm)
        exec_facade = ExecDriver(drivers.pm)
        network_facade = NetworkDriver(drivers.pm)
        events = EventBus()
        observers = Observers(drivers.pm)
        images = ImageService(store, storage_facade, drivers.names["storage"], events)
        volumes = VolumeService(data_root / "volumes", store, events)
        containers = ContainerService(
            data_root / "containers",
            store,
            images,
            volumes,
            storage_facade,
            exec_facade,
            network_facade,
            drivers.names,
            events,
            observers,
            security,
            log_config,
        )
        # images and volumes ask who uses them (rmi, volume rm); containers own that knowledge
        images.users = containers.images_in_use
        volumes.users = containers.volume_users
        containers.load()
        images.reconcile(set(containers.containers))
        execs = ExecService(containers)
        containers.health = HealthMonitor(containers, execs.probe)
        return cls(
            data_root,
            store,
            drivers,
            storage_facade,
            exec_facade,
            network_facade,
            images,
            volumes,
            containers,
            execs,
            events,
            DistributionDriver(drivers.pm),
            ContainerFiles(containers, storage_facade),
            NetworkService(network_facade, containers, events),
            observers,
            _registry_config((options or {}).get("distribution") or {}),
        )

    def close(self) -> None:
        self.containers.close()
        try:
            try:
                if self.containers.health is not None:
                    self.containers.health.close()
                self.observers.close()
                self.network.cleanup()
            finally:
                # containers outlive the daemon: their mounts stay for the next daemon to adopt
                # (unmounting would leave it mounting a second union over a live one)
                if not any(c.state.running for c in self.containers.containers.values()):
                    self.storage.cleanup()
        finally:
            self.store.close()

    def disk_usage(self) -> dict:
        """``GET /system/df``: layers, images (with containers using them and shared bytes), containers
        (with their sizes) and volumes (with size and references).  Blocks: call from a worker thread.
        The classic builder's cache is images, so ``BuildCache`` is empty, as with Docker's."""
        return {
            "LayersSize": self.images.layers_size(),
            "Images": self.images.summaries(extra=True),
            "Containers": self.containers.summaries_now(all_containers=True, size=True),
            "Volumes": self.volumes.usage(),
            "BuildCache": [],
        }

    def info(self) -> dict:
        total, running, paused, stopped = self.containers.counts()
        mem = _meminfo_total()
        runtimes = self.execution.runtimes(self.drivers.names["exec"])
        return {
            "ID": self.store.setting("daemon_id") or "",
            "Containers": total,
            "ContainersRunning": running,
            "ContainersPaused": paused,
            "ContainersStopped": stopped,
            "Images": self.store.image_count(),
            "Driver": self.drivers.names["storage"],
            "DriverStatus": [list(x) for x in self.storage.status()],
            "ExecutionDriver": self.drivers.names["exec"],
            "Plugins": {
                "Volume": ["local"],
                "Network": sorted({"host", "none", self.drivers.names["network"]}),
                "Authorization": None,
                "Log": list(logs.DRIVERS),
            },
            "MemoryLimit": Path("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists()
            or Path("/sys/fs/cgroup/memory.max").exists()
            or _cgroup2_has("memory"),
            "SwapLimit": Path("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists() or _cgroup2_has("memory"),
            "CpuCfsPeriod": True,
            "CpuCfsQuota": True,
            "CPUShares": True,
            "CPUSet": True,
            "PidsLimit": True,
            "IPv4Forwarding": Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() == "1",
            "Debug": logging.getLogger().isEnabledFor(logging.DEBUG),
            "NFd": len(list(Path("/proc/self/fd").iterdir())),
            "NGoroutines": 0,
            "SystemTime": _now(),
            "LoggingDriver": self.containers.log_config.type or "json-file",
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": "2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "1",
            "NEventsListener": self.events.listeners,
            "KernelVersion": platform.release(),
            "OperatingSystem": _os_name(),
            "OSType": "linux",
            "Architecture": platform.machine(),
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": self.registry_config,
            "NCPU": _ncpu(),
            "MemTotal": mem,
            "DockerRootDir": str(self.data_root),
            "Name": platform.node(),
            "Labels": [],
            "ExperimentalBuild": False,
            "ServerVersion": _version(),
            "Runtimes": {name: {"path": path} for name, path in runtimes.paths.items()},
            "DefaultRuntime": runtimes.default,
            "Swarm": {
                "LocalNodeState": "inactive",
                "NodeID": "",
                "NodeAddr": "",
                "ControlAvailable": False,
                "Error": "",
                "RemoteManagers": None,
            },
            "LiveRestoreEnabled": True,
            "Isolation": "",
            "InitBinary": "",
            "SecurityOptions": confinement.info_security_options(
                self.containers.security.no_new_privileges, self.containers.security.seccomp_profile is not None
            ),
            "Warnings": self.warnings(),
            "DockyardExecStatus": [list(x) for x in self.execution.status()],
            "DockyardNetworkStatus": [list(x) for x in self.network.status()],
        }

    @staticmethod
    def warnings() -> list[str]:
        warnings = []
        if not (Path("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists() or _cgroup2_has("memory")):
            warnings.append("WARNING: No memory limit support")
        if not (Path("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists() or _cgroup2_has("memory")):
            warnings.append("WARNING: No swap limit support")
        return warnings


def _registry_config(options: dict) -> dict:
    """What the daemon's ``insecure-registries`` and ``registry-mirrors`` settings (daemon-wide, handed
    to the distribution driver as options) make of ``RegistryConfig``."""
    insecure = registry_hosts.insecure_registries(options.get("insecure-registries"))  # None: the environment's
    mirrors = [m.strip() for m in str(options.get("registry-mirrors") or "").split(",") if m.strip()]
    return registry_hosts.registry_config(insecure, mirrors)


def _private_root(data_root: Path) -> None:
    """The data root is root's alone (0700): below it are container file systems with setuid binaries,
    volumes, logs and the metadata, none of it for other local users (the CVE-2021-41091 class)."""
    import os
    import stat

    data_root.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = data_root.stat()
    if st.st_mode & stat.S_IWOTH or st.st_uid != os.geteuid():
        raise Conflict(
            f"refusing to use {data_root} as the data root: it is writable by other users or owned by "
            "another user; give the daemon a directory of its own"
        )
    os.chmod(data_root, 0o700)


def _cgroup2_has(controller: str) -> bool:
    try:
        return controller in Path("/sys/fs/cgroup/cgroup.controllers").read_text().split()
    except OSError:
        return False


def _meminfo_total() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def _ncpu() -> int:
    import os

    return os.cpu_count() or 1


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return "Linux"


def _now() -> str:
    from dockyard.timefmt import iso_now

    return iso_now()


def _version() -> str:
    from dockyard import __version__

    return __version__
