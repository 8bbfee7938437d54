"""A real daemon (with POST /build) per test module (helpers: :mod:`tests.helpers.build`)."""

from __future__ import annotations

import shutil
import socket
import subprocess

import pytest

from tests.helpers.build import start_build_daemon
from tests.helpers.daemon import busybox_rootfs_tar, free_port
from tests.helpers.waiting import wait_for


def _remove_containers(client) -> None:
    import docker as dockerpy

    for c in client.containers.list(all=True):
        try:
            c.remove(force=True)
        except dockerpy.errors.APIError:
            pass


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    import docker as dockerpy

    root = tmp_path_factory.mktemp("dybuild")
    d = start_build_daemon(root)
    client = dockerpy.DockerClient(base_url=d.host, timeout=120)
    try:
        client.api.import_image_from_data(busybox_rootfs_tar(), repository="busybox", tag="latest")
        yield d
    finally:
        try:
            if d.process.poll() is None:
                _remove_containers(client)
        finally:
            client.close()
            d.stop()
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def dockerpy(daemon):
    import docker as dockerpy

    client = dockerpy.DockerClient(base_url=daemon.host, timeout=120)
    yield client
    client.close()


@pytest.fixture(autouse=True)
def no_leftover_containers(request):
    """Every build test leaves no container behind (intermediate ones included)."""
    yield
    if "daemon" not in request.fixturenames:
        return
    d = request.getfixturevalue("daemon")
    if d.process.poll() is not None:
        return
    import docker as dockerpy

    client = dockerpy.DockerClient(base_url=d.host, timeout=60)
    try:
        left = client.containers.list(all=True)
        _remove_containers(client)
    finally:
        client.close()
    assert not left, f"containers left behind: {left}"


@pytest.fixture
def git_server(tmp_path):
    """``git daemon`` on a free loopback port serving ``<tmp>/git``: contexts come over git://, as
    file:// and local paths are refused."""
    base = tmp_path / "git"
    base.mkdir()
    port = free_port()
    proc = subprocess.Popen(
        [
            "git",
            "daemon",
            "--reuseaddr",
            "--listen=127.0.0.1",
            f"--port={port}",
            f"--base-path={base}",
            "--export-all",
            str(base),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def answers() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    try:
        assert wait_for(lambda: answers() or proc.poll() is not None) and proc.poll() is None, (
            "git daemon did not start"
        )
        yield base, f"git://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
