"""Accounts from login (``accounts = open``), activation by mail, and ``dockyard registry user ...``."""

from __future__ import annotations

import email
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from dockyard.errors import Forbidden, Unauthorized
from dockyard.plugins.registry_http.driver import HttpDistributionDriver
from dockyard.registry.accounts import Accounts
from dockyard.registry.storage import FilesystemBackend

from tests.helpers.registry import start_registry
from tests.helpers.images import layer_tar
from tests.helpers.registry import Recorder, image_on_disk

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def driver(tmp_path):
    d = HttpDistributionDriver(tmp_path / "driver", {})
    yield d
    d.blobsums.close()


@pytest.fixture
def open_registry(tmp_path):
    server = start_registry(tmp_path / "open", settings={"accounts": {"mode": "open"}})
    yield server
    server.stop()


def outbox(server) -> list[email.message.Message]:
    directory = server.root / "data" / "outbox"
    return (
        [email.message_from_bytes(p.read_bytes()) for p in sorted(directory.glob("*.eml"))]
        if directory.exists()
        else []
    )


def text(mail: email.message.Message) -> str:
    return mail.get_payload(decode=True).decode()


def push(driver, server, tmp_path, name: str, user: str, password: str):
    image = image_on_disk(tmp_path, [layer_tar({"who": user.encode()})])
    return driver.distribution_push(
        f"{server.host}/{name}",
        image,
        {"username": user, "password": password, "serveraddress": server.host},
        Recorder(),
    )


def test_login_registers_and_mail_activates(driver, open_registry, tmp_path):
    reg = open_registry
    answer = driver.distribution_login(reg.host, "dora", "dora-secret", "dora@example.com")
    assert answer["Status"].endswith("Login Succeeded")
    assert "confirmation link" in answer["Status"]
    # logged in at once: the same credentials work again, and may pull
    assert driver.distribution_login(reg.host, "dora", "dora-secret")["Status"] == "Login Succeeded"
    with pytest.raises(Unauthorized):
        driver.distribution_login(reg.host, "dora", "not-her-password")  # the name is taken now
    # but not push, even to her own namespace, until activated
    with pytest.raises(Forbidden, match="not activated"):
        push(driver, reg, tmp_path, "dora/app:v1", "dora", "dora-secret")
    [mail] = outbox(reg)
    assert mail["To"] == "dora@example.com"
    link = re.search(r"http://\S+/v1/activate/dora/\S+", text(mail)).group(0)
    assert link.startswith(reg.url)  # from the settings, not from a request
    assert httpx.get(link.replace("/dora/", "/dora/x")).status_code == 404
    r = httpx.get(link)
    assert r.status_code == 200 and "is active" in r.text
    assert httpx.get(link).status_code == 404  # used once
    push(driver, reg, tmp_path, "dora/app:v1", "dora", "dora-secret")
    with pytest.raises(Forbidden):
        push(driver, reg, tmp_path, "other/app:v1", "dora", "dora-secret")  # still only her namespace
    # a repository description set by the owner shows in search
    r = httpx.patch(
        f"{reg.url}/v1/repositories/dora/app", json={"description": "dora's web app"}, auth=("dora", "dora-secret")
    )
    assert r.status_code == 200
    assert driver.distribution_search(f"{reg.host}/web app", 10, {})[0] == {
        "description": "dora's web app",
        "is_official": False,
        "is_automated": False,
        "name": "dora/app",
        "star_count": 0,
    }


def test_registration_without_address_then_with_one(driver, open_registry, tmp_path):
    reg = open_registry
    answer = driver.distribution_login(reg.host, "eve", "eve-secret")  # as docker login does: no e-mail
    assert answer["Status"].endswith("Login Succeeded") and "e-mail address" in answer["Status"]
    assert outbox(reg) == []
    answer = driver.distribution_login(reg.host, "eve", "eve-secret", "eve@example.com")
    assert answer["Status"].startswith("Activation link sent to eve@example.com")
    [mail] = outbox(reg)
    httpx.get(re.search(r"http://\S+/v1/activate/\S+", text(mail)).group(0)).raise_for_status()
    push(driver, reg, tmp_path, "eve/tool:v1", "eve", "eve-secret")
    # once active, a login with an address sends nothing more
    assert driver.distribution_login(reg.host, "eve", "eve-secret", "eve@example.com")["Status"] == "Login Succeeded"
    assert len(outbox(reg)) == 1


def test_registration_is_checked(open_registry):
    url = f"{open_registry.url}/v1/users/"
    for body, message in (
        ({"username": "Bad Name", "password": "secret1"}, "user name"),
        ({"username": "frank", "password": "123"}, "at least 6"),
        ({"username": "frank", "password": "secret1", "email": "nope"}, "e-mail"),
        ({"username": "frank", "password": "secret1", "admin": True}, "unknown fields: admin"),
    ):
        r = httpx.post(url, json=body)
        assert r.status_code == 400 and message in r.json()["errors"][0]["message"], r.text
    assert httpx.post(url, json={"username": "frank", "password": "secret1"}).status_code == 201
    assert httpx.post(url, json={"username": "frank", "password": "other12"}).status_code == 400


def test_closed_registries_register_nobody(driver, tmp_path):
    server = start_registry(tmp_path / "closed", settings={"auth": {"mode": "token"}})
    try:
        with pytest.raises(Unauthorized):
            driver.distribution_login(server.host, "mallory", "mallory-pw", "m@example.com")
        assert httpx.post(f"{server.url}/v1/users/", json={"username": "x", "password": "yyyyyy"}).status_code == 405
    finally:
        server.stop()


def registry_cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dockyard.cli", "registry", *args],
        input=stdin,
        capture_output=True,
        cwd=REPO_ROOT,
        timeout=60,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
    )


def test_user_commands_manage_the_store_offline(tmp_path):
    root = str(tmp_path / "reg")
    added = registry_cli(
        "user", "add", "gina", "--root", root, "--email", "g@example.com", "--password-stdin", stdin=b"gina-pw\n"
    )
    assert added.returncode == 0 and b"User gina added" in added.stdout, added.stderr
    assert registry_cli("user", "add", "hank", "--root", root, "--admin", "-p", "hank-pw").returncode == 0
    again = registry_cli("user", "add", "gina", "--root", root, "-p", "x")
    assert again.returncode != 0 and b"already exists" in again.stderr
    listed = json.loads(registry_cli("user", "list", "--root", root, "--json").stdout)
    assert [(a["name"], a["email"], a["admin"], a["active"]) for a in listed] == [
        ("gina", "g@example.com", False, True),
        ("hank", "", True, True),
    ]
    table = registry_cli("user", "list", "--root", root).stdout.decode().splitlines()
    assert table[0].split() == ["NAME", "EMAIL", "ACTIVE", "ADMIN", "SOURCE"] and table[1].split()[0] == "gina"
    assert registry_cli("user", "passwd", "gina", "--root", root, "--password-stdin", stdin=b"new-pw\n").returncode == 0
    accounts = Accounts(FilesystemBackend(tmp_path / "reg"))
    assert accounts.verify("gina", "new-pw") and not accounts.verify("gina", "gina-pw")
    assert registry_cli("user", "rm", "hank", "--root", root).returncode == 0
    missing = registry_cli("user", "rm", "hank", "--root", root)
    assert missing.returncode == 1 and b"no such user: hank" in missing.stderr
    assert [a.name for a in Accounts(FilesystemBackend(tmp_path / "reg")).list()] == ["gina"]
    # the server finds them and, having accounts, authenticates by default
    server = start_registry(tmp_path / "reg-serve", "--root", root)
    try:
        assert httpx.get(f"{server.url}/v2/").status_code == 401
        assert httpx.get(f"{server.url}/token", auth=("gina", "new-pw")).status_code == 200
    finally:
        server.stop()


@pytest.mark.requires_root
@pytest.mark.requires_lxc
@pytest.mark.integration
def test_docker_and_dockyard_login_register(open_registry, tmp_path):
    """``docker login`` with a new name registers it ("Login Succeeded"); ``dockyard login`` asks for the
    user name, password and e-mail as Docker 0.x did, and the link it gets mailed lets the account push."""
    from tests.helpers.daemon import DOCKER, busybox_rootfs_tar, remove_bridge, start_daemon

    assert DOCKER, "the docker CLI is needed"
    reg = open_registry
    (tmp_path / "d").mkdir()
    daemon = start_daemon(tmp_path / "d")
    try:
        assert daemon.dockyard("import", "-", "busybox:latest", input=busybox_rootfs_tar()).returncode == 0
        login = daemon.docker("login", "-u", "ivan", "--password-stdin", reg.host, input=b"ivan-secret")
        assert login.returncode == 0, login.stderr.decode()
        assert "Login Succeeded" in login.stdout.decode()
        assert daemon.docker("tag", "busybox", f"{reg.host}/ivan/bb:v1").returncode == 0
        denied = daemon.docker("push", f"{reg.host}/ivan/bb:v1")
        assert denied.returncode != 0 and b"not activated" in denied.stderr
        env = dict(daemon.env(), DOCKYARD_CONFIG=str(tmp_path / "dockyard-config"))
        prompted = subprocess.run(
            [sys.executable, "-m", "dockyard.cli", "login", reg.host],
            input=b"ivan\nivan-secret\nivan@example.com\n",
            capture_output=True,
            env=env,
            timeout=60,
            start_new_session=True,
        )  # no terminal: the prompts read stdin
        assert prompted.returncode == 0, prompted.stderr.decode()
        out = prompted.stdout.decode()
        assert "Username: " in out and "Email (): " in out
        assert "Activation link sent to ivan@example.com" in out and out.rstrip().endswith("Login Succeeded")
        [mail] = outbox(reg)
        httpx.get(re.search(r"http://\S+/v1/activate/\S+", text(mail)).group(0)).raise_for_status()
        pushed = daemon.docker("push", f"{reg.host}/ivan/bb:v1")
        assert pushed.returncode == 0, pushed.stderr.decode()
    finally:
        daemon.stop()
        remove_bridge(tmp_path / "d")


def test_activation_mail_goes_to_smtp_when_configured(tmp_path):
    """A minimal SMTP server on loopback receives what the Mailer sends (and the outbox stays empty)."""
    import socketserver
    import threading

    from dockyard.registry.config import AccountSettings
    from dockyard.registry.mail import Mailer

    received: list[bytes] = []

    class Smtp(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            self.wfile.write(b"220 test ESMTP\r\n")
            while line := self.rfile.readline():
                verb = line.split(b" ")[0].strip().upper()
                if verb == b"DATA":
                    self.wfile.write(b"354 go on\r\n")
                    lines = []
                    while (data := self.rfile.readline()) not in (b".\r\n", b""):
                        lines.append(data)
                    received.append(b"".join(lines))
                    self.wfile.write(b"250 queued\r\n")
                elif verb == b"QUIT":
                    self.wfile.write(b"221 bye\r\n")
                    return
                else:
                    self.wfile.write(b"250 ok\r\n")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Smtp)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = AccountSettings(
            smtp_host="127.0.0.1", smtp_port=server.server_address[1], smtp_from="registry@example.com"
        )
        where = Mailer(settings, tmp_path / "outbox").send("kim@example.com", "Activate", "the link: http://x/y")
        assert where == f"smtp://127.0.0.1:{server.server_address[1]}"
        [message] = received
        assert b"To: kim@example.com" in message and b"the link: http://x/y" in message
        assert not (tmp_path / "outbox").exists()
    finally:
        server.shutdown()
        server.server_close()
