"""A small Engine API client for the dockyard CLI.

It speaks Docker Engine API v1.41 over a unix socket or TCP, with every path
prefixed by ``/v1.41``.  Failures reach the user as :class:`CliError`
subclasses, which the top-level command group prints and turns into an exit
status (never a traceback)::

    CliError                  exit 1 unless told otherwise; message printed as is
    ├── DaemonError           the daemon answered >= 400: "Error response from daemon: <message>"
    └── DaemonUnreachable     nothing listens at the address ("... Is the daemon running?")

Host strings follow docker's ``-H`` syntax, parsed by :mod:`dockyard.address`
(shared with the daemon).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import httpx

from dockyard.address import DEFAULT_HOST, Address
from dockyard.address import parse_host as parse_address
from dockyard.errors import InvalidParameter

__all__ = [
    "API_VERSION",
    "DEFAULT_HOST",
    "APIClient",
    "CliError",
    "DaemonError",
    "DaemonUnreachable",
    "Host",
    "parse_host",
    "quote_ref",
]

API_VERSION = "1.41"
USER_AGENT = "Dockyard-Client/0.1.0"

log = logging.getLogger("dockyard.cli")


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


#: a parsed ``-H`` value (the daemon's own address type: one syntax for both)
Host = Address


def parse_host(value: str | None) -> Host:
    """Parse a docker-style daemon address; raise :class:`CliError` if it is malformed."""
    try:
        return parse_address(value)
    except InvalidParameter as exc:
        raise CliError(exc.message) from None


def unreachable(host: Host, exc: BaseException) -> DaemonUnreachable:
    """The one-sentence error for a daemon we cannot reach."""
    if "Permission denied" in str(exc) or isinstance(exc.__cause__, PermissionError):
        return DaemonUnreachable(
            f"permission denied while trying to connect to the dockyard daemon socket at {host.url}"
        )
    return DaemonUnreachable(
        f"Cannot connect to the dockyard daemon at {host.url}. Is the daemon running?"
    )


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
    """Blocking Engine API client.  One instance per thread; use :meth:`clone` for more."""

    def __init__(self, host: Host) -> None:
        self.host = host
        if host.socket_path is not None:
            transport = httpx.HTTPTransport(uds=host.socket_path)
        else:
            transport = httpx.HTTPTransport()
        self._http = httpx.Client(
            transport=transport,
            base_url=host.base_url,
            # Waits, log follows and imports can take arbitrarily long.
            timeout=httpx.Timeout(None, connect=10.0),
            headers={"User-Agent": USER_AGENT},
        )

    def clone(self) -> APIClient:
        return APIClient(self.host)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> APIClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"/v{API_VERSION}{path}"

    def unreachable(self, exc: BaseException) -> DaemonUnreachable:
        return unreachable(self.host, exc)

    @staticmethod
    def check(response: httpx.Response) -> httpx.Response:
        """Raise :class:`DaemonError` for >= 400 (304 "not modified" counts as success)."""
        if response.status_code >= 400:
            raise DaemonError(response.status_code, error_message(response.read()))
        return response

    def _build(self, method: str, path: str, params, json_body, content, headers) -> httpx.Request:
        hdrs = dict(headers or {})
        if json_body is not None:
            content = json.dumps(json_body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        return self._http.build_request(
            method, self.url(path), params=_query(params), content=content, headers=hdrs
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        content: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        request = self._build(method, path, params, json_body, content, headers)
        log.debug("%s %s", method, request.url)
        try:
            response = self._http.send(request)
        except (httpx.ConnectError, httpx.ConnectTimeout, FileNotFoundError) as exc:
            raise self.unreachable(exc) from None
        except httpx.TransportError as exc:
            raise CliError(f"error during connect to {self.host.url}: {exc}") from None
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
    ) -> Iterator[httpx.Response]:
        """Send a request and yield the response once its headers have arrived."""
        request = self._build(method, path, params, json_body, content, headers)
        log.debug("%s %s (stream)", method, request.url)
        try:
            response = self._http.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout, FileNotFoundError) as exc:
            raise self.unreachable(exc) from None
        except httpx.TransportError as exc:
            raise CliError(f"error during connect to {self.host.url}: {exc}") from None
        try:
            yield self.check(response)
        finally:
            response.close()

    # -- JSON conveniences --------------------------------------------------------------------

    def get_json(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params).json()

    def post(self, path: str, body: Any = None, **params: Any) -> httpx.Response:
        return self.request("POST", path, params=params, json_body=body)

    def delete(self, path: str, **params: Any) -> httpx.Response:
        return self.request("DELETE", path, params=params)

    # -- a few typed calls shared by several commands -----------------------------------------

    def ping(self) -> httpx.Response:
        try:
            return self._http.get("/_ping")
        except (httpx.ConnectError, httpx.ConnectTimeout, FileNotFoundError) as exc:
            raise self.unreachable(exc) from None

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


def iter_json_messages(response: httpx.Response) -> Iterator[dict[str, Any]]:
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
