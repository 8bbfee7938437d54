"""Daemon settings: flags and a TOML file with the same keys (``-H`` addresses: :mod:`dockyard.address`).

Precedence: command-line flags, then the config file, then defaults.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dockyard.address import DEFAULT_HOST, Address, parse_host
from dockyard.errors import InvalidParameter
from dockyard.models.container import LogConfig

if TYPE_CHECKING:
    from dockyard.daemon.tls import TlsSettings


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
    exec_opts: dict[str, str] = Field(default_factory=dict)
    #: the exec driver's default runtime (``--runtime``; oci: runc or crun)
    runtime: str | None = None
    #: more runtimes, NAME=PATH (``--add-runtime``, Docker's ``runtimes``)
    add_runtimes: list[str] = Field(default_factory=list)
    registry_opts: dict[str, str] = Field(default_factory=dict)
    insecure_registries: list[str] = Field(default_factory=list)
    registry_mirrors: list[str] = Field(default_factory=list)
    #: layers pulled and pushed at a time (dockerd's ``max-concurrent-downloads`` / ``-uploads``: 3 and 5)
    max_concurrent_downloads: int | None = Field(default=None, ge=1)
    max_concurrent_uploads: int | None = Field(default=None, ge=1)
    #: settings for observer plugins (``--observer-opt KEY=VALUE``), handed to them by ``daemon_configured``
    observer_opts: dict[str, str] = Field(default_factory=dict)
    debug: bool = False
    pidfile: Path | None = None
    #: the log driver and options of containers that name none (Docker's daemon.json log-driver, log-opts)
    log_driver: str = "json-file"
    log_opts: dict[str, str] = Field(default_factory=dict)
    #: a seccomp profile (Docker's JSON format) replacing the default one
    seccomp_profile: Path | None = None
    #: containers get no-new-privileges unless they say otherwise
    no_new_privileges: bool = False
    #: TLS on TCP listeners (see dockyard.daemon.tls); tlsverify implies tls
    tls: bool = False
    tlsverify: bool = False
    tlscacert: Path | None = None
    tlscert: Path | None = None
    tlskey: Path | None = None
    #: the one Origin (or "*") browsers may send requests from; "" refuses them all
    api_cors_header: str = ""
    #: serve the web UI at /ui/ (dockyard.daemon.ui); on a unix socket, reach it with ``dockyard ui``
    ui: bool = False
    #: where the UI's JavaScript libraries were installed by npm [default: <prefix>/share/dockyard/ui/node_modules]
    ui_vendor: Path | None = None

    def tls_settings(self) -> "TlsSettings":
        from dockyard.daemon.tls import TlsSettings

        return TlsSettings(
            enabled=self.tls or self.tlsverify,
            verify=self.tlsverify,
            cacert=self.tlscacert,
            cert=self.tlscert,
            key=self.tlskey,
        )

    def addresses(self) -> list[Address]:
        return [parse_host(h) for h in self.hosts]

    def exec_options(self) -> dict[str, str]:
        """Options of the exec driver: ``--exec-opt`` plus ``--runtime`` and ``--add-runtime``."""
        options = dict(self.exec_opts)
        if self.runtime:
            options["runtime"] = self.runtime
        if self.add_runtimes:
            for item in self.add_runtimes:
                name, sep, path = item.partition("=")
                if not sep or not name or not path:
                    raise InvalidParameter(f"invalid --add-runtime {item!r}: expected NAME=PATH")
            options["runtimes"] = ",".join([*filter(None, [options.get("runtimes", "")]), *self.add_runtimes])
        return options

    def distribution_options(self) -> dict[str, str]:
        """Options of the distribution driver; Docker 0.x's ``DOCKER_INDEX_URL`` is honoured too."""
        options = dict(self.registry_opts)
        if self.insecure_registries:
            options["insecure-registries"] = ",".join(self.insecure_registries)
        if self.registry_mirrors:
            options["registry-mirrors"] = ",".join(self.registry_mirrors)
        if self.max_concurrent_downloads is not None:
            options["max-concurrent-downloads"] = str(self.max_concurrent_downloads)
        if self.max_concurrent_uploads is not None:
            options["max-concurrent-uploads"] = str(self.max_concurrent_uploads)
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
