"""Accounts, tokens and permissions of the registry.

Accounts
    :mod:`.accounts` keeps them (in the storage backend); an htpasswd file with
    bcrypt hashes (``user:$2y$...``, the format Debian's ``docker-registry`` and
    ``htpasswd -B`` use) is read too (:class:`Users`).  Administrators are
    listed in the config (``admins``), flagged in the store, or listed in an
    ``<users file>.admins`` file beside the htpasswd file (one name per line).

Tokens (``mode = "token"``), as Docker does it
    the registry answers an unauthenticated request with
    ``WWW-Authenticate: Bearer realm="<realm>",service="<service>",scope="repository:<name>:<actions>"``;
    the client asks ``GET <realm>?service=&scope=`` (with basic credentials, or
    anonymously) and gets a short-lived signed token (a JWT, HS256, whose
    ``access`` claim lists what was granted); the registry checks the
    signature, the audience, the expiry and the access list on every request.

Permissions
    anyone may pull public repositories; a user may push (and delete) only
    ``<user>/*``, once the account is active; top-level names and other
    namespaces are for administrators; a private repository is readable only by
    its owner and administrators.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

PULL, PUSH, DELETE = "pull", "push", "delete"


# -- accounts ---------------------------------------------------------------------------------------


def hash_password(password: str, rounds: int = 10) -> str:
    import bcrypt

    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()


def add_user(users_file: Path, username: str, password: str, admin: bool = False, rounds: int = 10) -> None:
    """Add or replace an account in an htpasswd file (created 0600)."""
    if not username or ":" in username or "/" in username or username != username.lower():
        raise ValueError("a user name must be lower case and contain neither ':' nor '/'")
    users_file = Path(users_file)
    users_file.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    if users_file.exists():
        lines = [
            line for line in users_file.read_text().splitlines() if line.strip() and line.split(":", 1)[0] != username
        ]
    lines.append(f"{username}:{hash_password(password, rounds)}")
    tmp = users_file.with_name(f".{users_file.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, users_file)
    admins_file = users_file.with_name(users_file.name + ".admins")
    admins = set(admins_file.read_text().split()) if admins_file.exists() else set()
    if admin and username not in admins:
        admins.add(username)
        admins_file.write_text("\n".join(sorted(admins)) + "\n")
    elif not admin and username in admins:
        admins.discard(username)
        admins_file.write_text("\n".join(sorted(admins)) + "\n")


class Users:
    """The accounts of an htpasswd file (reloaded when it changes); :class:`.accounts.Accounts` verifies them."""

    def __init__(self, users_file: Path | None, admins: list[str] = ()) -> None:
        self.path = Path(users_file) if users_file else None
        self.config_admins = set(admins)
        self._hashes: dict[str, bytes] = {}
        self._admins: set[str] = set()
        self._stamp: tuple = ()
        self._lock = threading.Lock()
        self._reload()

    def _reload(self) -> None:
        if self.path is None:
            return
        admins_path = self.path.with_name(self.path.name + ".admins")
        try:
            stamp = (self.path.stat().st_mtime_ns, admins_path.stat().st_mtime_ns if admins_path.exists() else 0)
        except FileNotFoundError:
            stamp = (0, 0)
        if stamp == self._stamp:
            return
        hashes = {}
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                if ":" in line and not line.startswith("#"):
                    user, hashed = line.split(":", 1)
                    hashes[user.strip()] = hashed.strip().encode()
        admins = set(admins_path.read_text().split()) if admins_path.exists() else set()
        with self._lock:
            self._hashes, self._admins, self._stamp = hashes, admins, stamp

    def exists(self, user: str) -> bool:
        self._reload()
        return user in self._hashes

    def hash_of(self, user: str) -> str:
        self._reload()
        return self._hashes[user].decode()

    def names(self) -> list[str]:
        self._reload()
        return sorted(self._hashes)

    def is_admin(self, user: str | None) -> bool:
        self._reload()
        return bool(user) and (user in self.config_admins or user in self._admins)


def parse_basic(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=False).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


# -- tokens -----------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenError(Exception):
    pass


class Tokens:
    """HS256 JSON web tokens signed with a secret kept in the registry's state directory."""

    def __init__(self, secret: bytes, issuer: str, service: str, ttl: int) -> None:
        self.secret = secret
        self.issuer = issuer
        self.service = service
        self.ttl = ttl
        self.kid = hashlib.sha256(secret).hexdigest()[:16]

    @staticmethod
    def load_secret(path: Path) -> bytes:
        path = Path(path)
        if path.exists():
            return bytes.fromhex(path.read_text().strip())
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secret.hex())
        return secret

    def issue(self, subject: str, access: list[dict], now: float | None = None) -> tuple[str, dict]:
        now = int(now if now is not None else time.time())
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "iat": now,
            "nbf": now - 1,
            "exp": now + self.ttl,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        header = {"alg": "HS256", "typ": "JWT", "kid": self.kid}
        signing_input = (
            f"{_b64(json.dumps(header, separators=(',', ':')).encode())}."
            f"{_b64(json.dumps(claims, separators=(',', ':')).encode())}"
        )
        signature = hmac.new(self.secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(signature)}", claims

    def verify(self, token: str, now: float | None = None) -> dict:
        try:
            head, body, signature = token.split(".")
            header = json.loads(_unb64(head))
            claims = json.loads(_unb64(body))
            given = _unb64(signature)
        except (ValueError, binascii.Error):
            raise TokenError("malformed token") from None
        if header.get("alg") != "HS256":
            raise TokenError("unsupported token algorithm")
        expected = hmac.new(self.secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, given):
            raise TokenError("invalid token signature")
        now = now if now is not None else time.time()
        if claims.get("aud") != self.service:
            raise TokenError("token audience mismatch")
        if claims.get("iss") != self.issuer:
            raise TokenError("token issuer mismatch")
        if now >= float(claims.get("exp", 0)):
            raise TokenError("token expired")
        if now < float(claims.get("nbf", 0)) - 60:
            raise TokenError("token not yet valid")
        return claims


def parse_scope(scope: str) -> tuple[str, str, list[str]] | None:
    """``repository:name:pull,push`` -> (type, name, actions).  Names may hold ':' (a port)."""
    kind, sep, rest = scope.partition(":")
    if not sep:
        return None
    name, sep, actions = rest.rpartition(":")
    if not sep or not name:
        return None
    return kind, name, [a for a in actions.split(",") if a]


# -- permissions ------------------------------------------------------------------------------------


@dataclass
class Identity:
    user: str | None  # None: anonymous
    admin: bool = False
    access: list | None = None  # a token's grants; None for basic auth (everything the policy allows)


class Policy:
    """Who may do what to which repository."""

    def __init__(self, accounts, store) -> None:
        self.accounts = accounts  # .accounts.Accounts
        self.store = store

    def owner(self, name: str) -> str | None:
        """The account that owns ``name`` (``user/...``), or None for admin-only names."""
        first, sep, _ = name.partition("/")
        if sep and self.accounts.exists(first):
            return first
        return None

    def allowed(self, user: str | None, name: str, action: str) -> bool:
        if self.accounts.is_admin(user):
            return True
        owner = self.owner(name)
        is_owner = user is not None and owner == user
        if action == PULL:
            return is_owner or not self.store.meta(name).get("private", False)
        if action in (PUSH, DELETE, "*"):
            return is_owner and self.accounts.is_active(user)
        return False

    def grant(self, user: str | None, name: str, actions: list[str]) -> list[str]:
        return [a for a in actions if self.allowed(user, name, "*" if a == "*" else a)]


# -- failed logins ----------------------------------------------------------------------------------


class LoginLimiter:
    """Failed logins per (user, client address) and per client address within a sliding window.

    Past the limit a login is refused with 429 before any password is checked,
    so guessing costs the attacker time and the registry no CPU.  Kept per
    replica (a replica restarting forgets): a limit, not an account lock-out,
    so a stranger cannot lock a user out from another address.
    """

    def __init__(self, failures: int = 5, window: float = 60.0, clock=time.monotonic) -> None:
        self.failures = failures
        self.window = window
        self.clock = clock
        self._seen: dict[tuple, list[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: tuple, now: float) -> list[float]:
        times = [t for t in self._seen.get(key, []) if now - t < self.window]
        if times:
            self._seen[key] = times
        else:
            self._seen.pop(key, None)
        return times

    def retry_after(self, user: str, address: str) -> float:
        """Seconds to wait before this login may be tried; 0 when it may be tried now."""
        now = self.clock()
        with self._lock:
            pair = self._recent(("pair", user, address), now)
            host = self._recent(("host", address), now)
        waits = []
        if len(pair) >= self.failures:
            waits.append(pair[-self.failures] + self.window - now)
        if len(host) >= self.failures * 4:
            waits.append(host[-self.failures * 4] + self.window - now)
        return max(waits, default=0.0)

    def failed(self, user: str, address: str) -> None:
        now = self.clock()
        with self._lock:
            if len(self._seen) > 100000:
                self._seen.clear()
            for key in (("pair", user, address), ("host", address)):
                self._seen.setdefault(key, []).append(now)
