"""``dockyard ui``: the UI of a daemon on a unix socket, through a loopback port with a random token."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.helpers.browser import Browser
from tests.helpers.daemon import TcpDaemon, busybox_rootfs_tar

pytestmark = [pytest.mark.requires_root, pytest.mark.requires_lxc, pytest.mark.integration]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003
        return None


def fetch(
    url: str, headers: dict[str, str] | None = None, data: bytes | None = None, method: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.fixture(scope="module")
def proxy(ui_daemon: TcpDaemon) -> Iterator[tuple[str, str, str]]:
    """(base URL, token, cookie header) of a running ``dockyard ui`` for the daemon's unix socket."""
    process = subprocess.Popen(
        [sys.executable, "-m", "dockyard.cli", "-H", ui_daemon.host, "ui", "--no-browser"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+)/\?token=(\S+)", line)
        assert match, (line, process.stderr.read() if process.poll() is not None else "")
        base, token = match.groups()
        status, headers, _ = fetch(f"{base}/?token={token}")
        assert status == 302 and headers["Location"] == "/ui/"
        cookie = headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        yield base, token, cookie.split(";")[0]
    finally:
        process.terminate()
        process.wait(10)


def test_only_the_token_holder_gets_through(proxy) -> None:
    base, token, cookie = proxy
    assert fetch(base + "/ui/")[0] == 403  # no cookie
    assert fetch(base + "/?token=" + "x" * len(token))[0] == 403  # a wrong token
    assert fetch(base + "/v1.41/containers/json", {"Cookie": "dockyard_ui=nope"})[0] == 403
    status, headers, body = fetch(base + "/ui/", {"Cookie": cookie})
    assert status == 200 and b"<title>dockyard</title>" in body
    assert "default-src 'self'" in headers["Content-Security-Policy"]  # the daemon's own headers come through
    status, _, body = fetch(base + "/v1.41/version", {"Cookie": cookie})
    assert status == 200 and json.loads(body)["ApiVersion"] == "1.41"


def test_host_and_origin_must_be_the_proxys_own(proxy) -> None:
    base, _, cookie = proxy
    port = base.rsplit(":", 1)[1]
    assert fetch(base + "/v1.41/version", {"Cookie": cookie, "Host": f"rebound.example:{port}"})[0] == 403
    body = json.dumps({"Image": "busybox:latest", "Cmd": ["true"]}).encode()
    for origin, expected in (("http://evil.example", 403), (f"http://localhost:{port}", 403)):
        status, _, _ = fetch(
            base + "/v1.41/containers/create",
            {"Cookie": cookie, "Origin": origin, "Content-Type": "application/json"},
            body,
        )
        assert status == expected, origin
    status, _, answer = fetch(
        base + "/v1.41/containers/create?name=via-proxy",
        {"Cookie": cookie, "Origin": base, "Content-Type": "application/json"},
        body,
    )
    assert status == 201, answer
    assert (
        fetch(base + "/v1.41/containers/via-proxy?force=1", {"Cookie": cookie, "Origin": base}, method="DELETE")[0]
        == 204
    )


def test_the_ui_through_the_proxy_runs_a_terminal(ui_daemon: TcpDaemon, browser: Browser, proxy) -> None:
    base, token, _ = proxy
    result = ui_daemon.dockyard("run", "-d", "--name", "proxied", "busybox:latest", "sleep", "600")
    if result.returncode != 0:
        assert ui_daemon.dockyard("import", "-", "busybox:latest", input=busybox_rootfs_tar()).returncode == 0
        result = ui_daemon.dockyard("run", "-d", "--name", "proxied", "busybox:latest", "sleep", "600")
    assert result.returncode == 0, result.stderr.decode()
    b = browser
    b.driver.get(f"{base}/?token={token}")
    b.wait(
        lambda: [r for r in b.find_all('[data-test="container-row"]') if r.get_attribute("data-name") == "proxied"],
        what="the container listed through the proxy",
    )[0].find_element("css selector", "a").click()
    b.click("tab-terminal")
    b.wait(lambda: b.text("terminal-status") == "connected", what="the websocket through the proxy")
    b.wait(lambda: "#" in b.find(".xterm-rows").text, what="the prompt")
    b.find(".xterm-helper-textarea").send_keys("echo via-$((40+2))\n")
    b.wait(lambda: "via-42" in b.find(".xterm-rows").text, what="output through the proxy")
    b.screenshot("20-dockyard-ui-proxy-terminal")


def test_a_daemon_without_the_ui_is_an_error(tmp_path) -> None:
    """The proxy asks the daemon for /ui/ first; a daemon without --ui answers 404 (served here by a stand-in)."""
    import socket
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"message":"page not found"}')

        def log_message(self, *args) -> None:  # noqa: ANN002
            pass

    class UnixServer(HTTPServer):
        address_family = socket.AF_UNIX

        def server_bind(self) -> None:
            self.socket.bind(self.server_address)

        def get_request(self):  # noqa: ANN201
            conn, _ = self.socket.accept()
            return conn, ("local", 0)

    path = str(tmp_path / "d.sock")
    server = UnixServer(path, Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "dockyard.cli", "-H", f"unix://{path}", "ui", "--no-browser"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        server.shutdown()
    assert done.returncode == 1
    assert "does not serve the web UI: start it with `dockyard daemon --ui`" in done.stderr
