"""Registry fixtures (helpers: :mod:`tests.helpers.registry`)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.helpers.registry import make_users, start_registry
from tests.helpers.requirements import require
from tests.helpers.seaweedfs import SeaweedFS, start_seaweedfs


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    server = start_registry(tmp_path_factory.mktemp("registry"))
    yield server
    server.stop()


@pytest.fixture
def token_registry(tmp_path):
    users = make_users(tmp_path / "htpasswd")
    server = start_registry(tmp_path / "registry", "--auth", "token", "--users", str(users), "--token-ttl", "3")
    yield server
    server.stop()


@pytest.fixture
def basic_registry(tmp_path):
    users = make_users(tmp_path / "htpasswd")
    server = start_registry(tmp_path / "registry", "--auth", "basic", "--users", str(users))
    yield server
    server.stop()


# -- a real S3 server -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory) -> Iterator[SeaweedFS]:
    """One SeaweedFS (master, volume server, filer, S3 gateway) for the session; tests use their own buckets."""
    require("seaweedfs")
    server = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    yield server
    server.stop()


_buckets = iter(range(1, 1 << 30))


@pytest.fixture
def bucket(seaweedfs) -> str:
    """A new, empty bucket on the session's SeaweedFS."""
    name = f"test-{os.getpid()}-{next(_buckets)}"
    seaweedfs.client().create_bucket(Bucket=name)
    return name
