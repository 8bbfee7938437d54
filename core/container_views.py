"""Read views of containers: ``inspect``, ``ps`` rows, their port and status text, ``ps`` filters.

Pure functions of a :class:`~dockyard.containers.Container` record and the few
live facts the container service looks up for them (network settings, paths),
so the state machine in :mod:`dockyard.containers` stays about state.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.errors import InvalidParameter
from dockyard.filters import Filters
from dockyard.models.container import ContainerState
from dockyard.models.network import empty_endpoint
from dockyard.timefmt import NEVER, human_duration, parse_iso, to_unix

if TYPE_CHECKING:
    from dockyard.containers import Container

__all__ = ["Selection", "VALID_STATES", "inspect", "network_settings", "ps_ports", "select", "status_text", "summary"]

#: NetworkSettings of a container the network driver says nothing about (not running)
_EMPTY_NETWORK_SETTINGS: dict[str, Any] = {
    "Bridge": "",
    "SandboxID": "",
    "HairpinMode": False,
    "LinkLocalIPv6Address": "",
    "LinkLocalIPv6PrefixLen": 0,
    "Ports": {},
    "SandboxKey": "",
    "SecondaryIPAddresses": None,
    "SecondaryIPv6Addresses": None,
    "EndpointID": "",
    "Gateway": "",
    "GlobalIPv6Address": "",
    "GlobalIPv6PrefixLen": 0,
    "IPAddress": "",
    "IPPrefixLen": 0,
    "IPv6Gateway": "",
    "MacAddress": "",
    "Networks": {},
}


def inspect(
    c: Container, directory: Path, log_path: Path | None, settings: dict, sizes: tuple[int, int] | None = None
) -> dict:
    """``GET /containers/{id}/json``; ``settings`` are the network driver's (empty when not running);
    ``sizes`` (SizeRw, SizeRootFs) with ``?size=1``; no ``log_path`` for a container that keeps no log
    (``--log-driver none``: Docker's LogPath is "")."""
    data = {
        "Id": c.id,
        "Created": c.created,
        "Path": c.path,
        "Args": c.args,
        "State": c.state.api(),
        "Image": "sha256:" + c.image_id,
        "ResolvConfPath": str(directory / "resolv.conf"),
        "HostnamePath": str(directory / "hostname"),
        "HostsPath": str(directory / "hosts"),
        "LogPath": str(log_path) if log_path is not None else "",
        "Name": "/" + c.name,
        "RestartCount": c.restart_count,
        "Driver": c.storage_driver,
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": c.host_config.api(),
        "GraphDriver": {"Name": c.storage_driver, "Data": {}},
        "Mounts": [m.api() for m in c.mounts],
        "Config": c.config.api(),
        "NetworkSettings": network_settings(settings, c),
    }
    if sizes is not None:
        data["SizeRw"], data["SizeRootFs"] = sizes
    return data


def network_settings(settings: dict, c: Container | None = None) -> dict:
    """The driver's view of a running container; for one that is not running, the networks it is
    on with empty addresses, as Docker shows them."""
    merged = {**_EMPTY_NETWORK_SETTINGS, **settings}
    if c is not None and not settings:
        merged["Networks"] = {
            name: {
                **empty_endpoint(),
                "Aliases": (endpoint.get("Aliases") or None),
                "IPAMConfig": endpoint.get("IPAMConfig"),
                "Links": endpoint.get("Links"),
            }
            for name, endpoint in c.networks().items()
        }
    return merged


@dataclass
class Selection:
    """What ``GET /containers/json`` asks for, with the facts its filters need from other services."""

    all: bool = False
    limit: int = -1
    filters: Filters = field(default_factory=Filters)
    #: image IDs the ``ancestor`` filter stands for (each given image and its descendants); None: no filter
    ancestors: set[str] | None = None
    #: container -> its ps port rows (``publish`` / ``expose`` filters)
    ports: Callable[[Container], list[dict]] = lambda c: []
    #: container -> {network name: network ID} (``network`` filter)
    networks: Callable[[Container], dict[str, str]] = lambda c: {}


def select(
    containers: Iterable[Container], selection: Selection, resolve: Callable[[str], Container]
) -> list[Container]:
    """The containers ``docker ps`` lists, newest first, with moby's rules: running ones unless ``all``,
    a ``limit`` or a ``status`` filter; ``before``/``since`` by creation order; each filter key must hold."""
    f = selection.filters
    show_all = selection.all or f.contains("status")
    f.one_of("status", VALID_STATES)
    f.one_of("health", ("starting", "healthy", "unhealthy", "none"), "Unrecognised filter value for health: {}")
    is_task = f.bool_value("is-task")
    exited = []
    for value in f.get("exited"):
        try:
            exited.append(int(value))
        except ValueError:
            raise InvalidParameter(f"Invalid filter 'exited={value}'") from None
    publish, expose = _port_filter(f, "publish"), _port_filter(f, "expose")
    before = [resolve(v) for v in f.get("before")][-1:] or None
    since = [resolve(v) for v in f.get("since")][-1:] or None
    result: list[Container] = []
    items = sorted(containers, key=lambda c: (c.created, c.id), reverse=True)
    waiting_for = before[0].id if before else None
    for c in items:
        if waiting_for is not None:
            if c.id == waiting_for:
                waiting_for = None
            continue
        if since is not None and c.id == since[0].id:
            break
        if not c.state.running and not show_all and selection.limit <= 0:
            continue
        if not (f.match("name", "/" + c.name) or f.match("name", c.name)) or not f.match("id", c.id):
            continue
        if is_task is True or not f.match_kv_list("label", c.config.labels):
            continue  # no container here is a swarm task
        if not f.match("isolation", "default"):
            continue
        if 0 < selection.limit <= len(result):
            break
        if exited and not (not c.state.running and c.state.started_at != NEVER and c.state.exit_code in exited):
            continue
        if not f.match("status", c.state.status):
            continue
        if not f.exact_match("health", c.state.health.status if c.state.health else "none"):
            continue
        if f.contains("volume") and not any(
            v in (m.destination, m.name or m.source) for m in c.mounts for v in f.get("volume")
        ):
            continue
        if selection.ancestors is not None and c.image_id not in selection.ancestors:
            continue
        if f.contains("network"):
            networks = selection.networks(c)
            if not any(v in networks or any(i.startswith(v) for i in networks.values() if i) for v in f.get("network")):
                continue
        if publish or expose:
            rows = selection.ports(c)
            if not any(
                f"{r.get('PublicPort')}/{r['Type']}" in publish or f"{r['PrivatePort']}/{r['Type']}" in expose
                for r in rows
            ):
                continue
        result.append(c)
    return result


#: container states a ``status`` filter may name (moby's ``IsValidStateString``)
VALID_STATES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")


def _port_filter(f: Filters, key: str) -> set[str]:
    """``publish=80``, ``publish=8000-8080/udp``... as the set of ``port/proto`` they cover."""
    ports: set[str] = set()
    for value in f.get(key):
        if ":" in value:
            raise InvalidParameter(f"filter for '{key}' should not contain ':': {value}")
        port, _, proto = value.partition("/")
        low, _, high = port.partition("-")
        try:
            start, end = int(low), int(high or low)
        except ValueError:
            raise InvalidParameter(f"error while looking up for {key} {value}: invalid port") from None
        if not 0 < start <= end <= 65535:
            raise InvalidParameter(f"error while looking up for {key} {value}: invalid port range")
        ports.update(f"{p}/{proto or 'tcp'}" for p in range(start, end + 1))
    return ports


def summary(c: Container, ports: list[dict], settings: dict | None = None) -> dict:
    """One row of ``GET /containers/json``."""
    return {
        "Id": c.id,
        "Names": ["/" + c.name],
        "Image": c.image_ref,
        "ImageID": "sha256:" + c.image_id,
        "Command": " ".join(shlex.quote(a) if " " in a or not a else a for a in [c.path, *c.args]),
        "Created": to_unix(c.created),
        "Ports": ports,
        "Labels": c.config.labels or {},
        "State": c.state.status,
        "Status": status_text(c.state),
        "HostConfig": {"NetworkMode": c.host_config.network_mode},
        "NetworkSettings": {"Networks": network_settings(settings or {}, c)["Networks"]},
        "Mounts": [m.api() for m in c.mounts],
    }


def ps_ports(ports: dict[str, list[dict] | None]) -> list[dict]:
    """``NetworkSettings.Ports`` (``{"80/tcp": [{"HostIp", "HostPort"}]}``) as ``ps`` lists them."""
    result = []
    for key, bindings in ports.items():
        private, _, proto = key.partition("/")
        unpublished: list[dict | None] = [None]
        for binding in bindings or unpublished:
            item: dict[str, Any] = {"PrivatePort": int(private), "Type": proto}
            if binding:
                item.update({"IP": binding.get("HostIp") or "0.0.0.0", "PublicPort": int(binding["HostPort"])})
            result.append(item)
    return result


def status_text(state: ContainerState) -> str:
    """The human ``Status`` column of ``docker ps`` (moby's ``State.String``)."""
    now = time.time()
    if state.running:
        text = f"Up {human_duration(now - parse_iso(state.started_at))}"
        if state.paused:
            return text + " (Paused)"
        if state.health is not None:
            status = state.health.status
            return text + (" (health: starting)" if status == "starting" else f" ({status})")
        return text
    if state.restarting:
        return f"Restarting ({state.exit_code}) {human_duration(now - parse_iso(state.finished_at))} ago"
    if state.status == "created":
        return "Created"
    if state.finished_at == NEVER:
        return f"Exited ({state.exit_code})"
    return f"Exited ({state.exit_code}) {human_duration(now - parse_iso(state.finished_at))} ago"
