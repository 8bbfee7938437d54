"""The Engine API's registry credential headers: one codec for the daemon and the CLI.

``X-Registry-Auth``
    base64url(JSON) of ``{"username", "password", "serveraddress"}`` (or
    ``{"identitytoken"}``), sent with pull, push and search; ``e30=`` (``{}``)
    when not logged in.
``X-Registry-Config``
    base64url(JSON) of ``{server: {username, password, ...}}``, sent with build
    so the daemon can pull base images from any registry the client knows.

Clients differ in padding and alphabet (docker-py pads, the docker CLI uses
the URL-safe alphabet), so decoding accepts both; what cannot be decoded
counts as no credentials, as Docker treats it.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

__all__ = ["decode", "decode_config", "encode", "encode_config"]

EMPTY = "e30="


def encode(auth: dict[str, Any]) -> str:
    """``X-Registry-Auth`` for credentials (``e30=`` for none)."""
    return _encode(auth) if auth else EMPTY


def decode(value: str | None) -> dict[str, Any]:
    """Credentials from ``X-Registry-Auth``; ``{}`` when absent or unreadable."""
    data = _decode(value)
    return data if isinstance(data, dict) else {}


def encode_config(auths: dict[str, dict[str, Any]]) -> str:
    """``X-Registry-Config`` for credentials by registry."""
    return _encode(auths)


def decode_config(value: str | None) -> dict[str, dict[str, Any]]:
    """Credentials by registry from ``X-Registry-Config``; ``{}`` when absent or unreadable."""
    data = _decode(value)
    if not isinstance(data, dict):
        return {}
    return {str(server): auth for server, auth in data.items() if isinstance(auth, dict)}


def _encode(data: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode()


def _decode(value: str | None) -> Any:
    if not value:
        return None
    padded = value.strip() + "=" * (-len(value.strip()) % 4)
    for decoder in (base64.urlsafe_b64decode, base64.b64decode):
        try:
            return json.loads(decoder(padded.encode()))
        except (binascii.Error, ValueError, UnicodeDecodeError):
            continue
    return None
