"""X-Registry-Auth and X-Registry-Config, as the docker CLI and docker-py send them."""

from __future__ import annotations

import base64
import json

from dockyard import auth_header


def test_round_trip_and_empty():
    header = auth_header.encode({"username": "u", "password": "p", "serveraddress": "h:1"})
    assert auth_header.decode(header) == {"username": "u", "password": "p", "serveraddress": "h:1"}
    assert auth_header.encode({}) == "e30="
    assert auth_header.decode("e30=") == {} and auth_header.decode(None) == {} and auth_header.decode("") == {}


def test_decodes_both_alphabets_with_or_without_padding():
    auth = {"username": "h4user", "password": "h4pass?>>", "serveraddress": "127.0.0.1:5080"}
    raw = json.dumps(auth).encode()
    for encoded in (base64.urlsafe_b64encode(raw).decode(), base64.b64encode(raw).decode()):
        assert auth_header.decode(encoded) == auth
        assert auth_header.decode(encoded.rstrip("=")) == auth


def test_unreadable_headers_are_no_credentials():
    assert auth_header.decode("!!") == {}
    assert auth_header.decode(base64.b64encode(b"[1, 2]").decode()) == {}  # JSON, but not an object
    assert auth_header.decode_config("not base64 at all") == {}


def test_config_keeps_only_credential_objects():
    value = auth_header.encode_config({"reg:5000": {"username": "a", "password": "b"}})
    assert auth_header.decode_config(value) == {"reg:5000": {"username": "a", "password": "b"}}
    junk = base64.urlsafe_b64encode(json.dumps({"reg": "nope", "ok": {"username": "x"}}).encode()).decode()
    assert auth_header.decode_config(junk) == {"ok": {"username": "x"}}
