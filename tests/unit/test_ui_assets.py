"""The web UI's files: found beside the environment, each served by name only, the page locked down."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from dockyard.daemon import config as daemon_config
from dockyard.daemon.app import make_app
from dockyard.daemon.ui import STATIC, VENDOR, UiAssets, default_vendor
from dockyard.errors import InvalidParameter


def fake_vendor(root: Path) -> Path:
    for rel in VENDOR.values():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(f"/* {rel} */")
    return root


def test_ui_is_opt_in_by_flag_or_config_file(tmp_path: Path) -> None:
    assert daemon_config.load(None, {}).ui is False
    (tmp_path / "d.toml").write_text("ui = true\n")
    assert daemon_config.load(tmp_path / "d.toml", {}).ui is True
    assert daemon_config.load(None, {"ui": True}).ui is True


def test_missing_libraries_are_named_with_how_to_install_them(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameter) as caught:
        UiAssets.find(tmp_path / "node_modules")
    message = caught.value.message
    assert "preact/dist/preact.module.js" in message and "npm ci" in message and "contrib/setup.sh" in message


def test_the_default_place_is_beside_the_environment() -> None:
    assert default_vendor().parts[-4:] == ("share", "dockyard", "ui", "node_modules")


def test_the_import_map_is_allowed_by_its_hash_and_nothing_else_inline(tmp_path: Path) -> None:
    assets = UiAssets.find(fake_vendor(tmp_path / "node_modules"))
    page = assets.files["index.html"][0].decode()
    importmap = re.search(r'<script type="importmap">(.*?)</script>', page, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(importmap.encode()).digest()).decode()
    assert f"script-src 'self' 'sha256-{digest}';" in assets.csp
    assert "unsafe-inline" not in assets.csp.split("script-src")[1].split(";")[0]
    # every module the page imports is served: the map's targets are vendor files, the rest are page files
    for target in re.findall(r'"(/ui/vendor/[^"]+)"', page):
        assert target.removeprefix("/ui/vendor/") in VENDOR
    for name in re.findall(r'from "\./([^"]+)"', "".join(p.read_text() for p in STATIC.glob("*.js"))):
        assert name in assets.files


def test_files_are_served_by_name_only(tmp_path: Path) -> None:
    assets = UiAssets.find(fake_vendor(tmp_path / "node_modules"))

    async def main():
        async with TestClient(TestServer(make_app(object(), ui_assets=assets), host="127.0.0.1")) as client:
            out = {}
            for path in (
                "/ui",
                "/ui/",
                "/ui/app.js",
                "/ui/vendor/xterm.js",
                "/ui/vendor/..%2fpackage.json",
                "/ui/../openapi.json",
                "/ui/%2e%2e/__init__.py",
                "/ui/vendor/preact/dist/preact.module.js",
            ):
                response = await client.get(path, allow_redirects=False)
                out[path] = (response.status, response.headers.get("Content-Type", ""), await response.read())
            return out

    got = asyncio.run(main())
    assert got["/ui"][0] == 302
    assert got["/ui/"][0] == 200 and got["/ui/"][1].startswith("text/html")
    assert got["/ui/app.js"][0] == 200 and got["/ui/app.js"][1].startswith("text/javascript")
    assert got["/ui/vendor/xterm.js"] == (200, "text/javascript; charset=utf-8", b"/* @xterm/xterm/lib/xterm.js */")
    for path in ("/ui/vendor/..%2fpackage.json", "/ui/%2e%2e/__init__.py", "/ui/vendor/preact/dist/preact.module.js"):
        assert got[path][0] == 404, path


def test_without_the_ui_there_is_no_ui() -> None:
    async def main():
        async with TestClient(TestServer(make_app(object()), host="127.0.0.1")) as client:
            return (await client.get("/ui/")).status, (await client.get("/openapi.json")).status

    assert asyncio.run(main()) == (404, 200)
