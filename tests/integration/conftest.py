"""A real daemon per test module: its own data root, socket and busybox image (helpers:
:mod:`tests.helpers.daemon`, which starts the daemon exactly as a user does, by the ``dockyard``
console script)."""

from __future__ import annotations


import pytest

from tests.helpers.daemon import busybox_daemon


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    with busybox_daemon(tmp_path_factory.mktemp("dockyard")) as d:
        yield d


@pytest.fixture(scope="module")
def dockerpy(daemon):
    import docker as dockerpy

    client = dockerpy.DockerClient(base_url=daemon.host, timeout=60)
    yield client
    client.close()
