"""Accounts, tokens, basic auth, permissions, search and repository settings."""

from __future__ import annotations

import time

import httpx
import pytest

from dockyard.errors import Forbidden, Unauthorized
from dockyard.plugins.registry_http.driver import HttpDistributionDriver
from dockyard.registry.accounts import Accounts
from dockyard.registry.auth import Tokens, Users, add_user, parse_scope
from dockyard.registry.storage import FilesystemBackend

from tests.helpers.registry import USERS
from tests.helpers.waiting import wait_for
from tests.helpers.registry import Recorder, image_on_disk
from tests.helpers.images import layer_tar


def creds(user: str) -> dict:
    return {"username": user, "password": USERS[user], "serveraddress": ""}


@pytest.fixture
def driver(tmp_path):
    d = HttpDistributionDriver(tmp_path / "driver", {})
    yield d
    d.blobsums.close()


def push(driver, registry, tmp_path, name: str, user: str | None, files=None):
    auth = creds(user) if user else {}
    auth["serveraddress"] = registry.host
    image = image_on_disk(tmp_path, [layer_tar(files or {"owner": name.encode()})])
    return driver.distribution_push(f"{registry.host}/{name}", image, auth, Recorder())


def test_users_file_and_tokens(tmp_path):
    path = tmp_path / "htpasswd"
    add_user(path, "carol", "secret", rounds=4)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text().startswith("carol:$2b$")
    users = Accounts(FilesystemBackend(tmp_path / "store"), htpasswd=path, rounds=4)
    assert users.verify("carol", "secret") and not users.verify("carol", "wrong") and not users.verify("x", "y")
    add_user(path, "carol", "changed", admin=True, rounds=4)
    users._invalidate("carol")  # lookups are cached for a few seconds
    assert users.verify("carol", "changed") and users.is_admin("carol")
    with pytest.raises(ValueError):
        add_user(path, "Bad:Name", "pw")
    tokens = Tokens(b"k" * 32, "iss", "svc", ttl=60)
    token, _ = tokens.issue("carol", [{"type": "repository", "name": "carol/x", "actions": ["pull"]}])
    assert tokens.verify(token)["sub"] == "carol"
    from dockyard.registry.auth import TokenError

    with pytest.raises(TokenError, match="expired"):
        tokens.verify(token, now=time.time() + 61)
    with pytest.raises(TokenError, match="signature"):
        Tokens(b"z" * 32, "iss", "svc", 60).verify(token)
    assert parse_scope("repository:127.0.0.1:5000/a/b:pull,push") == (
        "repository",
        "127.0.0.1:5000/a/b",
        ["pull", "push"],
    )


def test_token_flow_permissions(driver, token_registry, tmp_path):
    reg = token_registry
    # the challenge
    r = httpx.get(f"{reg.url}/v2/")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith(f'Bearer realm="{reg.url}/token",service="dockyard-registry"')
    # a user pushes to their namespace
    push(driver, reg, tmp_path, "alice/app:v1", "alice")
    # ... but not to someone else's, nor to a top-level name
    with pytest.raises(Forbidden, match="denied"):
        push(driver, reg, tmp_path, "bob/app:v1", "alice")
    with pytest.raises(Forbidden, match="denied"):
        push(driver, reg, tmp_path, "toplevel:v1", "alice")
    # anonymous push: authentication required
    with pytest.raises(Unauthorized):
        push(driver, reg, tmp_path, "alice/app:v2", None)
    # an administrator may push top-level names
    push(driver, reg, tmp_path, "toplevel:v1", "root")
    # anyone pulls public repositories, anonymously too
    pulled = driver.distribution_pull(f"{reg.host}/alice/app:v1", {}, Recorder(), None, str(tmp_path / "w1"))
    assert pulled["tag"] == "v1"
    # a wrong password
    with pytest.raises(Unauthorized, match="incorrect username or password"):
        driver.distribution_login(reg.host, "alice", "wrong")
    assert driver.distribution_login(reg.host, "alice", "alice-pw")["Status"] == "Login Succeeded"
    # token endpoint grants only what the policy allows
    r = httpx.get(
        f"{reg.url}/token",
        params={"service": "dockyard-registry", "scope": "repository:bob/app:pull,push"},
        auth=("alice", "alice-pw"),
    )
    token = r.json()["token"]
    r = httpx.post(f"{reg.url}/v2/bob/app/blobs/uploads/", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403 and r.json()["errors"][0]["code"] == "DENIED"


def test_expired_token(driver, token_registry, tmp_path):
    reg = token_registry
    r = httpx.get(f"{reg.url}/token", params={"scope": "repository:alice/exp:pull,push"}, auth=("alice", "alice-pw"))
    token = r.json()["token"]
    assert r.json()["expires_in"] == 3
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{reg.url}/v2/", headers=headers).status_code == 200

    def refused() -> httpx.Response | None:
        r = httpx.get(f"{reg.url}/v2/alice/exp/tags/list", headers=headers)
        return r if r.status_code == 401 else None

    r = wait_for(refused, timeout=10, interval=0.2)  # the 3-second token expires
    assert r is not None and 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    # the client fetches a new token by itself
    push(driver, reg, tmp_path, "alice/exp:v1", "alice")


def test_private_repositories_and_descriptions(driver, token_registry, tmp_path):
    reg = token_registry
    push(driver, reg, tmp_path, "alice/secret:v1", "alice")
    push(driver, reg, tmp_path, "alice/public:v1", "alice", {"p": b"1"})
    url = f"{reg.url}/v1/repositories"
    # only the owner may change settings
    assert httpx.patch(f"{url}/alice/secret", json={"private": True}, auth=("bob", "bob-pw")).status_code == 403
    r = httpx.patch(
        f"{url}/alice/secret", json={"private": True, "description": "hidden things"}, auth=("alice", "alice-pw")
    )
    assert r.status_code == 200 and r.json()["private"] is True
    httpx.patch(f"{url}/alice/public", json={"description": "a friendly web server"}, auth=("alice", "alice-pw"))
    # a private repository is readable only by its owner (and admins)
    with pytest.raises(Unauthorized):
        driver.distribution_pull(
            f"{reg.host}/alice/secret:v1",
            creds("bob") | {"serveraddress": reg.host},
            Recorder(),
            None,
            str(tmp_path / "w"),
        )
    driver.distribution_pull(
        f"{reg.host}/alice/secret:v1",
        creds("alice") | {"serveraddress": reg.host},
        Recorder(),
        None,
        str(tmp_path / "w2"),
    )
    driver.distribution_pull(
        f"{reg.host}/alice/secret:v1",
        creds("root") | {"serveraddress": reg.host},
        Recorder(),
        None,
        str(tmp_path / "w3"),
    )
    # search: name and description; private ones only for their owner
    r = httpx.get(f"{reg.url}/v1/search", params={"q": "friendly"}).json()
    assert [x["name"] for x in r["results"]] == ["alice/public"]
    assert r["results"][0]["description"] == "a friendly web server"
    names = [x["name"] for x in httpx.get(f"{reg.url}/v1/search", params={"q": "alice"}).json()["results"]]
    assert "alice/secret" not in names and "alice/public" in names
    names = [
        x["name"]
        for x in httpx.get(f"{reg.url}/v1/search", params={"q": "alice"}, auth=("alice", "alice-pw")).json()["results"]
    ]
    assert "alice/secret" in names
    results = driver.distribution_search(f"{reg.host}/friendly", 10, {})
    assert results == [
        {
            "description": "a friendly web server",
            "is_official": False,
            "is_automated": False,
            "name": "alice/public",
            "star_count": 0,
        }
    ]
    # deleting a repository is the owner's
    assert httpx.delete(f"{url}/alice/public", auth=("bob", "bob-pw")).status_code == 403
    assert httpx.delete(f"{url}/alice/public", auth=("alice", "alice-pw")).status_code == 202
    assert httpx.get(f"{reg.url}/v2/alice/public/tags/list", auth=("alice", "alice-pw")).status_code == 404


def test_basic_auth_mode(driver, basic_registry, tmp_path):
    reg = basic_registry
    r = httpx.get(f"{reg.url}/v2/")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic ")
    assert httpx.get(f"{reg.url}/v2/", auth=("bob", "bob-pw")).status_code == 200
    assert httpx.get(f"{reg.url}/v2/", auth=("bob", "nope")).status_code == 401
    push(driver, reg, tmp_path, "bob/tool:v1", "bob")
    with pytest.raises(Forbidden):
        push(driver, reg, tmp_path, "alice/tool:v1", "bob")
    with pytest.raises(Unauthorized):
        driver.distribution_login(reg.host, "bob", "wrong")
    driver.distribution_pull(f"{reg.host}/bob/tool:v1", {}, Recorder(), None, str(tmp_path / "w"))


def test_adduser_command(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    users = tmp_path / "users"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dockyard.cli",
            "registry",
            "adduser",
            "dave",
            "--users",
            str(users),
            "--admin",
            "--password-stdin",
        ],
        input=b"dave-pw\n",
        capture_output=True,
        cwd=repo,
        env=dict(os.environ, PYTHONPATH=str(repo)),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert b"Administrator dave saved" in result.stdout
    loaded = Accounts(FilesystemBackend(tmp_path / "store"), htpasswd=users)
    assert loaded.verify("dave", "dave-pw") and loaded.is_admin("dave") and Users(users).names() == ["dave"]


def test_describe_and_delete_commands(driver, token_registry, tmp_path):
    """``dockyard registry describe|delete`` with the credentials ``dockyard login`` stores."""
    import json
    import os
    import subprocess
    import sys

    from dockyard.cli.registry import Credentials

    reg = token_registry
    push(driver, reg, tmp_path, "alice/tool:v1", "alice")

    def cli(user: str, *args: str) -> subprocess.CompletedProcess:
        config = tmp_path / f"config-{user}"
        Credentials(config).store(reg.host, user, USERS[user])
        return subprocess.run(
            [sys.executable, "-m", "dockyard.cli", "registry", *args],
            capture_output=True,
            env=dict(os.environ, DOCKYARD_CONFIG=str(config)),
            timeout=60,
        )

    changed = cli("alice", "describe", f"{reg.host}/alice/tool", "-d", "a tool", "--private")
    assert changed.returncode == 0, changed.stderr.decode()
    shown = cli("alice", "describe", f"{reg.host}/alice/tool")
    assert json.loads(shown.stdout) == {
        "name": "alice/tool",
        "description": "a tool",
        "private": True,
        "owner": "alice",
        "tags": ["v1"],
    }
    refused = cli("bob", "delete", f"{reg.host}/alice/tool")
    assert refused.returncode == 1 and b"Error response from registry: denied" in refused.stderr
    deleted = cli("alice", "delete", f"{reg.host}/alice/tool")
    assert deleted.returncode == 0 and deleted.stdout == f"Deleted {reg.host}/alice/tool\n".encode()
    assert httpx.get(f"{reg.url}/v2/alice/tool/tags/list", auth=("alice", "alice-pw")).status_code == 404
