"""Engine API container shapes (v1.41), named exactly as the API names them.

Python attributes are snake_case; aliases carry the API's JSON names, and every
model serialises ``by_alias``.  Every field of the v1.41 objects is declared:
plainly when dockyard implements it, with a marker from
:mod:`dockyard.models.api` when it refuses it (or some of its values) or when
Docker itself never reads it from a request.  ``docs/api-coverage.md`` is
generated from these declarations.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator, model_serializer

from dockyard.models.api import Allowed, ApiModel, NoOp, Refused

__all__ = [
    "ContainerConfig",
    "ContainerState",
    "CreateRequest",
    "EndpointIPAMConfig",
    "EndpointSettings",
    "HealthConfig",
    "HostConfig",
    "LogConfig",
    "Mount",
    "NetworkingConfig",
    "RestartPolicy",
    "Resources",
    "UpdateRequest",
]


def _none_is(default: Any) -> Any:
    """A ``mode="before"`` validator turning JSON null into ``default`` (Go's zero value)."""

    def before(cls: type, value: Any) -> Any:
        if value is None:
            return default() if callable(default) else default
        return value

    return classmethod(before)


class RestartPolicy(ApiModel):
    name: Annotated[str, Allowed("", "no", "always", "unless-stopped", "on-failure")] = ""
    maximum_retry_count: int = 0

    _null_name = field_validator("name", mode="before")(_none_is(""))
    _null_count = field_validator("maximum_retry_count", mode="before")(_none_is(0))


class LogConfig(ApiModel):
    #: "" (what the docker CLI sends without --log-driver) is the daemon's default, filled in at create;
    #: ``json-file`` (max-size, max-file) and ``none`` are implemented, any other driver or option is a 400
    #: naming it at create (:func:`dockyard.logs.settings`)
    type: str = ""
    config: dict[str, str] = Field(default_factory=dict)

    @field_validator("type", mode="before")
    @classmethod
    def _none_is_default(cls, value: str | None) -> str:
        return value or ""

    @field_validator("config", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value


class HealthConfig(ApiModel):
    """``Config.Healthcheck``: durations in nanoseconds, 0 = inherit (the image's, or Docker's default)."""

    #: [] inherit, ["NONE"] disable, ["CMD", arg...] exec, ["CMD-SHELL", command] through /bin/sh -c
    test: list[str] | None = None
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    retries: int = 0

    @field_validator("interval", "timeout", "start_period", "retries", mode="before")
    @classmethod
    def _null_zero(cls, value: Any) -> Any:
        return 0 if value is None else value

    @model_serializer(mode="wrap")
    def _omit_zero(self, handler: Any) -> Any:
        # Go's json omitempty: an image config or inspect shows only the durations that are set
        data = handler(self)
        return {k: v for k, v in data.items() if v not in (0, None) or k in ("Test", "test")}


class BindOptions(ApiModel):
    propagation: Annotated[str, Allowed("", "rprivate", "private")] = ""
    non_recursive: Annotated[bool, Refused()] = False


class DriverConfig(ApiModel):
    name: Annotated[str, Allowed("", "local")] = ""
    options: Annotated[dict[str, str] | None, Refused("volume driver options")] = None


class VolumeOptions(ApiModel):
    no_copy: bool = False
    labels: dict[str, str] | None = None
    driver_config: DriverConfig | None = None


class TmpfsOptions(ApiModel):
    size_bytes: Annotated[int, Refused()] = 0
    mode: Annotated[int, Refused()] = 0


class Mount(ApiModel):
    """One entry of ``HostConfig.Mounts`` (``docker run --mount``)."""

    target: str = ""
    source: str = ""
    type: Annotated[str, Allowed("bind", "volume", why="tmpfs and npipe mounts are not implemented")] = "volume"
    read_only: bool = False
    consistency: Annotated[
        str, Allowed("", "default", "consistent", "cached", "delegated", why="no effect on Linux, as in Docker")
    ] = ""
    bind_options: BindOptions | None = None
    volume_options: VolumeOptions | None = None
    tmpfs_options: TmpfsOptions | None = None


class Resources(ApiModel):
    """The cgroup settings shared by ``HostConfig`` and ``POST /containers/{id}/update``."""

    cpu_shares: int = 0
    memory: int = 0
    cgroup_parent: Annotated[str, Refused()] = ""
    blkio_weight: Annotated[int, Refused()] = 0
    blkio_weight_device: Annotated[list[dict] | None, Refused()] = None
    blkio_device_read_bps: Annotated[list[dict] | None, Refused()] = None
    blkio_device_write_bps: Annotated[list[dict] | None, Refused()] = None
    blkio_device_read_iops: Annotated[list[dict] | None, Refused()] = Field(default=None, alias="BlkioDeviceReadIOps")
    blkio_device_write_iops: Annotated[list[dict] | None, Refused()] = Field(default=None, alias="BlkioDeviceWriteIOps")
    cpu_period: Annotated[int, Refused()] = 0
    cpu_quota: Annotated[int, Refused()] = 0
    cpu_realtime_period: Annotated[int, Refused()] = 0
    cpu_realtime_runtime: Annotated[int, Refused()] = 0
    cpuset_cpus: str = ""
    cpuset_mems: Annotated[str, Refused()] = ""
    devices: list[dict[str, Any]] | None = None
    device_cgroup_rules: list[str] | None = None
    device_requests: Annotated[list[dict] | None, Refused()] = None
    kernel_memory: Annotated[int, Refused()] = 0
    kernel_memory_tcp: Annotated[int, Refused()] = Field(default=0, alias="KernelMemoryTCP")
    memory_reservation: Annotated[int, Refused()] = 0
    memory_swap: int = 0
    memory_swappiness: Annotated[int | None, Refused()] = -1
    nano_cpus: Annotated[int, Refused()] = 0
    oom_kill_disable: Annotated[bool | None, Refused()] = None
    init: Annotated[bool | None, Refused()] = None
    pids_limit: int | None = None
    ulimits: Annotated[list[dict] | None, Refused()] = None
    cpu_count: Annotated[int, Refused("Windows only")] = 0
    cpu_percent: Annotated[int, Refused("Windows only")] = 0
    io_maximum_iops: Annotated[int, Refused("Windows only")] = Field(default=0, alias="IOMaximumIOps")
    io_maximum_bandwidth: Annotated[int, Refused("Windows only")] = Field(default=0, alias="IOMaximumBandwidth")

    _null_ints = field_validator("cpu_shares", "memory", "memory_swap", mode="before")(_none_is(0))
    _null_str = field_validator("cpuset_cpus", mode="before")(_none_is(""))


class HostConfig(Resources):
    binds: list[str] | None = None
    container_id_file: str = Field(default="", alias="ContainerIDFile")  # the CLI writes it; kept for inspect
    log_config: LogConfig = Field(default_factory=LogConfig)
    network_mode: str = "default"
    port_bindings: dict[str, Any] | None = Field(default_factory=dict)
    restart_policy: RestartPolicy = Field(default_factory=RestartPolicy)
    auto_remove: bool = False
    volume_driver: str = ""
    volumes_from: list[str] | None = None
    mounts: list[Mount] | None = None
    #: [height, width] of the tty at start (the docker CLI sends its terminal's)
    console_size: list[int] | None = None
    cap_add: list[str] | None = None
    cap_drop: list[str] | None = None
    cgroupns_mode: Annotated[str, Allowed("")] = ""
    dns: list[str] | None = Field(default_factory=list)
    dns_options: list[str] | None = Field(default_factory=list)
    dns_search: list[str] | None = Field(default_factory=list)
    extra_hosts: list[str] | None = None
    group_add: list[str] | None = None
    ipc_mode: Annotated[
        str, Allowed("", "private", "shareable", why="each container has an IPC namespace of its own")
    ] = ""
    cgroup: Annotated[str, Allowed("")] = ""
    links: list[str] | None = None
    oom_score_adj: Annotated[int, Refused()] = 0
    pid_mode: Annotated[str, Allowed("")] = ""
    # confinement (see dockyard.confinement)
    privileged: bool = False
    publish_all_ports: bool = False
    readonly_rootfs: bool = False
    security_opt: list[str] | None = None
    storage_opt: Annotated[dict[str, str] | None, Refused()] = None
    tmpfs: Annotated[dict[str, str] | None, Refused()] = None
    uts_mode: Annotated[str, Allowed("")] = Field(default="", alias="UTSMode")
    #: "" or "host" (no user namespace either way); others are refused by dockyard.containers.confinement
    userns_mode: str = ""
    shm_size: Annotated[int, Refused()] = 0
    sysctls: dict[str, str] | None = None
    #: which of the exec driver's runtimes runs the container; "" = the default
    runtime: str = ""
    isolation: Annotated[str, Allowed("", "default")] = ""
    #: None = Docker's defaults; [] = none (``--security-opt systempaths=unconfined``)
    masked_paths: list[str] | None = None
    readonly_paths: list[str] | None = None
    #: replaces the default capability set (API 1.40's field; the CLI does not send it to 1.41)
    capabilities: list[str] | None = None

    @field_validator("log_config", "restart_policy", mode="before")
    @classmethod
    def _none_is_default(cls, value: Any) -> Any:
        return {} if value is None else value

    _null_strings = field_validator("network_mode", mode="before")(_none_is("default"))
    _null_plain = field_validator(
        "volume_driver",
        "runtime",
        "container_id_file",
        "cgroupns_mode",
        "ipc_mode",
        "cgroup",
        "pid_mode",
        "uts_mode",
        "userns_mode",
        "isolation",
        mode="before",
    )(_none_is(""))

    @field_validator("console_size")
    @classmethod
    def _console_size(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (len(value) != 2 or any(v < 0 for v in value)):
            raise ValueError("ConsoleSize must be [height, width]")
        return value


class UpdateRequest(Resources):
    """Body of ``POST /containers/{id}/update``: resources to change (0 = keep) and the restart policy."""

    devices: Annotated[list[dict[str, Any]] | None, NoOp("Docker's update does not change devices")] = None
    device_cgroup_rules: Annotated[list[str] | None, NoOp("Docker's update does not change device rules")] = None
    restart_policy: RestartPolicy | None = None


#: Config fields Docker leaves out of JSON when unset (``omitempty`` in moby's ``container.Config``)
_OMIT_EMPTY = ("Healthcheck", "ArgsEscaped", "NetworkDisabled", "MacAddress", "StopSignal", "StopTimeout", "Shell")


class ContainerConfig(ApiModel):
    """``Config`` of a container (and of an image, which uses the same shape)."""

    hostname: str = ""
    #: set as the UTS namespace's kernel.domainname
    domainname: str = ""
    user: str = ""
    attach_stdin: bool = False
    attach_stdout: bool = False
    attach_stderr: bool = False
    exposed_ports: dict[str, Any] | None = None
    tty: bool = False
    open_stdin: bool = False
    stdin_once: bool = False
    env: list[str] | None = None
    cmd: list[str] | None = None
    healthcheck: HealthConfig | None = None
    #: Windows only in Docker: stored and shown, as Docker does on Linux
    args_escaped: bool | None = None
    image: str = ""
    volumes: dict[str, Any] | None = None
    working_dir: str = ""
    entrypoint: list[str] | None = None
    network_disabled: bool | None = None
    mac_address: str | None = None
    on_build: list[str] | None = Field(default=None, alias="OnBuild")
    labels: dict[str, str] | None = None
    stop_signal: str | None = None
    stop_timeout: int | None = None
    #: the shell of RUN/CMD/ENTRYPOINT shell forms in a build (SHELL); no effect on a container, as in Docker
    shell: list[str] | None = None

    @field_validator("cmd", "entrypoint", "shell", mode="before")
    @classmethod
    def _string_is_one_element(cls, value: Any) -> Any:
        # moby's strslice: a JSON string is a one-element list
        if isinstance(value, str):
            return [value]
        return value

    _null_strings = field_validator("hostname", "domainname", "user", "image", "working_dir", mode="before")(
        _none_is("")
    )
    _null_bools = field_validator(
        "attach_stdin", "attach_stdout", "attach_stderr", "tty", "open_stdin", "stdin_once", mode="before"
    )(_none_is(False))

    def api(self) -> dict[str, Any]:
        data = super().api()
        for key in _OMIT_EMPTY:
            if data.get(key) in (None, False, ""):
                data.pop(key, None)
        return data


class EndpointIPAMConfig(ApiModel):
    ipv4_address: str = Field(default="", alias="IPv4Address")
    ipv6_address: str = Field(default="", alias="IPv6Address")
    link_local_ips: list[str] | None = Field(default=None, alias="LinkLocalIPs")

    _null_strings = field_validator("ipv4_address", "ipv6_address", mode="before")(_none_is(""))


_SET_BY_DOCKER = "inspect output; Docker sets it, never reads it from a request"


class EndpointSettings(ApiModel):
    """A container's configuration on one network (``NetworkingConfig.EndpointsConfig[net]``,
    ``POST /networks/{id}/connect``'s ``EndpointConfig``)."""

    ipam_config: EndpointIPAMConfig | None = Field(default=None, alias="IPAMConfig")
    links: list[str] | None = None
    aliases: list[str] | None = None
    network_id: Annotated[str | None, NoOp(_SET_BY_DOCKER)] = Field(default=None, alias="NetworkID")
    endpoint_id: Annotated[str | None, NoOp(_SET_BY_DOCKER)] = Field(default=None, alias="EndpointID")
    gateway: Annotated[str | None, NoOp(_SET_BY_DOCKER)] = None
    ip_address: Annotated[str | None, NoOp(_SET_BY_DOCKER)] = Field(default=None, alias="IPAddress")
    ip_prefix_len: Annotated[int | None, NoOp(_SET_BY_DOCKER)] = Field(default=None, alias="IPPrefixLen")
    ipv6_gateway: Annotated[str | None, NoOp(_SET_BY_DOCKER)] = Field(default=None, alias="IPv6Gateway")
    global_ipv6_address: Annotated[str | None, NoOp(_SET_BY_DOCKER)] = Field(default=None, alias="GlobalIPv6Address")
    global_ipv6_prefix_len: Annotated[int | None, NoOp(_SET_BY_DOCKER)] = Field(
        default=None, alias="GlobalIPv6PrefixLen"
    )
    mac_address: Annotated[str | None, NoOp("API 1.41 takes a container's MAC address from Config.MacAddress")] = None
    driver_opts: Annotated[dict[str, str] | None, Refused("endpoint driver options")] = None


class NetworkingConfig(ApiModel):
    endpoints_config: dict[str, EndpointSettings | None] | None = None


class CreateRequest(ContainerConfig):
    """Body of ``POST /containers/create``."""

    host_config: HostConfig = Field(default_factory=HostConfig)
    networking_config: NetworkingConfig | None = None

    @field_validator("host_config", mode="before")
    @classmethod
    def _none_host_config(cls, value: Any) -> Any:
        return {} if value is None else value

    def container_config(self) -> ContainerConfig:
        data = self.model_dump(by_alias=True, exclude={"host_config", "networking_config"})
        return ContainerConfig.model_validate(data)

    def endpoints(self) -> dict[str, EndpointSettings]:
        """``NetworkingConfig.EndpointsConfig``, null entries as empty settings."""
        found = (self.networking_config.endpoints_config if self.networking_config else None) or {}
        return {name: settings or EndpointSettings() for name, settings in found.items()}


NEVER = "0001-01-01T00:00:00Z"


class HealthLog(ApiModel):
    """One probe's result (``State.Health.Log``)."""

    start: str = NEVER
    end: str = NEVER
    exit_code: int = 0
    output: str = ""


class Health(ApiModel):
    """``State.Health``: "starting", "healthy" or "unhealthy", with the last results."""

    status: str = "starting"
    failing_streak: int = 0
    log: list[HealthLog] = Field(default_factory=list)


class ContainerState(ApiModel):
    status: str = "created"
    running: bool = False
    paused: bool = False
    restarting: bool = False
    oom_killed: bool = Field(default=False, alias="OOMKilled")
    dead: bool = False
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    started_at: str = NEVER
    finished_at: str = NEVER
    health: Health | None = None

    def api(self) -> dict[str, Any]:
        data = super().api()
        if data["Health"] is None:
            del data["Health"]  # omitempty, as in Docker: only containers with a healthcheck have it
        return data
