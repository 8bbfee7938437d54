"""Daemon settings: flags, a TOML file with the same keys, and ``-H`` addresses.

Precedence: command-line flags, then the config file, then defaults.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dockyard.errors import InvalidParameter
from dockyard.models.container import LogConfig

DEFAULT_HOST = "unix:///var/run/dockyard.sock"
DEFAULT_TCP_PORT = 4243


@dataclass(frozen=True)
class Address:
    """Where the daemon listens: a unix socket path or a TCP host and port."""

    scheme: str  # "unix" or "tcp"
    path: str = ""
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        return f"unix://{self.path}" if self.scheme == "unix" else f"tcp://{self.host}:{self.port}"


def parse_host(value: str) -> Address:
    """Parse ``-H``: ``unix:///path``, ``tcp://host:port``, ``tcp://host`` (port
    4243), ``tcp://:port`` (127.0.0.1), and the seed's bare ``host:port``/``:port``."""
    if value.startswith("unix://"):
        path = value[len("unix://"):]
        if not path.startswith("/"):
            raise InvalidParameter(f"invalid unix socket address {value!r}: the path must be absolute")
        return Address("unix", path=path)
    if value.startswith("fd://") or "://" in value and not value.startswith("tcp://"):
        raise InvalidParameter(f"invalid daemon address {value!r}: use unix:///path or tcp://host:port")
    rest = value[len("tcp://"):] if value.startswith("tcp://") else value
    rest = rest.rstrip("/")
    if rest.startswith("["):  # [::1]:port
        host, _, port_text = rest[1:].partition("]")
        port_text = port_text.lstrip(":")
    elif ":" in rest:
        host, _, port_text = rest.rpartition(":")
    else:
        host, port_text = rest, ""
    host = host or "127.0.0.1"
    if port_text == "":
        port = DEFAULT_TCP_PORT
    elif port_text.isdigit() and 0 < int(port_text) < 65536:
        port = int(port_text)
    else:
        raise InvalidParameter(f"invalid port in daemon address {value!r}")
    return Address("tcp", host=host, port=port)


class DaemonConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hosts: list[str] = Field(default_factory=lambda: [DEFAULT_HOST])
    data_root: Path = Path("/var/lib/dockyard")
    storage_driver: str | None = None
    exec_driver: str | None = None
    network_driver: str | None = None
    storage_opts: dict[str, str] = Field(default_factory=dict)
    storage_migrate: bool = False
    network_opts: dict[str, str] = Field(default_factory=dict)
    registry_opts: dict[str, str] = Field(default_factory=dict)
    insecure_registries: list[str] = Field(default_factory=list)
    debug: bool = False
    pidfile: Path | None = None
    #: the log driver and options of containers that name none (Docker's daemon.json log-driver, log-opts)
    log_driver: str = "json-file"
    log_opts: dict[str, str] = Field(default_factory=dict)

    def addresses(self) -> list[Address]:
        return [parse_host(h) for h in self.hosts]

    def distribution_options(self) -> dict[str, str]:
        """Options of the distribution driver; the seed's index URL variable is honoured."""
        options = dict(self.registry_opts)
        if self.insecure_registries:
            options["insecure-registries"] = ",".join(self.insecure_registries)
        index = os.environ.get("DOCKYARD_INDEX_URL") or os.environ.get("DOCKER_INDEX_URL")
        if index:
            options.setdefault("index-url", index)
        return options

    @field_validator("log_opts", mode="before")
    @classmethod
    def _option_values_are_text(cls, value: object) -> object:
        # TOML has numbers (max-file = 3); Docker's daemon.json wants "3": take both
        if isinstance(value, dict):
            return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}
        return value

    def log_config(self) -> LogConfig:
        return LogConfig(type=self.log_driver, config=self.log_opts)

    @property
    def pid_path(self) -> Path:
        return self.pidfile or self.data_root / "dockyard.pid"


def load(config_file: Path | None, flags: dict) -> DaemonConfig:
    """Merge a TOML file (keys as the flags, dashes or underscores) under ``flags``."""
    values: dict = {}
    if config_file is not None:
        try:
            raw = tomllib.loads(config_file.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InvalidParameter(f"cannot read config file {config_file}: {exc}") from None
        values = {k.replace("-", "_"): v for k, v in raw.items()}
        if "host" in values:
            host = values.pop("host")
            values["hosts"] = host if isinstance(host, list) else [host]
    values.update({k: v for k, v in flags.items() if v not in (None, [], {})})
    try:
        config = DaemonConfig.model_validate(values)
    except ValueError as exc:
        raise InvalidParameter(f"invalid daemon configuration: {exc}") from None
    config.addresses()  # validate early
    from dockyard import logs

    logs.settings(config.log_config())
    return config
