"""The registry server's defaults (issue 13, item 7): start-up warnings, no account enumeration by timing,
rate-limited logins, and a token realm that never comes from the request."""

from __future__ import annotations

import httpx
import pytest

from dockyard.registry.accounts import Accounts
from dockyard.registry.app import startup_warnings, token_realm
from dockyard.registry.auth import LoginLimiter
from dockyard.registry.config import RegistryConfig
from dockyard.registry.storage import FilesystemBackend

from tests.helpers.registry import USERS, make_users, start_registry


def test_exposed_without_auth_and_with_deletion_warns():
    exposed = RegistryConfig.load(None, listen="0.0.0.0:5000")
    [warning] = startup_warnings(exposed, "none")
    assert "without authentication and with deletion enabled" in warning
    assert (
        startup_warnings(RegistryConfig.model_validate({"listen": "0.0.0.0:5000", "delete_enabled": False}), "none")
        == []
    )
    assert startup_warnings(RegistryConfig.load(None, listen="127.0.0.1:5000"), "none") == []
    assert startup_warnings(RegistryConfig.load(None, listen="[::1]:5000"), "none") == []


def test_credentials_over_plain_http_warn(tmp_path):
    plain = RegistryConfig.load(None, listen="192.0.2.10:5000", auth_mode="token")
    [warning] = startup_warnings(plain, "token")
    assert "plain HTTP" in warning and "unencrypted" in warning
    (tmp_path / "c.pem").write_text("x")
    tls = RegistryConfig.load(None, listen="192.0.2.10:5000", tls_cert=tmp_path / "c.pem", tls_key=tmp_path / "c.pem")
    assert startup_warnings(tls, "token") == []


def test_realm_comes_from_the_settings():
    assert token_realm(RegistryConfig.load(None, listen="127.0.0.1:5000")) == "http://127.0.0.1:5000/token"
    assert (
        token_realm(RegistryConfig.load(None, listen="0.0.0.0:5000", realm="https://r.example/token"))
        == "https://r.example/token"
    )
    with pytest.raises(ValueError, match="never taken from a request's Host header"):
        token_realm(RegistryConfig.load(None, listen="0.0.0.0:5000"))


def test_the_host_header_does_not_move_the_realm(token_registry):
    r = httpx.get(f"{token_registry.url}/v2/", headers={"Host": "attacker.example:443"})
    assert r.status_code == 401
    assert f'realm="{token_registry.url}/token"' in r.headers["WWW-Authenticate"]
    assert "attacker" not in r.headers["WWW-Authenticate"]


def test_unknown_users_cost_one_bcrypt_check_of_the_same_cost(tmp_path, monkeypatch):
    import bcrypt

    accounts = Accounts(FilesystemBackend(tmp_path / "store"), htpasswd=make_users(tmp_path / "htpasswd"))
    accounts.add("carol", "carol-pw")
    checks: list[bytes] = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        checks.append(hashed[:7])  # "$2b$10$": algorithm and cost
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting)
    assert not accounts.verify("carol", "wrong")
    assert not accounts.verify("nobody", "wrong")
    assert not accounts.verify("", "")
    assert checks == [b"$2b$10$", b"$2b$10$", b"$2b$10$"]
    assert accounts.verify("carol", "carol-pw")


def test_limiter_counts_per_user_and_address():
    now = [1000.0]
    limiter = LoginLimiter(failures=3, window=60, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.retry_after("alice", "10.0.0.1") == 0
        limiter.failed("alice", "10.0.0.1")
    assert 59 < limiter.retry_after("alice", "10.0.0.1") <= 60
    assert limiter.retry_after("alice", "10.0.0.2") == 0  # not a lock-out of alice from everywhere
    assert limiter.retry_after("bob", "10.0.0.1") == 0
    for user in ("u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8", "u9"):
        limiter.failed(user, "10.0.0.1")
    assert limiter.retry_after("bob", "10.0.0.1") > 0  # 12 failures from one address: the address waits
    now[0] += 61
    assert limiter.retry_after("alice", "10.0.0.1") == 0 and limiter.retry_after("bob", "10.0.0.1") == 0


def test_failed_logins_are_rate_limited(tmp_path):
    users = make_users(tmp_path / "htpasswd")
    registry = start_registry(
        tmp_path / "reg",
        settings={"auth": {"mode": "token", "users": str(users), "login_failures": 3, "login_window": 300}},
    )
    try:
        token = f"{registry.url}/token"
        for _ in range(3):
            assert httpx.get(token, auth=("alice", "guess")).status_code == 401
        r = httpx.get(token, auth=("alice", USERS["alice"]))  # even the right password waits now
        assert r.status_code == 429 and r.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
        assert 0 < int(r.headers["Retry-After"]) <= 301
        assert httpx.get(f"{registry.url}/v2/", auth=("alice", USERS["alice"])).status_code == 429  # basic too
        # another client address is not affected (127.0.0.2 is loopback as well)
        with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2")) as other:
            assert other.get(token, auth=("alice", USERS["alice"])).status_code == 200
        assert httpx.get(token, auth=("bob", USERS["bob"])).status_code == 200  # nor another user
    finally:
        registry.stop()
