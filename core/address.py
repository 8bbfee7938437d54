"""Daemon addresses in docker's ``-H`` syntax: the one parser the daemon and the CLI share.

Accepted: ``unix:///abs/path`` (or just ``/abs/path``), ``tcp://host:port``,
``tcp://host`` (port 4243), ``tcp://:port`` (127.0.0.1), ``http://`` as ``tcp://``,
``[::1]:port``, and a bare ``host:port`` or ``:port``.  Anything else is refused
with docker's message, "Invalid bind address format: ...".
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from dockyard.errors import InvalidParameter

__all__ = ["DEFAULT_HOST", "DEFAULT_TCP_PORT", "Address", "parse_host"]

DEFAULT_HOST = "unix:///var/run/dockyard.sock"
DEFAULT_TCP_PORT = 4243


@dataclass(frozen=True)
class Address:
    """Where the daemon listens (or the CLI connects): a unix socket path or a TCP host and port."""

    scheme: str  # "unix" or "tcp"
    path: str = ""
    host: str = ""
    port: int = 0

    @property
    def url(self) -> str:
        """The normalised address, as shown to users."""
        if self.scheme == "unix":
            return f"unix://{self.path}"
        return f"tcp://{_bracketed(self.host)}:{self.port}"

    @property
    def socket_path(self) -> str | None:
        return self.path if self.scheme == "unix" else None

    @property
    def address(self) -> tuple[str, int] | None:
        return (self.host, self.port) if self.scheme == "tcp" else None

    @property
    def base_url(self) -> str:
        """The base URL an HTTP client uses (any host name serves over a unix socket)."""
        if self.scheme == "unix":
            return "http://localhost"
        return f"http://{_bracketed(self.host)}:{self.port}"

    def __str__(self) -> str:
        return self.url


def parse_host(value: str | None) -> Address:
    """Parse a ``-H`` value (``None`` or empty: :data:`DEFAULT_HOST`); raises :class:`InvalidParameter`."""
    text = (value or "").strip() or DEFAULT_HOST
    if text.startswith("/"):
        text = "unix://" + text
    if "://" not in text:
        text = "tcp://" + text  # docker takes a bare host:port as tcp
    scheme, _, rest = text.partition("://")
    scheme = scheme.lower()
    if scheme == "unix":
        if not rest.startswith("/"):
            raise InvalidParameter(f"Invalid bind address format: {value} (a unix socket path must be absolute)")
        return Address("unix", path=rest)
    if scheme not in ("tcp", "http"):
        raise InvalidParameter(f"Invalid bind address format: {value} (unsupported protocol {scheme!r})")
    parts = urlsplit("//" + rest)
    if parts.path not in ("", "/") or parts.query or parts.username:
        raise InvalidParameter(f"Invalid bind address format: {value}")
    try:
        port = parts.port
    except ValueError:
        raise InvalidParameter(f"Invalid bind address format: {value} (bad port)") from None
    return Address("tcp", host=parts.hostname or "127.0.0.1", port=port or DEFAULT_TCP_PORT)


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host
