"""A small Engine API client for the dockyard CLI.

It speaks Docker Engine API v1.41 over a unix socket or TCP, with every path
prefixed by ``/v1.41``.  Failures reach the user as :class:`CliError`
subclasses, which the top-level command group prints and turns into an exit
status (never a traceback)::

    CliError                  exit 1 unless told otherwise; message printed as is
    ├── DaemonError           the daemon answered >= 400: "Error response from daemon: <message>"
    └── DaemonUnreachable     nothing listens at the address ("... Is the daemon running?")

Host strings follow docker's ``-H`` syntax, parsed by :mod:`dockyard.address`
(shared with the daemon).  TCP may use TLS as the docker CLI does
(:class:`TlsOptions`: ``--tls``, ``--tlsverify``, ``DOCKER_TLS_VERIFY``, ``DOCKER_CERT_PATH``).

The HTTP stack (:mod:`dockyard.cli.transport`) is imported when the first request
is sent, so commands that never talk to a daemon do not pay for it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from dockyard.address import DEFAULT_HOST, Address
from dockyard.address import parse_host as parse_address
from dockyard.errors import InvalidParameter

if TYPE_CHECKING:
    import ssl

    from .transport import Response

__all__ = [
    "API_VERSION",
    "DEFAULT_HOST",
    "APIClient",
    "CliError",
    "DaemonError",
    "DaemonUnreachable",
    "Host",
    "TlsOptions",
    "parse_host",
    "quote_ref",
]

API_VERSION = "1.41"
USER_AGENT = "Dockyard-Client/0.1.0"


class CliError(Exception):
    """An error meant for the user: print ``message`` to stderr, exit ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class DaemonError(CliError):
    """The daemon answered with an error status and a ``{"message": ...}`` body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Error response from daemon: {message}")
        self.status = status
        self.daemon_message = message


class DaemonUnreachable(CliError):
    """Nothing is listening at the daemon address (or we may not talk to it)."""


@dataclass(frozen=True)
class TlsOptions:
    """TLS to a TCP daemon, as the docker CLI sets it up.

    ``verify`` checks the daemon's certificate against ``cacert`` (and its name);
    ``cert``/``key`` are this client's certificate, presented when the files exist
    (a daemon started with ``--tlsverify`` requires one).  ``ssl`` is imported only
    when a TLS connection is made."""

    verify: bool = True
    cacert: str | None = None
    cert: str | None = None
    key: str | None = None

    @classmethod
    def resolve(
        cls,
        tls: bool = False,
        tlsverify: bool | None = None,
        cacert: str | None = None,
        cert: str | None = None,
        key: str | None = None,
    ) -> TlsOptions | None:
        """From flags and the environment: ``DOCKER_TLS_VERIFY`` (non-empty) means ``--tlsverify``;
        files default to ``ca.pem``, ``cert.pem`` and ``key.pem`` in ``DOCKER_CERT_PATH`` or ``~/.docker``."""
        if tlsverify is None:
            tlsverify = bool(os.environ.get("DOCKER_TLS_VERIFY"))
        if not (tls or tlsverify):
            return None
        base = Path(os.environ.get("DOCKER_CERT_PATH") or Path.home() / ".docker")

        def pick(given: str | None, name: str) -> str | None:
            if given:
                return given
            return str(base / name) if (base / name).exists() else None

        return cls(
            verify=tlsverify, cacert=pick(cacert, "ca.pem"), cert=pick(cert, "cert.pem"), key=pick(key, "key.pem")
        )

    def context(self) -> ssl.SSLContext:
        import ssl

        try:
            if self.verify:
                context = ssl.create_default_context(cafile=self.cacert)
            else:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            if self.cert and self.key:
                context.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            raise CliError(f"could not read the TLS files ({self.cacert}, {self.cert}, {self.key}): {exc}") from None
        return context


@dataclass(frozen=True)
class Host(Address):
    """A parsed ``-H`` value (the daemon's own address type: one syntax for both), and TLS for TCP."""

    tls: TlsOptions | None = None

    @property
    def base_url(self) -> str:
        url = super().base_url
        return "https://" + url.removeprefix("http://") if self.tls is not None else url


def parse_host(value: str | None, tls: TlsOptions | None = None) -> Host:
    """Parse a docker-style daemon address; raise :class:`CliError` if it is malformed."""
    try:
        address = parse_address(value)
    except InvalidParameter as exc:
        raise CliError(exc.message) from None
    return Host(address.scheme, address.path, address.host, address.port, tls if address.scheme == "tcp" else None)


def unreachable(host: Host, exc: BaseException) -> DaemonUnreachable:
    """The one-sentence error for a daemon we cannot reach."""
    if isinstance(exc, PermissionError) or isinstance(getattr(exc, "cause", None), PermissionError):
        return DaemonUnreachable(
            f"permission denied while trying to connect to the dockyard daemon socket at {host.url}"
        )
    return DaemonUnreachable(f"Cannot connect to the dockyard daemon at {host.url}. Is the daemon running?")


def quote_ref(name: str) -> str:
    """Quote a container or image reference for a URL path (keeps '/', ':' and '@')."""
    return quote(name, safe="/:@")


def _query(params: Mapping[str, Any] | None) -> dict[str, str | list[str]] | None:
    """Docker query conventions.

    Booleans become ``1``, unset values (None/False) are dropped, dicts (``filters``)
    are sent as JSON and lists as repeated parameters (``changes``).
    """
    if not params:
        return None
    out: dict[str, str | list[str]] = {}
    for key, value in params.items():
        if value is None or value is False:
            continue
        if value is True:
            out[key] = "1"
        elif isinstance(value, dict):
            out[key] = json.dumps(value, separators=(",", ":"))
        elif isinstance(value, (list, tuple)):
            if value:
                out[key] = [str(v) for v in value]
        else:
            out[key] = str(value)
    return out


def error_message(body: bytes) -> str:
    """Extract ``message`` from a daemon error body, falling back to the raw text."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return data["message"]
    return text


class APIClient:
    """Blocking Engine API client.  Safe to share between threads: every request
    has a connection of its own (:meth:`clone` is kept for callers that want a
    client per thread)."""

    def __init__(self, host: Host, *, log_requests: bool = False) -> None:
        self.host = host
        #: log each request to the ``dockyard.cli`` logger (``--log-level debug``); logging is
        #: imported only then
        self.log_requests = log_requests

    def clone(self) -> APIClient:
        return APIClient(self.host, log_requests=self.log_requests)

    def close(self) -> None:
        """Nothing is held between requests; kept so a client can be a context manager."""

    def __enter__(self) -> APIClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------

    def url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        """The request target: ``/v1.41{path}`` plus the encoded query."""
        query = _query(params)
        target = f"/v{API_VERSION}{path}"
        if query:
            target += ("&" if "?" in path else "?") + urlencode(query, doseq=True)
        return target

    def unreachable(self, exc: BaseException) -> DaemonUnreachable:
        return unreachable(self.host, exc)

    @staticmethod
    def check(response: Response) -> Response:
        """Raise :class:`DaemonError` for >= 400 (304 "not modified" counts as success)."""
        if response.status_code >= 400:
            raise DaemonError(response.status_code, error_message(response.read()))
        return response

    def _send(
        self, method: str, target: str, json_body: Any, content: Any, headers: Mapping[str, str] | None
    ) -> Response:
        from . import transport

        hdrs = {"User-Agent": USER_AGENT, **(headers or {})}
        if json_body is not None:
            content = json.dumps(json_body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        elif isinstance(content, str):
            content = content.encode()
        if self.log_requests:
            import logging

            logging.getLogger("dockyard.cli").debug("%s %s", method, target)
        try:
            return transport.send(self.host, method, target, headers=hdrs, body=content)
        except transport.ConnectFailed as exc:
            raise self.unreachable(exc.cause) from None

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        content: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Send a request and read the whole answer."""
        response = self._send(method, self.url(path, params), json_body, content, headers)
        try:
            response.read()
        finally:
            response.close()
        return self.check(response)

    @contextmanager
    def stream(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        content: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Iterator[Response]:
        """Send a request and yield the response once its headers have arrived."""
        response = self._send(method, self.url(path, params), json_body, content, headers)
        try:
            yield self.check(response)
        finally:
            response.close()

    # -- JSON conveniences --------------------------------------------------------------------

    def get_json(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params).json()

    def post(self, path: str, body: Any = None, **params: Any) -> Response:
        return self.request("POST", path, params=params, json_body=body)

    def delete(self, path: str, **params: Any) -> Response:
        return self.request("DELETE", path, params=params)

    # -- a few typed calls shared by several commands -----------------------------------------

    def inspect_container(self, ref: str) -> dict[str, Any]:
        return self.get_json(f"/containers/{quote_ref(ref)}/json")

    def inspect_image(self, ref: str) -> dict[str, Any]:
        return self.get_json(f"/images/{quote_ref(ref)}/json")

    def wait(self, container_id: str, condition: str | None = None) -> dict[str, Any]:
        response = self.post(f"/containers/{quote_ref(container_id)}/wait", condition=condition)
        return parse_wait(response.content)


def parse_wait(body: bytes) -> dict[str, Any]:
    """Parse a wait answer; tolerate surrounding whitespace and several JSON lines."""
    lines = [line for line in body.decode("utf-8", "replace").splitlines() if line.strip()]
    if not lines:
        raise CliError("Error waiting for container: empty response from daemon")
    return json.loads(lines[-1])


def iter_json_messages(response: Response) -> Iterator[dict[str, Any]]:
    """Yield the objects of a JSON-message stream (``\\r\\n``- or ``\\n``-terminated)."""
    decoder = json.JSONDecoder()
    buffer = ""
    for chunk in response.iter_text():
        buffer += chunk
        while True:
            stripped = buffer.lstrip()
            if not stripped:
                buffer = ""
                break
            try:
                obj, end = decoder.raw_decode(stripped)
            except ValueError:
                buffer = stripped
                break
            buffer = stripped[end:]
            yield obj
    if buffer.strip():
        raise CliError(f"invalid JSON in daemon response: {buffer.strip()[:200]}")
