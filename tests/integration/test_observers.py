"""Observers end to end: the example webhook notifier (examples/dockyard-webhook-notifier) in a real
daemon, found through its ``dockyard.observers`` entry point, posting to a server on loopback."""

from __future__ import annotations

import json
import os
import queue
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.helpers.daemon import busybox_rootfs_tar, out, remove_bridge, start_daemon
from tests.helpers.plugins import fake_distribution
from tests.helpers.waiting import wait_for

pytestmark = [pytest.mark.requires_root, pytest.mark.requires_lxc, pytest.mark.integration]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "dockyard-webhook-notifier"


@pytest.fixture
def webhook():
    """A loopback HTTP server; yields (url, queue of (path, headers, JSON body))."""
    received: queue.Queue = queue.Queue()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.put((self.path, dict(self.headers), json.loads(body)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def test_the_webhook_notifier_sees_containers_start_and_die(tmp_path, webhook):
    url, received = webhook
    site = fake_distribution(
        tmp_path / "site", "dockyard-webhook-notifier", {"dockyard.observers": {"webhook": "dockyard_webhook_notifier"}}
    )
    path = os.pathsep.join([str(site), str(EXAMPLE), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    root = tmp_path / "daemon"
    root.mkdir()
    d = start_daemon(
        root,
        extra=("--observer-opt", f"webhook-url={url}", "--observer-opt", "webhook-token=s3cret"),
        env={"PYTHONPATH": path},
    )
    try:
        out(d.dockyard("import", "-", "busybox:latest", input=busybox_rootfs_tar()))
        result = d.dockyard("run", "--name", "observed", "busybox", "sh", "-c", "exit 5")
        assert result.returncode == 5, result.stderr.decode()
        cid = json.loads(out(d.dockyard("inspect", "observed")))[0]["Id"]
        posts: list = []

        def two_posts() -> list:
            while not received.empty():
                posts.append(received.get_nowait())
            return posts if len(posts) >= 2 else []

        assert wait_for(two_posts, timeout=15), posts
        assert {p for p, _, _ in posts} == {"/hook"}
        assert {h["Authorization"] for _, h, _ in posts} == {"Bearer s3cret"}
        started, died = (body for _, _, body in posts)
        assert started["event"] == "container_started" and started["container_id"] == cid and started["pid"] > 1
        assert died == {"event": "container_died", "container_id": cid, "exit_code": 5, "time": died["time"]}
        assert "webhook" in (root / "data" / "dockyard.log").read_text()  # the daemon logged its observers
    finally:
        d.dockyard("rm", "-f", "observed")
        d.stop()
        remove_bridge(root)
        shutil.rmtree(root, ignore_errors=True)
