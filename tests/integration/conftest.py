"""A real daemon per test module: its own data root, socket and busybox image (helpers:
:mod:`tests.helpers.daemon`, which starts the daemon exactly as a user does, by the ``dockyard``
console script)."""

from __future__ import annotations

import shutil

import pytest

from tests.helpers.daemon import busybox_rootfs_tar, remove_all_containers, remove_bridge, start_daemon


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    root = tmp_path_factory.mktemp("dockyard")
    d = start_daemon(root)
    try:
        result = d.dockyard("import", "-", "busybox:latest", input=busybox_rootfs_tar())
        assert result.returncode == 0, result.stderr.decode()
        yield d
    finally:
        remove_all_containers(d)
        d.stop()
        remove_bridge(root)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def dockerpy(daemon):
    import docker as dockerpy

    client = dockerpy.DockerClient(base_url=daemon.host, timeout=60)
    yield client
    client.close()
