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


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Resources(_Frozen):
    """Cgroup limits; 0 means unlimited / default."""

    memory: int = 0
    memory_swap: int = 0
    cpu_shares: int = 0
    cpuset_cpus: str = ""
    pids_limit: int = 0


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
    #: where the driver writes the process's output as a json-file log (format, file names and
    #: rotation: :mod:`dockyard.jsonfile`); None: no log (``--log-driver none``)
    log_path: Path | None
    #: rotate the log before it would grow past this many bytes (0: never)
    log_max_size: int = 0
    #: how many log files to keep, the one being written included (``LOG``, ``LOG.1``, ...)
    log_max_files: int = 1
    stop_signal: int = 15
    resources: Resources = Field(default_factory=Resources)
    #: extra read-only/read-write bind mounts: (host path, container path, read_only)
    binds: list[tuple[Path, str, bool]] = Field(default_factory=list)


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


class NetworkAttachment(_Frozen):
    """What a network driver returns: where the container's netns is and what to report."""

    #: bind-mounted netns path to join; None = share the host's network
    netns: Path | None
    #: Engine API NetworkSettings fields for inspect (IPAddress, Gateway, ...)
    settings: dict = Field(default_factory=dict)
    #: nameservers the driver provides (an embedded resolver): resolv.conf lists these
    #: instead of the host's or --dns; empty = no resolver of the driver's
    dns: list[str] = Field(default_factory=list)
