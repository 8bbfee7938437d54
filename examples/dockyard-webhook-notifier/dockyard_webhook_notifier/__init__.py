"""A dockyard observer that POSTs each container start and death, and each image push, to a webhook.

Configure it with the daemon's ``--observer-opt webhook-url=http://host:port/path`` (and
optionally ``--observer-opt webhook-token=SECRET``, sent as ``Authorization: Bearer``), or the
``DOCKYARD_WEBHOOK_URL`` / ``DOCKYARD_WEBHOOK_TOKEN`` environment variables.  Without a URL it
does nothing.

Every request is one JSON object::

    {"event": "container_died", "container_id": "3f1c...", "exit_code": 0, "time": "2026-...Z"}

dockyard calls observers from a worker thread of their own, so a slow webhook never stalls the
daemon; a failing one is logged by dockyard and the next event is tried again.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from typing import Any

from dockyard import hookimpl
from dockyard.timefmt import iso_now

log = logging.getLogger(__name__)

TIMEOUT = 5.0
_settings: dict[str, str] = {}


@hookimpl
def daemon_configured(config: Any) -> None:
    """Read the webhook's settings from ``--observer-opt`` (historic: called once at start)."""
    options = dict(getattr(config, "observer_opts", None) or {})
    for key, variable in (("webhook-url", "DOCKYARD_WEBHOOK_URL"), ("webhook-token", "DOCKYARD_WEBHOOK_TOKEN")):
        value = options.get(key) or os.environ.get(variable, "")
        if value:
            _settings[key] = value
    if _settings.get("webhook-url"):
        log.info("webhook notifier: posting events to %s", _settings["webhook-url"])


@hookimpl
def container_started(container_id: str, pid: int) -> None:
    _post({"event": "container_started", "container_id": container_id, "pid": pid})


@hookimpl
def container_died(container_id: str, exit_code: int) -> None:
    _post({"event": "container_died", "container_id": container_id, "exit_code": exit_code})


@hookimpl
def image_pushed(reference: str, digest: str) -> None:
    _post({"event": "image_pushed", "reference": reference, "digest": digest})


def _post(payload: dict[str, Any]) -> None:
    url = _settings.get("webhook-url") or os.environ.get("DOCKYARD_WEBHOOK_URL")
    if not url:
        return
    headers = {"Content-Type": "application/json", "User-Agent": "dockyard-webhook-notifier/0.1"}
    token = _settings.get("webhook-token") or os.environ.get("DOCKYARD_WEBHOOK_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps({**payload, "time": iso_now()}).encode()
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # errors: dockyard logs them
        response.read()
