"""Registry fixtures (helpers: :mod:`tests.helpers.registry`)."""

from __future__ import annotations

import pytest

from tests.helpers.registry import make_users, start_registry


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
