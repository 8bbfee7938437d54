"""Issue 13, hole 3: a web page cannot drive the API (Origin, Host, Content-Type), over real TCP."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from dockyard.daemon import guard
from dockyard.daemon.http import add_route, api_middleware, json_response, read_json


async def echo(request: web.Request) -> web.Response:
    return json_response({"got": await read_json(request)})


def run(config: guard.GuardConfig, script):
    async def main():
        app = web.Application(middlewares=[api_middleware, guard.middleware(config)])
        add_route(app, "POST", "/containers/create", echo)
        add_route(app, "GET", "/containers/json", echo)
        app.router.add_route("*", "/{tail:.*}", echo)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            return await script(client)

    return asyncio.run(main())


BODY = b'{"Image": "busybox", "HostConfig": {"Binds": ["/:/host"]}}'


def test_a_cross_site_text_plain_post_is_refused():
    async def script(client):
        # what a page's fetch(..., {method: "POST", mode: "no-cors", body: "..."}) sends
        plain = await client.post("/containers/create", data=BODY, headers={"Content-Type": "text/plain"})
        form = await client.post(
            "/v1.41/containers/create", data=BODY, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        none = await client.post("/containers/create", data=BODY, skip_auto_headers=["Content-Type"])
        good = await client.post(
            "/containers/create", data=BODY, headers={"Content-Type": "application/json; charset=utf-8"}
        )
        empty = await client.post("/containers/create", data=b"", skip_auto_headers=["Content-Type"])
        return [(r.status, await r.json()) for r in (plain, form, none, good, empty)]

    (plain, form, none, good, empty) = run(guard.GuardConfig(), script)
    for status, body in (plain, form, none):
        assert status == 400 and "must be 'application/json'" in body["message"]
    assert good == (200, {"got": {"Image": "busybox", "HostConfig": {"Binds": ["/:/host"]}}})
    assert empty == (200, {"got": {}})


def test_requests_with_an_origin_are_refused_unless_allowed():
    async def script(client):
        out = []
        for method in ("POST", "GET", "OPTIONS"):
            r = await client.request(
                method,
                "/containers/create",
                data=b"{}",
                headers={"Origin": "https://evil.example", "Content-Type": "application/json"},
            )
            out.append((r.status, (await r.json())["message"], r.headers.get("Access-Control-Allow-Origin")))
        return out

    for status, message, cors in run(guard.GuardConfig(), script):
        assert status == 403 and "cross-origin requests are refused" in message and cors is None


@pytest.mark.parametrize(
    "allowed, origin, status",
    [
        ("*", "https://any.example", 200),
        ("https://ui.example", "https://ui.example", 200),
        ("https://ui.example", "https://evil.example", 403),
    ],
)
def test_api_cors_header(allowed, origin, status):
    async def script(client):
        preflight = await client.options(
            "/containers/create", headers={"Origin": origin, "Access-Control-Request-Method": "POST"}
        )
        post = await client.post(
            "/containers/create", data=b"{}", headers={"Origin": origin, "Content-Type": "application/json"}
        )
        return (
            preflight.status,
            post.status,
            post.headers.get("Access-Control-Allow-Origin"),
            preflight.headers.get("Access-Control-Allow-Methods"),
        )

    preflight, post, cors, methods = run(guard.GuardConfig(cors_origin=allowed), script)
    assert (preflight, post) == (status, status)
    if status == 200:
        assert cors == allowed and "POST" in methods


@pytest.mark.parametrize(
    "host, status",
    [
        ("attacker.example", 403),
        ("attacker.example:4243", 403),
        ("127.0.0.1:4243", 200),
        ("localhost", 200),
        ("[::1]:4243", 200),
        ("10.1.2.3", 200),
        ("my-daemon.lan:2375", 200),
        ("", 403),
    ],
)
def test_dns_rebinding_host_names_are_refused_on_tcp(host, status):
    async def script(client):
        r = await client.get("/containers/json", headers={"Host": host})
        return r.status

    config = guard.GuardConfig.for_listeners("", ["my-daemon.lan", "0.0.0.0"])
    assert run(config, script) == status
