"""A driver without an optional hook: the API answers 501 naming the hook, or does without it.

Regression test for the façade raising the builtin ``NotImplementedError`` (a 500,
and an ``except`` in the routes that could never match).
"""

from __future__ import annotations

import pytest

from dockyard.engine import Engine
from tests.helpers.api import call_api
from tests.helpers.drivers import StubExec, StubNetwork, use_drivers


@pytest.fixture
def engine(tmp_path, monkeypatch):
    use_drivers(monkeypatch, exec={"stub": StubExec}, network={"stub": StubNetwork})
    engine = Engine.open(tmp_path, storage="vfs", execution="stub", network="stub")
    yield engine
    engine.close()


def test_user_network_hooks_missing_answer_501_naming_the_hook(engine):
    async def script(client):
        response = await client.post("/v1.41/networks/create", json={"Name": "backend"})
        return response.status, response.headers["Content-Type"], await response.json()

    status, content_type, body = call_api(engine, script)
    assert status == 501
    assert content_type == "application/json"
    assert body == {"message": "the network driver does not implement network_create"}


def test_listing_networks_does_without_a_driver_that_has_none(engine):
    async def script(client):
        response = await client.get("/networks")
        return response.status, await response.json()

    status, body = call_api(engine, script)
    assert status == 200
    assert sorted(n["Name"] for n in body) == ["host", "none"]
