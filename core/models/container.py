"""Engine API container shapes (v1.41), named exactly as the API names them.

Python attributes are snake_case; aliases carry the API's JSON names, and every
model serialises ``by_alias``.  Fields dockyard does not act on yet are kept
(``extra="allow"``) so a request round-trips into inspect unchanged, as Docker's
does.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_pascal


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_pascal, populate_by_name=True, extra="allow")

    def api(self) -> dict[str, Any]:
        """The JSON-ready dict with the API's field names."""
        return self.model_dump(mode="json", by_alias=True)


class RestartPolicy(ApiModel):
    name: str = ""
    maximum_retry_count: int = 0


class LogConfig(ApiModel):
    #: "" (what the docker CLI sends without --log-driver) is the daemon's default, filled in at create
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


class HostConfig(ApiModel):
    binds: list[str] | None = None
    volumes_from: list[str] | None = None
    network_mode: str = "default"
    port_bindings: dict[str, Any] | None = Field(default_factory=dict)
    publish_all_ports: bool = False
    restart_policy: RestartPolicy = Field(default_factory=RestartPolicy)
    auto_remove: bool = False
    log_config: LogConfig = Field(default_factory=LogConfig)
    privileged: bool = False
    readonly_rootfs: bool = False
    memory: int = 0
    memory_swap: int = 0
    cpu_shares: int = 0
    cpuset_cpus: str = ""
    pids_limit: int | None = None
    dns: list[str] | None = Field(default_factory=list)
    extra_hosts: list[str] | None = None
    # confinement (see dockyard.confinement)
    cap_add: list[str] | None = None
    cap_drop: list[str] | None = None
    #: replaces the default capability set (API >= 1.40)
    capabilities: list[str] | None = None
    security_opt: list[str] | None = None
    devices: list[dict[str, Any]] | None = None
    device_cgroup_rules: list[str] | None = None
    sysctls: dict[str, str] | None = None
    userns_mode: str = ""
    #: None = Docker's defaults; [] = none (``--security-opt systempaths=unconfined``)
    masked_paths: list[str] | None = None
    readonly_paths: list[str] | None = None
    #: which of the exec driver's runtimes runs the container; "" = the default (filled in at create)
    runtime: str = ""

    @field_validator("runtime", mode="before")
    @classmethod
    def _none_runtime(cls, value: Any) -> Any:
        return value or ""

    @field_validator("log_config", "restart_policy", mode="before")
    @classmethod
    def _none_is_default(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("userns_mode", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return "" if value is None else value


class ContainerConfig(ApiModel):
    """``Config`` of a container (and of an image, which uses the same shape)."""

    hostname: str = ""
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
    image: str = ""
    volumes: dict[str, Any] | None = None
    working_dir: str = ""
    entrypoint: list[str] | None = None
    on_build: list[str] | None = Field(default=None, alias="OnBuild")
    labels: dict[str, str] | None = None
    stop_signal: str | None = None

    @field_validator("cmd", "entrypoint", mode="before")
    @classmethod
    def _string_is_shell_form(cls, value: Any) -> Any:
        # the API accepts a bare string for Cmd/Entrypoint (docker-py sends one)
        if isinstance(value, str):
            return ["/bin/sh", "-c", value]
        return value


class CreateRequest(ContainerConfig):
    """Body of ``POST /containers/create``."""

    host_config: HostConfig = Field(default_factory=HostConfig)
    networking_config: dict[str, Any] | None = None

    @field_validator("host_config", mode="before")
    @classmethod
    def _none_host_config(cls, value: Any) -> Any:
        return {} if value is None else value

    def container_config(self) -> ContainerConfig:
        data = self.model_dump(by_alias=True, exclude={"host_config", "networking_config"})
        return ContainerConfig.model_validate(data)


NEVER = "0001-01-01T00:00:00Z"


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
