"""Registry server settings: a TOML (or JSON) file under command-line flags.

Example ``registry.toml``::

    listen = "127.0.0.1:5000"
    root = "/var/lib/dockyard-registry"
    delete_enabled = true

    [tls]
    certificate = "/etc/dockyard/registry.crt"
    key = "/etc/dockyard/registry.key"

    [auth]
    mode = "token"              # none | basic | token (token when a users file is given)
    users = "/etc/dockyard/registry.htpasswd"
    admins = ["admin"]
    token_ttl = 300             # seconds
    service = "dockyard-registry"
    realm = ""                  # default: <scheme>://<host the client used>/token

    [storage]
    driver = "filesystem"       # or "s3"
    # bucket = "images"  prefix = "registry"  endpoint_url = "http://127.0.0.1:9000"
    # region = "us-east-1"  access_key = "..."  secret_key = "..."  create_bucket = false
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_LISTEN = "127.0.0.1:5000"
DEFAULT_ROOT = Path("/var/lib/dockyard-registry")


@dataclass
class RegistryConfig:
    listen: str = DEFAULT_LISTEN
    root: Path = DEFAULT_ROOT
    delete_enabled: bool = True
    tls_cert: Path | None = None
    tls_key: Path | None = None
    auth_mode: str = "none"
    users: Path | None = None
    admins: list[str] = field(default_factory=list)
    token_ttl: int = 300
    service: str = "dockyard-registry"
    realm: str = ""
    issuer: str = "dockyard-registry"
    storage: dict = field(default_factory=lambda: {"driver": "filesystem"})

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return (host.strip("[]") or "0.0.0.0"), int(port)

    @classmethod
    def load(cls, path: Path | None, **flags) -> "RegistryConfig":
        raw: dict = {}
        if path is not None:
            text = Path(path).read_text()
            raw = json.loads(text) if str(path).endswith(".json") else tomllib.loads(text)
        cfg = cls()
        cfg.listen = str(raw.get("listen", cfg.listen))
        cfg.root = Path(raw.get("root", cfg.root))
        cfg.delete_enabled = bool(raw.get("delete_enabled", cfg.delete_enabled))
        tls = raw.get("tls", {})
        cfg.tls_cert = Path(tls["certificate"]) if tls.get("certificate") else None
        cfg.tls_key = Path(tls["key"]) if tls.get("key") else None
        auth = raw.get("auth", {})
        cfg.users = Path(auth["users"]) if auth.get("users") else None
        cfg.admins = list(auth.get("admins", []))
        cfg.token_ttl = int(auth.get("token_ttl", cfg.token_ttl))
        cfg.service = auth.get("service", cfg.service)
        cfg.realm = auth.get("realm", cfg.realm)
        cfg.issuer = auth.get("issuer", cfg.issuer)
        cfg.auth_mode = auth.get("mode", "")
        cfg.storage = dict(raw.get("storage", cfg.storage))
        for key, value in flags.items():
            if value is None or value == [] or value == ():
                continue
            if key in ("root", "users", "tls_cert", "tls_key"):
                value = Path(value)
            if key == "admins":
                value = [*cfg.admins, *value]
            if key.startswith("storage_"):
                cfg.storage[key.removeprefix("storage_")] = value
                continue
            setattr(cfg, key, value)
        if not cfg.auth_mode:
            cfg.auth_mode = "token" if cfg.users else "none"
        if cfg.auth_mode not in ("none", "basic", "token"):
            raise ValueError(f"auth mode must be none, basic or token, not {cfg.auth_mode!r}")
        if cfg.auth_mode != "none" and cfg.users is None:
            cfg.users = cfg.root / "htpasswd"
        if bool(cfg.tls_cert) != bool(cfg.tls_key):
            raise ValueError("TLS needs both a certificate and a key")
        return cfg
