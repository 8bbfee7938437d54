"""Issue 16: with the web UI on, the daemon's own origin may call the API; no other origin may."""

from __future__ import annotations

from dockyard.daemon import guard

from .test_guard import BODY, run


def _post(origin: str, host: str | None = None):
    async def script(client):
        headers = {"Origin": origin.replace("{port}", str(client.port)), "Content-Type": "application/json"}
        if host is not None:
            headers["Host"] = host.replace("{port}", str(client.port))
        r = await client.post("/containers/create", data=BODY, headers=headers)
        return r.status, r.headers.get("Access-Control-Allow-Origin")

    return script


def test_the_own_origin_passes_only_with_the_ui_on() -> None:
    ui = guard.GuardConfig.for_listeners("", ["127.0.0.1"], own_origin=True)
    assert run(ui, _post("http://127.0.0.1:{port}")) == (200, None)  # same origin: no CORS answer needed
    assert run(guard.GuardConfig(), _post("http://127.0.0.1:{port}"))[0] == 403  # UI off: refused as before


def test_other_origins_stay_refused_with_the_ui_on() -> None:
    ui = guard.GuardConfig.for_listeners("", ["127.0.0.1"], own_origin=True)
    for origin in (
        "http://evil.example",
        "http://127.0.0.1:1",
        "https://127.0.0.1:{port}",
        "null",
        "http://localhost:{port}",
    ):  # localhost is a name of this host, but not the origin asked
        assert run(ui, _post(origin))[0] == 403, origin


def test_a_rebound_name_is_refused_even_as_its_own_origin() -> None:
    """DNS rebinding: the page's origin and Host agree, but the Host check still refuses the name."""
    ui = guard.GuardConfig.for_listeners("", ["127.0.0.1"], own_origin=True)
    assert run(ui, _post("http://rebound.example:{port}", "rebound.example:{port}"))[0] == 403
