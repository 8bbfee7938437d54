"""Networks as the API shows them: the driver's (``bridge``, user networks) plus ``host`` and ``none``.

The predefined ``host`` and ``none`` networks are synthesised here; everything
else comes from the network driver's optional user-network hooks.  A driver
without them lists only the predefined networks and answers the rest with
:class:`~dockyard.errors.NotSupportedByDriver` (501).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from dockyard.errors import Forbidden, InvalidParameter, NotFound, NotSupportedByDriver
from dockyard.timefmt import iso_now

if TYPE_CHECKING:
    from dockyard.containers import ContainerService
    from dockyard.drivers import NetworkDriver

PREDEFINED = ("bridge", "host", "none")


class NetworkService:
    """``/networks`` over the network driver.  Every method blocks: call it from a worker thread."""

    def __init__(self, driver: NetworkDriver, containers: ContainerService) -> None:
        self.driver = driver
        self.containers = containers
        # the Created of host and none: the daemon's start (the docker CLI parses it in `network ls`)
        started = iso_now()
        self._pseudo = [_pseudo("host", "host", started), _pseudo("none", "null", started)]

    def list(self, filters: dict[str, list[str]] | None = None) -> list[dict]:
        try:
            networks = self.driver.list()
        except NotSupportedByDriver:
            networks = []
        return [n for n in [*networks, *self._pseudo] if _matches(n, filters or {})]

    def inspect(self, ref: str) -> dict:
        """A network by name, ID or unique ID prefix."""
        networks = self.list()
        for key in ("Name", "Id"):
            for net in networks:
                if net[key] == ref:
                    return net
        found = [n for n in networks if n["Id"].startswith(ref)]
        if len(found) == 1:
            return found[0]
        raise NotFound(f"network {ref} not found")

    def create(self, name: str, options: dict) -> dict:
        """``POST /networks/create``; ``options`` is the request body (the driver reads what it supports)."""
        if not name:
            raise InvalidParameter("network name must be given")
        driver = options.get("Driver") or "bridge"
        if driver != "bridge":
            raise InvalidParameter(f'plugin "{driver}" not found')
        if name in PREDEFINED:
            raise Forbidden(f"{name} is a pre-defined network and cannot be created")
        return self.driver.create(name, options)

    def remove(self, ref: str) -> None:
        net = self.inspect(ref)
        if net["Name"] in PREDEFINED:
            raise Forbidden(f"{net['Name']} is a pre-defined network and cannot be removed")
        self.driver.delete(net["Name"])

    def connect(self, ref: str, container: str, aliases: list[str]) -> None:
        net = self.inspect(ref)
        self.driver.connect(self.containers.get(container).id, net["Name"], aliases)

    def disconnect(self, ref: str, container: str) -> None:
        net = self.inspect(ref)
        self.driver.disconnect(self.containers.get(container).id, net["Name"])

    def prune(self) -> list[str]:
        """Remove every user network without containers; returns their names."""
        deleted = []
        for net in self.list():
            if net["Name"] in PREDEFINED or net["Containers"]:
                continue
            self.driver.delete(net["Name"])
            deleted.append(net["Name"])
        return deleted


def _pseudo(name: str, driver: str, created: str) -> dict:
    return {"Name": name, "Id": hashlib.sha256(f"dockyard-{name}".encode()).hexdigest(), "Created": created,
            "Scope": "local", "Driver": driver, "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": None, "Config": []}, "Internal": False, "Attachable": False,
            "Ingress": False, "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Containers": {},
            "Options": {}, "Labels": {}}


def _matches(net: dict, filters: dict[str, list[str]]) -> bool:
    for key, values in filters.items():
        if not values:
            continue
        if key == "name" and not any(v in net["Name"] for v in values):
            return False
        if key == "id" and not any(net["Id"].startswith(v) for v in values):
            return False
        if key == "driver" and net["Driver"] not in values:
            return False
        if key == "type" and ("builtin" if net["Name"] in PREDEFINED else "custom") not in values:
            return False
        if key == "label":
            labels = net.get("Labels") or {}
            for v in values:
                k, _, val = v.partition("=")
                if k not in labels or (val and labels[k] != val):
                    return False
    return True
