"""Networks as the API shows them: the driver's (``bridge``, user networks) plus ``host`` and ``none``.

The predefined ``host`` and ``none`` networks are synthesised here; everything
else comes from the network driver's optional user-network hooks.  A driver
without them lists only the predefined networks and answers the rest with
:class:`~dockyard.errors.NotSupportedByDriver` (501).

Which networks a container is on is the container service's record (so a
connection made while it is stopped, or before its first start, holds at every
start); this service checks a request, asks the driver for running containers
and keeps that record.
"""

from __future__ import annotations

import builtins
import hashlib
import ipaddress
from typing import TYPE_CHECKING

from dockyard.errors import Conflict, Forbidden, InvalidParameter, NotFound, NotSupportedByDriver
from dockyard.filters import Filters
from dockyard.models.container import EndpointSettings
from dockyard.models.network import IPAMConfig, NetworkCreateRequest
from dockyard.timefmt import iso_now, parse_iso

if TYPE_CHECKING:
    from dockyard.containers import ContainerService
    from dockyard.drivers import NetworkDriver
    from dockyard.events import EventBus

PREDEFINED = ("bridge", "host", "none")


class NetworkService:
    """``/networks`` over the network driver.  Every method blocks: call it from a worker thread."""

    def __init__(self, driver: NetworkDriver, containers: ContainerService, events: EventBus | None = None) -> None:
        self.driver = driver
        self.containers = containers
        self.events = events
        # the Created of host and none: the daemon's start (the docker CLI parses it in `network ls`)
        started = iso_now()
        self._pseudo = [_pseudo("host", "host", started), _pseudo("none", "null", started)]

    def event(self, action: str, net: dict, **attributes: str) -> None:
        if self.events is not None:
            self.events.emit("network", action, net["Id"], {"name": net["Name"], "type": net["Driver"], **attributes})

    def _all(self) -> list[dict]:
        try:
            networks = self.driver.list()
        except NotSupportedByDriver:
            networks = []
        return [*networks, *self._pseudo]

    def list(self, filters: Filters | None = None) -> list[dict]:
        """``GET /networks`` with moby's filters (``name`` and ``id`` as regular expressions, ``driver``,
        ``label``, ``scope``, ``type`` builtin/custom, ``dangling``)."""
        filters = filters or Filters()
        for value in filters.get("type"):
            if value not in ("builtin", "custom"):
                raise InvalidParameter(f"invalid filter: 'type'='{value}'")
        dangling = filters.get("dangling")
        if len(dangling) > 1:
            raise InvalidParameter('got more than one value for filter key "dangling"')
        if dangling and dangling[0] not in ("0", "1", "true", "false"):
            raise InvalidParameter(
                'invalid value for filter \'dangling\', must be "true" (or "1"), or "false" (or "0")'
            )
        result = []
        for net in self._all():
            builtin = net["Name"] in PREDEFINED
            if not (
                filters.exact_match("driver", net["Driver"])
                and filters.match("name", net["Name"])
                and filters.match("id", net["Id"])
                and filters.match_kv_list("label", net.get("Labels"))
                and filters.exact_match("scope", net["Scope"])
            ):
                continue
            if dangling and (dangling[0] in ("1", "true")) != (not builtin and not self._users(net)):
                continue
            if filters.contains("type") and ("builtin" if builtin else "custom") not in filters.get("type"):
                continue
            result.append(net)
        return result

    @staticmethod
    def _users(net: dict) -> builtins.list[str]:
        """The running containers on a network (its endpoints): what keeps it from rm and prune, as in
        Docker (a stopped container keeps no endpoint)."""
        return list(net["Containers"])

    def inspect(self, ref: str, scope: str = "") -> dict:
        """A network by name, ID or unique ID prefix (and, with ``scope``, of that scope)."""
        networks = [n for n in self._all() if not scope or n["Scope"] == scope]
        for key in ("Name", "Id"):
            for net in networks:
                if net[key] == ref:
                    return net
        found = [n for n in networks if n["Id"].startswith(ref)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise InvalidParameter(f"network {ref} is ambiguous ({len(found)} matches found based on ID prefix)")
        raise NotFound(f"network {ref} not found")

    def create(self, request: NetworkCreateRequest) -> dict:
        """``POST /networks/create``: checks what Docker checks, then the driver makes it."""
        name = request.name
        if not name:
            raise InvalidParameter("network name must be given")
        if request.driver != "bridge":
            raise NotFound(f'plugin "{request.driver}" not found')
        if name in PREDEFINED:
            raise Forbidden(f"{name} is a pre-defined network and cannot be created")
        if any(n["Name"] == name for n in self._all()):
            raise Conflict(f"network with name {name} already exists")
        pools = request.ipam.config if request.ipam and request.ipam.config else []
        v4 = [p for p in pools if _version(p.subnet, "Subnet") == 4]
        v6 = [p for p in pools if _version(p.subnet, "Subnet") == 6]
        if len(v4) > 1 or len(v6) > 1:
            raise InvalidParameter("dockyard's bridge networks take at most one IPv4 and one IPv6 subnet")
        if v6 and not request.enable_ipv6:
            raise InvalidParameter("an IPv6 subnet needs EnableIPv6 (--ipv6)")
        for pool in pools:
            _check_pool(pool)
        created = self.driver.create(name, request.model_dump(mode="json", by_alias=True, exclude_none=True))
        self.event("create", created)
        return created

    def remove(self, ref: str) -> None:
        net = self.inspect(ref)
        if net["Name"] in PREDEFINED:
            raise Forbidden(f"{net['Name']} is a pre-defined network and cannot be removed")
        if self._users(net):
            raise Forbidden(f"error while removing network: network {net['Name']} id {net['Id']} has active endpoints")
        self.driver.delete(net["Name"])
        self.event("destroy", net)

    def connect(self, ref: str, container: str, settings: EndpointSettings) -> None:
        """``docker network connect``: a running container gets its interface now, a created or
        stopped one at its next start; either way it stays on the network across restarts."""
        net = self.inspect(ref)
        c = self.containers.get(container)
        self.containers.connect(c, net, settings)
        self.event("connect", net, container=c.id)

    def disconnect(self, ref: str, container: str, force: bool = False) -> None:
        net = self.inspect(ref)
        try:
            c = self.containers.get(container)
        except NotFound:
            if not force:
                raise
            return
        self.containers.disconnect(c, net, force)
        self.event("disconnect", net, container=c.id)

    def prune(self, filters: Filters | None = None) -> builtins.list[str]:
        """Remove every user network no container is on (created before ``until``, with the labels
        asked for); returns their names."""
        filters = filters or Filters()
        until = filters.until()
        deleted: builtins.list[str] = []
        for net in self.list():
            if net["Name"] in PREDEFINED or self._users(net):
                continue
            if until is not None and parse_iso(net["Created"]) >= until:
                continue
            if not filters.match_labels(net.get("Labels")):
                continue
            self.driver.delete(net["Name"])
            self.event("destroy", net)
            deleted.append(net["Name"])
        if self.events is not None:
            self.events.emit("network", "prune", "", {"reclaimed": "0"})
        return deleted


def _version(address: str, field: str) -> int:
    try:
        return ipaddress.ip_network(address, strict=False).version
    except ValueError:
        raise InvalidParameter(f"invalid IPAM {field}: {address!r}") from None


def _check_pool(pool: IPAMConfig) -> None:
    """Docker's IPAM checks: a gateway and ranges inside their subnet, of the same family."""
    if not pool.subnet:
        if pool.ip_range or pool.gateway or pool.auxiliary_addresses:
            raise InvalidParameter("an IP range, gateway or auxiliary address needs a subnet")
        return
    net = ipaddress.ip_network(pool.subnet, strict=False)
    if pool.ip_range:
        try:
            rng = ipaddress.ip_network(pool.ip_range, strict=False)
        except ValueError:
            raise InvalidParameter(f"invalid IPAM IPRange: {pool.ip_range!r}") from None
        if rng.version != net.version or not rng.subnet_of(net):  # type: ignore[arg-type]
            raise InvalidParameter(f"IP range {pool.ip_range} is not a subset of the subnet {pool.subnet}")
    addresses = ([("gateway", pool.gateway)] if pool.gateway else []) + [
        (f"auxiliary address {k}", v) for k, v in (pool.auxiliary_addresses or {}).items()
    ]
    for what, value in addresses:
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            raise InvalidParameter(f"invalid {what}: {value!r}") from None
        if address not in net:
            raise InvalidParameter(f"{what} {value} is not in the subnet {pool.subnet}")


def _pseudo(name: str, driver: str, created: str) -> dict:
    return {
        "Name": name,
        "Id": hashlib.sha256(f"dockyard-{name}".encode()).hexdigest(),
        "Created": created,
        "Scope": "local",
        "Driver": driver,
        "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": None, "Config": []},
        "Internal": False,
        "Attachable": False,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": {},
        "Options": {},
        "Labels": {},
    }
