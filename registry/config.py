"""Registry server settings: a TOML (or JSON) file under command-line flags.

Every key is checked: an unknown key or section is an error that names it.
Example ``registry.toml`` (every section is optional)::

    listen = "127.0.0.1:5000"
    root = "/var/lib/dockyard-registry"    # local state: the token key when none is configured, the default storage
    delete_enabled = true

    [tls]
    certificate = "/etc/dockyard/registry.crt"
    key = "/etc/dockyard/registry.key"

    [auth]
    mode = "token"              # none | basic | token (token when a users file is given or accounts are open)
    users = "/etc/dockyard/registry.htpasswd"   # read-only accounts in htpasswd (bcrypt) format, optional
    admins = ["admin"]
    token_ttl = 300             # seconds
    service = "dockyard-registry"
    realm = ""                  # default: <scheme>://<listen address>/token
    secret_file = ""            # token signing key shared by replicas (hex); default <root>/token-secret
    login_failures = 5          # failed logins per user and client address ...
    login_window = 60           # ... per this many seconds, then 429

    [storage]
    driver = "s3"               # or "filesystem" (default; rootdirectory = <root>)
    bucket = "images"
    prefix = "registry"
    endpoint_url = "http://127.0.0.1:8333"
    region = "us-east-1"
    path_style = true
    access_key = "..."
    secret_key = "..."
    chunk_size = 10485760       # multipart part and upload piece size, at least 5 MiB
    create_bucket = false

    [gc]
    window = 30                 # seconds: the longest a request may take between a gc check and its write
    grace = 3600                # seconds: younger blobs, manifests and upload sessions are never collected

    [proxy]                     # a pull-through cache of another registry; pushes are refused
    remoteurl = "https://registry.example.com"
    username = ""
    password = ""

    [accounts]
    mode = "closed"             # closed | open (a login with a new name registers it)
    public_url = "https://registry.example.com"   # activation links point here
    outbox = "/var/lib/dockyard-registry/outbox"  # mail as files when no SMTP host is set
    smtp_host = ""
    smtp_port = 25
    smtp_from = "registry@example.com"
    smtp_username = ""
    smtp_password = ""
    smtp_starttls = false

    [notifications]
    queue_size = 1000           # events waiting for delivery; the oldest are dropped (and counted) beyond
    [[notifications.endpoints]]
    name = "audit"
    url = "http://127.0.0.1:9000/events"
    headers = { Authorization = "Bearer ..." }
    timeout = 5
    retries = 5
    backoff = 1                 # seconds, doubled after each failed attempt
    actions = ["push", "pull", "delete"]
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_LISTEN = "127.0.0.1:5000"
DEFAULT_ROOT = Path("/var/lib/dockyard-registry")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TlsSettings(_Section):
    certificate: Path | None = None
    key: Path | None = None


class AuthSettings(_Section):
    mode: Literal["", "none", "basic", "token"] = ""
    users: Path | None = None
    admins: list[str] = Field(default_factory=list)
    token_ttl: int = Field(300, gt=0)
    service: str = "dockyard-registry"
    realm: str = ""
    issuer: str = "dockyard-registry"
    secret_file: Path | None = None
    login_failures: int = Field(5, ge=1)
    login_window: float = Field(60.0, gt=0)


class GcSettings(_Section):
    window: float = Field(30.0, ge=0)
    grace: float = Field(3600.0, ge=0)


class ProxySettings(_Section):
    remoteurl: str
    username: str = ""
    password: str = ""

    @field_validator("remoteurl")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("remoteurl must be an http:// or https:// URL")
        return value.rstrip("/")


class AccountSettings(_Section):
    mode: Literal["closed", "open"] = "closed"
    public_url: str = ""
    outbox: Path | None = None
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_from: str = "dockyard-registry@localhost"
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False


class Endpoint(_Section):
    name: str
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: float = Field(5.0, gt=0)
    retries: int = Field(5, ge=0)
    backoff: float = Field(1.0, ge=0)
    actions: list[Literal["push", "pull", "delete", "mount"]] = Field(
        default_factory=lambda: ["push", "pull", "delete", "mount"]
    )


class NotificationSettings(_Section):
    queue_size: int = Field(1000, ge=1)
    endpoints: list[Endpoint] = Field(default_factory=list)


class RegistryConfig(_Section):
    listen: str = DEFAULT_LISTEN
    root: Path = DEFAULT_ROOT
    delete_enabled: bool = True
    tls: TlsSettings = Field(default_factory=TlsSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    storage: dict = Field(default_factory=lambda: {"driver": "filesystem"})
    gc: GcSettings = Field(default_factory=GcSettings)
    proxy: ProxySettings | None = None
    accounts: AccountSettings = Field(default_factory=AccountSettings)
    notifications: NotificationSettings = Field(default_factory=NotificationSettings)

    @model_validator(mode="after")
    def _defaults(self) -> "RegistryConfig":
        if not self.auth.mode and (self.auth.users or self.accounts.mode == "open"):
            self.auth.mode = "token"  # else the server decides: token if its account store has accounts
        if bool(self.tls.certificate) != bool(self.tls.key):
            raise ValueError("TLS needs both a certificate and a key")
        if self.accounts.mode == "open" and self.auth.mode == "none":
            raise ValueError("open accounts need authentication (auth mode basic or token)")
        return self

    # the names the server uses
    @property
    def auth_mode(self) -> str:
        """none, basic or token; empty when neither the settings nor the flags chose (see Registry)."""
        return self.auth.mode

    @property
    def tls_cert(self) -> Path | None:
        return self.tls.certificate

    @property
    def tls_key(self) -> Path | None:
        return self.tls.key

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return (host.strip("[]") or "0.0.0.0"), int(port)

    @property
    def secret_file(self) -> Path:
        return self.auth.secret_file or self.root / "token-secret"

    #: command-line flag -> (section, key)
    FLAGS: ClassVar[dict[str, tuple[str | None, str]]] = {
        "listen": (None, "listen"),
        "root": (None, "root"),
        "tls_cert": ("tls", "certificate"),
        "tls_key": ("tls", "key"),
        "auth_mode": ("auth", "mode"),
        "users": ("auth", "users"),
        "admins": ("auth", "admins"),
        "token_ttl": ("auth", "token_ttl"),
        "realm": ("auth", "realm"),
        "secret_file": ("auth", "secret_file"),
        "accounts": ("accounts", "mode"),
        "proxy_remoteurl": ("proxy", "remoteurl"),
    }

    @classmethod
    def load(cls, path: Path | None, **flags) -> "RegistryConfig":
        """Read ``path`` (TOML, or JSON by extension) and apply command-line ``flags`` over it.

        Raises ``ValueError`` naming what is wrong."""
        raw: dict = {}
        if path is not None:
            text = Path(path).read_text()
            try:
                raw = json.loads(text) if str(path).endswith(".json") else tomllib.loads(text)
            except (ValueError, tomllib.TOMLDecodeError) as exc:
                raise ValueError(f"{path}: {exc}") from None
        for key, value in flags.items():
            if value is None or value == [] or value == ():
                continue
            if key.startswith("storage_"):
                raw.setdefault("storage", {})[key.removeprefix("storage_")] = value
                continue
            if key not in cls.FLAGS:
                raise ValueError(f"unknown registry setting {key!r}")
            section, name = cls.FLAGS[key]
            target = raw if section is None else raw.setdefault(section, {})
            if key == "admins":
                value = [*target.get("admins", []), *value]
            target[name] = str(value) if isinstance(value, Path) else value
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
            )
            raise ValueError(problems) from None
