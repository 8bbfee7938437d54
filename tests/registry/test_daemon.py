"""Through the daemon: the docker CLI, docker-py and the dockyard CLI pull, push,
log in and search against our registry on loopback; ``run`` pulls what is missing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.daemon import DOCKER, busybox_rootfs_tar, Daemon, remove_bridge, start_daemon

from tests.helpers.registry import USERS, make_users, start_registry

pytestmark = [pytest.mark.requires_root, pytest.mark.requires_lxc, pytest.mark.integration]
REPO_ROOT = Path(__file__).resolve().parents[2]


def dockyard(d: Daemon, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    env = dict(
        d.env(),
        DOCKYARD_CONFIG=str(d.root / "dockyard-config"),
        PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    return subprocess.run(
        [sys.executable, "-m", "dockyard.cli", *args],
        input=input,
        capture_output=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=120,
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("dist")
    registry = start_registry(base / "registry")
    users = make_users(base / "htpasswd")
    secured = start_registry(base / "secured", "--auth", "token", "--users", str(users))
    daemons = []
    try:
        (base / "d1").mkdir()
        (base / "d2").mkdir()
        first = start_daemon(base / "d1")
        daemons.append(first)
        second = start_daemon(base / "d2")
        daemons.append(second)
        result = first.dockyard("import", "-", "busybox:latest", input=busybox_rootfs_tar())
        assert result.returncode == 0, result.stderr.decode()
        yield registry, secured, first, second
    finally:
        for d in daemons:
            try:
                import docker as dockerpy

                client = dockerpy.DockerClient(base_url=d.host, timeout=30)
                for c in client.containers.list(all=True):
                    c.remove(force=True)
                client.close()
            except Exception:  # noqa: BLE001
                pass
            d.stop()
            remove_bridge(d.root)
        registry.stop()
        secured.stop()
        shutil.rmtree(base, ignore_errors=True)


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, (result.stdout.decode(), result.stderr.decode())
    return result.stdout.decode()


@pytest.mark.requires_docker_cli
def test_docker_cli_push_pull_run(setup):
    registry, _, first, second = setup
    name = f"{registry.host}/h4-busybox:v1"
    ok(first.docker("tag", "busybox", name))
    image_id = json.loads(ok(first.docker("inspect", name)))[0]["Id"]
    out = ok(first.docker("push", name))
    assert f"The push refers to repository [{registry.host}/h4-busybox]" in out
    assert ": Pushed" in out and "v1: digest: sha256:" in out
    out = ok(first.docker("push", name))
    assert "Layer already exists" in out
    # pull on a second daemon; the image ID is the config digest, as before the push
    out = ok(second.docker("pull", name))
    assert "v1: Pulling from h4-busybox" in out and f"Status: Downloaded newer image for {name}" in out
    assert json.loads(ok(second.docker("inspect", name)))[0]["Id"] == image_id
    out = ok(second.docker("pull", name))
    assert f"Status: Image is up to date for {name}" in out
    # docker save of the pulled image names the same config
    saved = second.docker("save", name)
    assert saved.returncode == 0
    # run pulls what is missing
    ok(second.docker("rmi", name))
    result = second.docker("run", "--rm", name, "echo", "autopulled")
    assert result.returncode == 0, result.stderr.decode()
    assert b"autopulled" in result.stdout and b"Unable to find image" in result.stderr


@pytest.mark.requires_docker_cli
def test_docker_cli_pull_missing(setup):
    registry, _, first, _ = setup
    result = first.docker("pull", f"{registry.host}/h4-nope:v1")
    assert result.returncode == 1
    assert b"manifest unknown" in result.stderr and b"not found" in result.stderr


@pytest.mark.requires_docker_cli
def test_docker_cli_login_push_permissions_search(setup):
    _, secured, first, _ = setup
    wrong = first.docker("login", "-u", "alice", "-p", "wrong", secured.host)
    assert wrong.returncode != 0 and b"incorrect username or password" in wrong.stderr
    out = ok(first.docker("login", "-u", "alice", "--password-stdin", secured.host, input=USERS["alice"].encode()))
    assert "Login Succeeded" in out
    ok(first.docker("tag", "busybox", f"{secured.host}/alice/bb:v1"))
    ok(first.docker("push", f"{secured.host}/alice/bb:v1"))
    ok(first.docker("tag", "busybox", f"{secured.host}/bob/bb:v1"))
    denied = first.docker("push", f"{secured.host}/bob/bb:v1")
    assert denied.returncode != 0 and b"denied" in denied.stderr
    out = ok(first.docker("search", f"{secured.host}/bb"))
    assert "alice/bb" in out
    ok(first.docker("logout", secured.host))
    anonymous = first.docker("push", f"{secured.host}/alice/bb:v1")
    assert anonymous.returncode != 0 and b"authentication required" in anonymous.stderr


def test_dockerpy_pull_push(setup):
    import docker as dockerpy

    registry, _, first, _ = setup
    client = dockerpy.DockerClient(base_url=first.host, timeout=120)
    try:
        image = client.images.get("busybox")
        image.tag(f"{registry.host}/h4-py", "v2")
        lines = list(client.api.push(f"{registry.host}/h4-py", tag="v2", stream=True, decode=True))
        aux = [line["aux"] for line in lines if "aux" in line]
        assert aux and aux[0]["Tag"] == "v2" and aux[0]["Digest"].startswith("sha256:")
        client.images.remove(f"{registry.host}/h4-py:v2")
        pulled = client.images.pull(f"{registry.host}/h4-py", tag="v2")
        assert pulled.id == image.id
    finally:
        client.close()


def test_dockyard_cli(setup):
    _, secured, first, second = setup
    bad = dockyard(first, "login", "-u", "bob", "-p", "nope", secured.host)
    assert bad.returncode != 0 and b"incorrect username or password" in bad.stderr
    ok(dockyard(first, "login", "-u", "bob", "--password-stdin", secured.host, input=b"bob-pw\n"))
    config = first.root / "dockyard-config" / "config.json"
    assert config.stat().st_mode & 0o777 == 0o600
    assert secured.host in json.loads(config.read_text())["auths"]
    ok(first.docker("tag", "busybox", f"{secured.host}/bob/tool:v3"))
    out = ok(dockyard(first, "push", f"{secured.host}/bob/tool:v3"))
    assert "v3: digest: sha256:" in out
    out = ok(dockyard(second, "pull", f"{secured.host}/bob/tool", "-t", "v3"))
    assert f"Status: Downloaded newer image for {secured.host}/bob/tool:v3" in out
    out = ok(dockyard(first, "search", f"{secured.host}/tool", "--limit", "5"))
    assert "bob/tool" in out and out.startswith("NAME")
    out = ok(dockyard(first, "logout", secured.host))
    assert f"Removing login credentials for {secured.host}" in out
    assert secured.host not in json.loads(config.read_text())["auths"]


@pytest.mark.requires_docker_cli
def test_build_pulls_a_missing_base_image(setup, tmp_path):
    registry, _, first, second = setup
    name = f"{registry.host}/h4-buildbase:1"
    ok(first.docker("tag", "busybox", name))
    ok(first.docker("push", name))
    assert second.docker("inspect", name).returncode != 0  # not on the second daemon yet
    (tmp_path / "Dockerfile").write_text(f'FROM {name}\nRUN echo built > /built\nCMD ["cat", "/built"]\n')
    env = dict(second.env(), DOCKER_BUILDKIT="0")
    built = subprocess.run(
        [DOCKER, "build", "-t", "h4-built:1", str(tmp_path)], capture_output=True, env=env, timeout=180
    )
    assert built.returncode == 0, built.stderr.decode() + built.stdout.decode()
    assert ok(second.docker("run", "--rm", "h4-built:1")) == "built\n"
    assert json.loads(ok(second.docker("inspect", name)))[0]["Id"]  # the base came along
    # a base nobody has fails the build with a clear message
    (tmp_path / "Dockerfile").write_text(f"FROM {registry.host}/h4-nowhere:1\n")
    missing = subprocess.run([DOCKER, "build", str(tmp_path)], capture_output=True, env=env, timeout=120)
    assert missing.returncode != 0 and "pull access denied" in (missing.stderr + missing.stdout).decode()


@pytest.mark.requires_docker_cli
def test_repo_digests_and_pull_by_digest(setup):
    registry, _, first, second = setup
    name = f"{registry.host}/h4-digest"
    ok(first.docker("tag", "busybox", f"{name}:1"))
    pushed = ok(first.docker("push", f"{name}:1"))
    digest = pushed.split("digest: ")[1].split()[0]
    assert f"{name}@{digest}" in json.loads(ok(first.docker("inspect", f"{name}:1")))[0]["RepoDigests"]
    ok(second.docker("pull", f"{name}@{digest}"))
    assert ok(second.docker("run", "--rm", f"{name}@{digest}", "echo", "by digest")) == "by digest\n"
    listed = ok(second.docker("images", "--digests", name))
    assert digest in listed
    removed = ok(second.docker("rmi", f"{name}@{digest}"))
    assert f"Untagged: {name}@{digest}" in removed  # deleted too unless another name still points at it
    assert second.docker("inspect", f"{name}@{digest}").returncode != 0
