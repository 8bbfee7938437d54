"""Accounts: the registry's own store, in the storage backend, and an optional htpasswd file.

Every replica sees the same accounts: one object per account,
``_dockyard/accounts/<name>.json`` (``{"name", "hash" (bcrypt), "email",
"active", "admin", "created", "activation" (sha256 of the pending activation
secret)}``), created with an atomic create-if-absent so that two replicas
registering one name at once cannot both win.  An htpasswd file (``[auth]
users``, the format of ``htpasswd -B`` and docker-registry) is read as well:
its accounts are active, and it wins over the store for a name in both.

With ``accounts.mode = "open"`` a login with an unknown name registers it
(``POST /v1/users/``, the index API ``docker login`` used in Docker 0.x):
the new account may pull at once and may push to its own namespace once the
link mailed to its address has been followed (:mod:`.mail`).

Verification costs one bcrypt check whether or not the name exists (an
unknown name is checked against a dummy hash of the same cost), so timing
does not tell which names exist.  Successful checks are remembered in memory
(keyed by a hash of the password) for a minute; account lookups are cached
for a few seconds, so a change reaches every replica within that time.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .auth import Users, hash_password
from .layout import ACCOUNTS, account_key
from .storage import StorageBackend

NAME_RE = re.compile(r"[a-z0-9](?:[a-z0-9_.-]{0,62}[a-z0-9])?")
EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
ROUNDS = 10
LOOKUP_TTL = 5.0
VERIFIED_TTL = 60.0


class AccountError(ValueError):
    pass


@dataclass
class Account:
    name: str
    hash: str
    email: str = ""
    active: bool = True
    admin: bool = False
    created: float = 0.0
    activation: str = ""  # sha256 hex of the pending activation secret
    source: str = "store"  # or "htpasswd" (not stored)

    def public(self) -> dict:
        return {
            "name": self.name,
            "email": self.email,
            "active": self.active,
            "admin": self.admin,
            "created": self.created,
            "source": self.source,
        }


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name or ""):
        raise AccountError(
            "a user name is 1 to 64 characters of a-z, 0-9, '_', '.' and '-', starting and ending "
            "with a letter or digit"
        )
    return name


class Accounts:
    def __init__(
        self, backend: StorageBackend, htpasswd: Path | None = None, admins: list[str] = (), rounds: int = ROUNDS
    ) -> None:
        self.backend = backend
        self.htpasswd = Users(htpasswd, admins) if htpasswd else None
        self.config_admins = set(admins)
        self.rounds = rounds
        self._dummy = hash_password(secrets.token_hex(16), rounds).encode()
        self._cache: dict[str, tuple[float, Account]] = {}
        self._verified: dict[tuple[str, bytes], float] = {}
        self._lock = threading.Lock()

    # -- lookups ----------------------------------------------------------------------------------
    def get(self, name: str, fresh: bool = False) -> Account | None:
        if not name:
            return None
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(name)
        if cached is not None and not fresh and now - cached[0] < LOOKUP_TTL:
            return cached[1]
        account = self._load(name)
        if account is not None:  # an unknown name is looked up each time: another replica may register it
            with self._lock:
                if len(self._cache) > 10000:
                    self._cache.clear()
                self._cache[name] = (now, account)
        return account

    def _load(self, name: str) -> Account | None:
        if self.htpasswd is not None and self.htpasswd.exists(name):
            return Account(name, self.htpasswd.hash_of(name), admin=self.htpasswd.is_admin(name), source="htpasswd")
        if not NAME_RE.fullmatch(name):
            return None
        try:
            data = json.loads(self.backend.get(account_key(name)))
        except (KeyError, ValueError):
            return None
        fields = {k: v for k, v in data.items() if k in Account.__dataclass_fields__ and k != "source"}
        return Account(**fields)

    def exists(self, name: str | None) -> bool:
        return bool(name) and self.get(name) is not None

    def is_admin(self, name: str | None) -> bool:
        if not name:
            return False
        if name in self.config_admins:
            return True
        account = self.get(name)
        return account is not None and account.admin

    def is_active(self, name: str | None) -> bool:
        account = self.get(name) if name else None
        return account is not None and account.active

    def any(self) -> bool:
        """Whether there is any account at all (the server then defaults to token authentication)."""
        if self.htpasswd is not None and self.htpasswd.names():
            return True
        return any(True for _ in self.backend.walk(ACCOUNTS))

    # -- passwords --------------------------------------------------------------------------------
    def verify(self, name: str, password: str) -> bool:
        """One bcrypt check whatever the name: an unknown name is checked against a dummy hash."""
        import bcrypt

        account = self.get(name) if name else None
        key = (name, hashlib.sha256(password.encode()).digest())
        if account is not None:
            with self._lock:
                when = self._verified.get(key)
            if when is not None and time.monotonic() - when < VERIFIED_TTL:
                return True
        hashed = account.hash.encode() if account is not None else self._dummy
        try:
            ok = bcrypt.checkpw(password.encode(), hashed.replace(b"$2y$", b"$2b$", 1))
        except ValueError:
            ok = False
        ok = ok and account is not None
        if ok:
            with self._lock:
                if len(self._verified) > 10000:
                    self._verified.clear()
                self._verified[key] = time.monotonic()
        return ok

    # -- changes ----------------------------------------------------------------------------------
    def _save(self, account: Account) -> None:
        data = {k: v for k, v in asdict(account).items() if k != "source"}
        self.backend.put(account_key(account.name), json.dumps(data, sort_keys=True).encode())
        self._invalidate(account.name)

    def _invalidate(self, name: str) -> None:
        with self._lock:
            self._cache.pop(name, None)
            for key in [k for k in self._verified if k[0] == name]:
                del self._verified[key]

    def add(
        self,
        name: str,
        password: str,
        *,
        email: str = "",
        admin: bool = False,
        active: bool = True,
        replace: bool = False,
    ) -> Account:
        check_name(name)
        if email and not EMAIL_RE.fullmatch(email):
            raise AccountError(f"invalid e-mail address {email!r}")
        if not password:
            raise AccountError("a password is required")
        account = Account(name, hash_password(password, self.rounds), email, active, admin, time.time())
        data = json.dumps({k: v for k, v in asdict(account).items() if k != "source"}, sort_keys=True).encode()
        if replace:
            self.backend.put(account_key(name), data)
        elif (self.htpasswd is not None and self.htpasswd.exists(name)) or not self.backend.put_if_absent(
            account_key(name), data
        ):
            raise AccountError(f"user {name} already exists")
        self._invalidate(name)
        return account

    def register(self, name: str, password: str, email: str) -> tuple[Account, str]:
        """A new, inactive account; returns it and the activation secret to mail."""
        secret = secrets.token_urlsafe(24)
        account = Account(name, "", email, active=False)
        check_name(name)
        if email and not EMAIL_RE.fullmatch(email):
            raise AccountError(f"invalid e-mail address {email!r}")
        if not password or len(password) < 6:
            raise AccountError("a password of at least 6 characters is required")
        account.hash = hash_password(password, self.rounds)
        account.created = time.time()
        account.activation = hashlib.sha256(secret.encode()).hexdigest()
        data = json.dumps({k: v for k, v in asdict(account).items() if k != "source"}, sort_keys=True).encode()
        if (self.htpasswd is not None and self.htpasswd.exists(name)) or not self.backend.put_if_absent(
            account_key(name), data
        ):
            raise AccountError("Username or email already exists")
        self._invalidate(name)
        return account, secret

    def new_activation(self, name: str, email: str) -> str:
        """Set the address of an inactive account and make a new activation secret for it."""
        account = self.get(name, fresh=True)
        if account is None or account.source != "store" or account.active:
            raise AccountError(f"user {name} has nothing to activate")
        if not EMAIL_RE.fullmatch(email or ""):
            raise AccountError(f"invalid e-mail address {email!r}")
        secret = secrets.token_urlsafe(24)
        account.email = email
        account.activation = hashlib.sha256(secret.encode()).hexdigest()
        self._save(account)
        return secret

    def activate(self, name: str, secret: str) -> bool:
        account = self.get(name, fresh=True)
        if account is None or account.source != "store" or not account.activation:
            return False
        if not secrets.compare_digest(account.activation, hashlib.sha256(secret.encode()).hexdigest()):
            return False
        account.active, account.activation = True, ""
        self._save(account)
        return True

    def set_password(self, name: str, password: str) -> None:
        account = self.get(name, fresh=True)
        if account is None:
            raise AccountError(f"no such user: {name}")
        if account.source != "store":
            raise AccountError(f"user {name} is in the htpasswd file {self.htpasswd.path}: change it there")
        if not password:
            raise AccountError("a password is required")
        account.hash = hash_password(password, self.rounds)
        self._save(account)

    def remove(self, name: str) -> None:
        account = self.get(name, fresh=True)
        if account is None:
            raise AccountError(f"no such user: {name}")
        if account.source != "store":
            raise AccountError(f"user {name} is in the htpasswd file {self.htpasswd.path}: remove it there")
        self.backend.delete(account_key(name))
        self._invalidate(name)

    def list(self) -> list[Account]:
        found: dict[str, Account] = {}
        for info in self.backend.walk(ACCOUNTS):
            name = info.key.rsplit("/", 1)[1].removesuffix(".json")
            account = self._load(name)
            if account is not None:
                found[name] = account
        if self.htpasswd is not None:
            for name in self.htpasswd.names():
                found[name] = self._load(name)
        return [found[n] for n in sorted(found)]


__all__ = ["Accounts", "Account", "AccountError", "check_name"]
