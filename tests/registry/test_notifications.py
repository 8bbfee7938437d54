"""Notifications: push, pull and delete events POSTed to a loopback webhook, retried while it fails,
and a bounded queue while it is down."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.helpers.daemon import free_port
from tests.helpers.registry import start_registry
from tests.helpers.waiting import wait_for
from dockyard.oci import DOCKER_MANIFEST
from tests.helpers.registry import push_image
from tests.helpers.images import layer_tar


class Receiver:
    """A webhook endpoint on loopback that answers 503 to its first ``fail`` deliveries, and with ``hold``
    keeps every delivery waiting until ``release`` is set."""

    def __init__(self, fail: int = 0, hold: bool = False) -> None:
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.envelopes: list[dict] = []
        self.headers: list[dict] = []
        self.attempts = 0
        self.fail = fail
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.attempts += 1
                outer.release.wait(60)
                if outer.attempts <= outer.fail:
                    self.send_response(503)
                else:
                    outer.envelopes.append(json.loads(body))
                    outer.headers.append(dict(self.headers))
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/events"

    @property
    def events(self) -> list[dict]:
        return [e for envelope in self.envelopes for e in envelope["events"]]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_events_reach_the_webhook_after_retries(tmp_path):
    receiver = Receiver(fail=2)
    settings = {
        "notifications": {
            "endpoints": [
                {
                    "name": "audit",
                    "url": receiver.url,
                    "backoff": 0.1,
                    "retries": 3,
                    "headers": {"Authorization": "Bearer hook-token"},
                }
            ]
        }
    }
    registry = start_registry(tmp_path / "reg", settings=settings)
    try:
        with httpx.Client(base_url=registry.url) as http:
            manifest, digest = push_image(http, "notify/app", "v1", [layer_tar({"n": b"1"})])
            assert http.get("/v2/notify/app/manifests/v1", headers={"Accept": DOCKER_MANIFEST}).status_code == 200
            assert http.delete(f"/v2/notify/app/manifests/{digest}").status_code == 202
        assert wait_for(lambda: any(e["action"] == "delete" for e in receiver.events))
        assert receiver.attempts >= 3  # two refusals, then delivered
        by_action = {}
        for event in receiver.events:
            by_action.setdefault(event["action"], []).append(event)
        [manifest_push] = [e for e in by_action["push"] if e["target"]["mediaType"] == DOCKER_MANIFEST]
        assert manifest_push["target"] == {
            "mediaType": DOCKER_MANIFEST,
            "digest": digest,
            "repository": "notify/app",
            "url": f"{registry.url}/v2/notify/app/manifests/{digest}",
            "size": len(manifest),
            "length": len(manifest),
            "tag": "v1",
        }
        assert len(by_action["push"]) == 3  # and the config and layer blobs
        assert by_action["pull"][0]["target"]["tag"] == "v1"
        assert by_action["delete"][0]["target"]["digest"] == digest
        assert manifest_push["request"]["method"] == "PUT" and manifest_push["source"]["instanceID"]
        assert receiver.headers[0]["Content-Type"] == "application/vnd.docker.distribution.events.v1+json"
        assert receiver.headers[0]["Authorization"] == "Bearer hook-token"
    finally:
        registry.stop()
        receiver.close()


def test_a_stuck_endpoint_costs_a_bounded_queue(tmp_path):
    """While a delivery hangs, new events wait in a queue of ``queue_size``: the oldest are dropped, the
    newest reach the receiver once it answers again."""
    receiver = Receiver(hold=True)
    settings = {
        "notifications": {
            "queue_size": 3,
            "endpoints": [{"name": "stuck", "url": receiver.url, "timeout": 60, "actions": ["pull"]}],
        }
    }
    registry = start_registry(tmp_path / "reg", settings=settings)
    try:
        with httpx.Client(base_url=registry.url) as http:
            push_image(http, "notify/queue", "v1", [layer_tar({"q": b"1"})])

            def pull(n: int) -> None:
                assert http.get("/v2/notify/queue/manifests/v1", headers={"X-Request-Id": str(n)}).status_code == 200

            pull(0)
            assert wait_for(lambda: receiver.attempts == 1)  # event 0 is being delivered, and hangs
            for n in range(1, 11):
                pull(n)
            receiver.release.set()
            assert wait_for(lambda: len(receiver.events) == 4)
            pull(11)
            assert wait_for(lambda: len(receiver.events) == 5)
        assert [e["request"]["id"] for e in receiver.events] == ["0", "8", "9", "10", "11"]
        assert all(e["action"] == "pull" for e in receiver.events)  # pushes were not asked for
    finally:
        registry.stop()
        receiver.close()


def test_notification_settings_are_checked():
    from dockyard.registry.config import RegistryConfig

    with pytest.raises(ValueError, match="actions"):
        RegistryConfig.model_validate(
            {"notifications": {"endpoints": [{"name": "x", "url": "http://h/", "actions": ["explode"]}]}}
        )
    with pytest.raises(ValueError, match="queue_size"):
        RegistryConfig.model_validate({"notifications": {"queue_size": 0}})
