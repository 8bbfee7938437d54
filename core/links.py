"""Legacy container links (``docker run --link name:alias``), as Docker makes them.

A link is stored in the parent's ``HostConfig.Links`` as ``/<child>:/<parent>/<alias>``
(what Docker's inspect shows).  At each start of the parent the child must be
running; the parent then gets an ``/etc/hosts`` line ``<child ip> <alias>
<child hostname> <child name>`` and, on the default bridge, the environment
variables ``ALIAS_PORT``, ``ALIAS_PORT_80_TCP``..., ``ALIAS_NAME`` and
``ALIAS_ENV_<child env>`` (moby ``daemon/links``).  ``DELETE
/containers/<parent>/<alias>?link=1`` removes one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dockyard.errors import InvalidParameter, NotFound

if TYPE_CHECKING:
    from dockyard.containers import Container

__all__ = ["env", "hosts_line", "normalize", "parse"]


def normalize(spec: str, get: Callable[[str], Any]) -> tuple[str, str]:
    """``name[:alias]`` as given to ``--link`` -> (the child's name, the alias); the child must exist."""
    name, _, alias = spec.partition(":")
    name = name.strip("/")
    if not name:
        raise InvalidParameter(f"invalid link: {spec!r}")
    try:
        child = get(name)
    except NotFound as exc:
        raise InvalidParameter(f"could not get container for {name}: {exc.message}") from None
    alias = alias.strip("/").rsplit("/", 1)[-1] or child.name
    return child.name, alias


def parse(stored: str) -> tuple[str, str]:
    """``/<child>:/<parent>/<alias>`` -> (child, alias)."""
    child, _, full = stored.partition(":")
    return child.lstrip("/"), full.rsplit("/", 1)[-1]


def hosts_line(ip: str, alias: str, child: Container) -> str:
    names = [alias, child.config.hostname]
    if alias != child.name:
        names.append(child.name)
    return f"{ip}\t{' '.join(dict.fromkeys(n for n in names if n))}"


def _port_key(port: str) -> tuple[int, int]:
    number, _, proto = port.partition("/")
    return int(number.split("-")[0]), 0 if (proto or "tcp").lower() == "tcp" else 1


def env(parent_name: str, alias: str, child: Container, ip: str) -> list[str]:
    """The variables a link gives its parent (moby ``links.Link.ToEnv``)."""
    prefix = alias.upper().replace("-", "_")
    ports = sorted(((p if "/" in p else f"{p}/tcp") for p in (child.config.exposed_ports or {})), key=_port_key)
    result = []
    if ports:
        number, _, proto = ports[0].partition("/")
        result.append(f"{prefix}_PORT={proto}://{ip}:{number}")
    i = 0
    while i < len(ports):  # contiguous runs also get _START / _END variables
        j = i
        while j + 1 < len(ports) and _port_key(ports[j + 1])[0] == _port_key(ports[j])[0] + 1:
            j += 1
        if j > i:
            first, proto = ports[i].split("/")
            last, last_proto = ports[j].split("/")
            up = proto.upper()
            result += [
                f"{prefix}_PORT_{first}_{up}_START={proto}://{ip}:{first}",
                f"{prefix}_PORT_{first}_{up}_ADDR={ip}",
                f"{prefix}_PORT_{first}_{up}_PROTO={proto}",
                f"{prefix}_PORT_{first}_{up}_PORT_START={first}",
                f"{prefix}_PORT_{first}_{last_proto.upper()}_END={last_proto}://{ip}:{last}",
                f"{prefix}_PORT_{first}_{last_proto.upper()}_PORT_END={last}",
            ]
        i = j + 1
    for port in ports:
        number, proto = port.split("/")
        up = proto.upper()
        result += [
            f"{prefix}_PORT_{number}_{up}={proto}://{ip}:{number}",
            f"{prefix}_PORT_{number}_{up}_ADDR={ip}",
            f"{prefix}_PORT_{number}_{up}_PORT={number}",
            f"{prefix}_PORT_{number}_{up}_PROTO={proto}",
        ]
    result.append(f"{prefix}_NAME=/{parent_name}/{alias}")
    for item in child.config.env or []:
        key, eq, value = item.partition("=")
        if eq and key not in ("HOME", "PATH"):
            result.append(f"{prefix}_ENV_{key}={value}")
    return result
