"""Read views of containers: ``inspect``, ``ps`` rows, their port and status text, ``ps`` filters.

Pure functions of a :class:`~dockyard.containers.Container` record and the few
live facts the container service looks up for them (network settings, paths),
so the state machine in :mod:`dockyard.containers` stays about state.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.models.container import ContainerState
from dockyard.timefmt import NEVER, human_duration, parse_iso, to_unix

if TYPE_CHECKING:
    from dockyard.containers import Container

__all__ = ["inspect", "matches", "network_settings", "ps_ports", "select", "status_text", "summary"]

#: NetworkSettings of a container the network driver says nothing about (not running)
_EMPTY_NETWORK_SETTINGS: dict[str, Any] = {
    "Bridge": "", "SandboxID": "", "HairpinMode": False, "LinkLocalIPv6Address": "",
    "LinkLocalIPv6PrefixLen": 0, "Ports": {}, "SandboxKey": "", "SecondaryIPAddresses": None,
    "SecondaryIPv6Addresses": None, "EndpointID": "", "Gateway": "", "GlobalIPv6Address": "",
    "GlobalIPv6PrefixLen": 0, "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "",
    "Networks": {},
}


def inspect(c: Container, directory: Path, log_path: Path | None, settings: dict) -> dict:
    """``GET /containers/{id}/json``; ``settings`` are the network driver's (empty when not running), no
    ``log_path`` for a container that keeps no log (``--log-driver none``: Docker's LogPath is "")."""
    return {
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
        "NetworkSettings": network_settings(settings),
    }


def network_settings(settings: dict) -> dict:
    return {**_EMPTY_NETWORK_SETTINGS, **settings}


def select(containers: Iterable[Container], all_containers: bool = False, limit: int = -1,
           filters: dict[str, list[str]] | None = None, latest: bool = False) -> list[Container]:
    """The containers ``docker ps`` lists, newest first: running ones unless ``all``, a limit or a
    filter widens the choice, as Docker does."""
    filters = filters or {}
    items = sorted(containers, key=lambda c: c.created, reverse=True)
    if not all_containers and limit <= 0 and not latest and not filters:
        items = [c for c in items if c.state.running]
    items = [c for c in items if matches(c, filters)]
    if latest:
        items = items[:1]
    if limit > 0:
        items = items[:limit]
    return items


def summary(c: Container, ports: list[dict]) -> dict:
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
        "NetworkSettings": {"Networks": {}},
        "Mounts": [m.api() for m in c.mounts],
    }


def ps_ports(ports: dict[str, list[dict] | None]) -> list[dict]:
    """``NetworkSettings.Ports`` (``{"80/tcp": [{"HostIp", "HostPort"}]}``) as ``ps`` lists them."""
    result = []
    for key, bindings in ports.items():
        private, _, proto = key.partition("/")
        for binding in bindings or [None]:
            item: dict[str, Any] = {"PrivatePort": int(private), "Type": proto}
            if binding:
                item.update({"IP": binding.get("HostIp") or "0.0.0.0", "PublicPort": int(binding["HostPort"])})
            result.append(item)
    return result


def status_text(state: ContainerState) -> str:
    """The human ``Status`` column of ``docker ps``."""
    now = time.time()
    if state.running:
        text = f"Up {human_duration(now - parse_iso(state.started_at))}"
        return text + " (Paused)" if state.paused else text
    if state.status == "created":
        return "Created"
    if state.finished_at == NEVER:
        return f"Exited ({state.exit_code})"
    return f"Exited ({state.exit_code}) {human_duration(now - parse_iso(state.finished_at))} ago"


def matches(c: Container, filters: dict[str, list[str]]) -> bool:
    """Whether a container passes ``ps`` filters (each key: any of its values)."""
    for key, values in filters.items():
        if not values:
            continue
        if key == "status" and c.state.status not in values:
            return False
        if key == "name" and not any(v.lstrip("/") in c.name for v in values):
            return False
        if key == "id" and not any(c.id.startswith(v) for v in values):
            return False
        if key == "exited" and not (c.state.status == "exited" and str(c.state.exit_code) in values):
            return False
        if key == "label":
            labels = c.config.labels or {}
            for v in values:
                k, _, val = v.partition("=")
                if k not in labels or (val and labels[k] != val):
                    return False
        if key == "ancestor" and not any(v in (c.image_ref, c.image_id, "sha256:" + c.image_id) for v in values):
            return False
    return True
