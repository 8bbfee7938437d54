"""Typed values that cross the boundary between the core and its drivers.

These are not Engine API shapes (those live in :mod:`dockyard.models.container`
and :mod:`dockyard.models.image`); they are what the core hands a driver after it
has resolved names, users and paths, so drivers never parse API requests.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Oci(BaseModel):
    """A value shaped like its OCI runtime-spec counterpart: ``model_dump(by_alias=True,
    exclude_none=True)`` is the runtime-spec JSON (camelCase names)."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)


class Resources(_Frozen):
    """Cgroup limits; 0 means unlimited / default."""

    memory: int = 0
    memory_swap: int = 0
    cpu_shares: int = 0
    cpuset_cpus: str = ""
    pids_limit: int = 0


SeccompAction = Literal[
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
]
SeccompOperator = Literal[
    "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"
]


class SeccompArg(_Oci):
    """One argument comparison (runtime-spec ``LinuxSeccompArg``).

    For ``SCMP_CMP_MASKED_EQ`` the test is ``(arg & value) == value_two``, as in
    libseccomp's ``SCMP_CMP(index, SCMP_CMP_MASKED_EQ, mask, datum)``."""

    index: int = Field(ge=0, le=5)
    value: int = Field(ge=0, lt=1 << 64)
    value_two: int = Field(default=0, ge=0, lt=1 << 64)
    op: SeccompOperator


class SeccompSyscall(_Oci):
    """One rule (runtime-spec ``LinuxSyscall``): every comparison in ``args`` must hold."""

    names: list[str]
    action: SeccompAction
    errno_ret: int | None = None
    args: list[SeccompArg] = Field(default_factory=list)


class Seccomp(_Oci):
    """A resolved seccomp filter (runtime-spec ``LinuxSeccomp``): architecture,
    capability and kernel conditions of the profile it came from are already applied."""

    default_action: SeccompAction
    default_errno_ret: int | None = None
    #: libseccomp names (SCMP_ARCH_X86_64, ...); empty = the native architecture only
    architectures: list[str] = Field(default_factory=list)
    flags: list[str] = Field(default_factory=list)
    syscalls: list[SeccompSyscall] = Field(default_factory=list)


class Device(_Frozen):
    """A host device node made available in the container (``--device``, ``--privileged``)."""

    path_on_host: str
    path_in_container: str
    type: Literal["c", "b"]
    major: int
    minor: int
    file_mode: int = 0o666
    uid: int = 0
    gid: int = 0


class DeviceRule(_Frozen):
    """One device-cgroup rule; ``None`` major/minor means every number (``*``)."""

    allow: bool
    type: Literal["a", "c", "b"] = "a"
    major: int | None = None
    minor: int | None = None
    access: str = "rwm"

    def __str__(self) -> str:
        if self.type == "a":
            return "a"
        major = "*" if self.major is None else self.major
        minor = "*" if self.minor is None else self.minor
        return f"{self.type} {major}:{minor} {self.access}"


def _default_confinement() -> "Confinement":
    # deferred: dockyard.confinement builds on these models
    from dockyard.confinement import default_confinement

    return default_confinement()


class Confinement(_Frozen):
    """How a container is confined, decided once by the core
    (:func:`dockyard.confinement.resolve`) so every exec driver applies the same.

    Capabilities are the bounding, permitted and effective sets of the
    container's processes (``docker exec`` ones included); a process whose user
    is not root keeps none effective, as under Docker.  ``seccomp`` None means
    unconfined.  Masked paths hide what is there (a directory gets an empty
    read-only tmpfs, anything else ``/dev/null``); read-only paths are remounted
    read-only; both are skipped where the path does not exist.  ``privileged``
    additionally mounts /sys and the cgroup file system read-write; everything
    else it means is already spelled out in the other fields.
    """

    privileged: bool = False
    #: CAP_* names, kernel order
    capabilities: list[str] = Field(default_factory=list)
    no_new_privileges: bool = False
    seccomp: Seccomp | None = None
    #: AppArmor profile to run under; "" = the host has no AppArmor (nothing to apply)
    apparmor_profile: str = ""
    masked_paths: list[str] = Field(default_factory=list)
    readonly_paths: list[str] = Field(default_factory=list)
    readonly_rootfs: bool = False
    #: device nodes to create in the container's /dev, besides the standard ones
    devices: list[Device] = Field(default_factory=list)
    #: device cgroup rules, in order (the first is normally "deny everything")
    device_rules: list[DeviceRule] = Field(default_factory=list)
    #: namespaced kernel parameters to set in the container (``--sysctl``)
    sysctls: dict[str, str] = Field(default_factory=dict)


class RuntimeSpec(_Frozen):
    """Everything an exec driver needs to run a container's main process.

    The core has already mounted ``rootfs``, resolved ``user`` to numeric ids,
    checked that ``args[0]`` resolves inside the rootfs, created ``cwd`` and
    prepared the network namespace at ``netns``.
    """

    container_id: str
    rootfs: Path
    args: list[str]
    env: list[str] = Field(default_factory=list)
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    additional_gids: list[int] = Field(default_factory=list)
    hostname: str = ""
    tty: bool = False
    open_stdin: bool = False
    #: close the process's stdin when the first attached client half-closes
    stdin_once: bool = False
    #: path of a network namespace to join (bind-mount path); None = the host's
    netns: Path | None = None
    #: where the driver writes the log: Docker json-file lines ({"log","stream","time"}) or CRI
    #: lines (``<time> <stream> <F|P> <text>``), the two formats :mod:`dockyard.logs` reads; None: no
    #: log at all (``--log-driver none``)
    log_path: Path | None
    stop_signal: int = 15
    resources: Resources = Field(default_factory=Resources)
    #: extra bind mounts, in the order to mount them: (host path, container path, read_only).  The core has
    #: created each container path and resolved its symlinks inside the rootfs: a driver mounts there as is,
    #: refusing symlinks on the way (never ``create=``)
    binds: list[tuple[Path, str, bool]] = Field(default_factory=list)
    #: capabilities, seccomp, masked paths...: Docker's defaults unless the core says otherwise
    confinement: Confinement = Field(default_factory=_default_confinement)
    #: which of the driver's runtimes runs it (``docker run --runtime``); "" = the driver's default
    runtime: str = ""


class Runtimes(_Frozen):
    """The runtimes an exec driver offers (``docker info``'s ``Runtimes``, ``docker run --runtime``)."""

    default: str
    #: runtime name -> path of its program
    paths: dict[str, str]


class ProcessSpec(_Frozen):
    """A second process in a running container (``docker exec``), resolved by the core."""

    args: list[str]
    env: list[str] = Field(default_factory=list)
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    additional_gids: list[int] = Field(default_factory=list)
    tty: bool = False
    stdin: bool = False


class ProcessState(_Frozen):
    """What an exec driver knows about a container's main process."""

    status: Literal["created", "running", "paused", "exited"]
    pid: int = 0
    exit_code: int | None = None
    oom_killed: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None


class ExitStatus(_Frozen):
    exit_code: int
    oom_killed: bool = False
    finished_at: datetime


class Change(_Frozen):
    """One line of ``docker diff``: kind 0 = modified (C), 1 = added (A), 2 = deleted (D)."""

    path: str
    kind: Literal[0, 1, 2]


class EndpointRequest(_Frozen):
    """A container's wishes on one network, from ``NetworkingConfig.EndpointsConfig`` (create) or
    ``EndpointConfig`` (network connect), checked by the core.

    .. versionadded:: 0.3
    """

    aliases: list[str] = Field(default_factory=list)
    #: a fixed address in the network's subnet (``--ip``); "" = the driver allocates one
    ipv4_address: str = ""
    #: a fixed IPv6 address (``--ip6``); "" = allocated when the network has IPv6
    ipv6_address: str = ""
    #: extra link-local addresses on the interface (``--link-local-ip``)
    link_local_ips: list[str] = Field(default_factory=list)
    #: the interface's MAC address (``--mac-address``); "" = the driver's choice
    mac_address: str = ""


class NetworkRequest(_Frozen):
    """What the core asks of a network driver for one container."""

    container_id: str
    #: HostConfig.NetworkMode: "default", "bridge", "none", "host", "container:<id>", or a network name
    mode: str = "none"
    hostname: str = ""
    name: str = ""
    #: HostConfig.PortBindings: {"6379/tcp": [{"HostIp": "", "HostPort": ""}]}
    port_bindings: dict = Field(default_factory=dict)
    #: Config.ExposedPorts keys ("80/tcp"), for -P (publish_all)
    exposed_ports: list[str] = Field(default_factory=list)
    publish_all: bool = False
    aliases: list[str] = Field(default_factory=list)
    #: for mode "container:<id>": that container's netns path, resolved by the core
    shared_netns: Path | None = None
    #: HostConfig.Dns: where a driver-provided resolver forwards names it does not know
    dns: list[str] = Field(default_factory=list)
    #: addresses and MAC on the network of ``mode`` (``aliases`` above are also here)
    endpoint: EndpointRequest = Field(default_factory=EndpointRequest)


class NetworkAttachment(_Frozen):
    """What a network driver returns: where the container's netns is and what to report."""

    #: bind-mounted netns path to join; None = share the host's network
    netns: Path | None
    #: Engine API NetworkSettings fields for inspect (IPAddress, Gateway, ...)
    settings: dict = Field(default_factory=dict)
    #: nameservers the driver provides (an embedded resolver): resolv.conf lists these
    #: instead of the host's or --dns; empty = no resolver of the driver's
    dns: list[str] = Field(default_factory=list)
