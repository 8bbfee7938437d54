"""``dockyard network ls|inspect|create|rm|connect|disconnect|prune``, plus the
helpers ``run -p`` / ``port`` need (:func:`parse_publish`, :func:`port_lines`).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from .client import CliError
from .context import client
from .listformat import NETWORK, ListFormat, network_row, render_listing

__all__ = ["app", "parse_publish", "port_bindings", "port_lines"]

#: ``dockyard network``: the sub-app's own settings; its commands are listed in cli/commands.py
app = typer.Typer(name="network", help="Manage networks", no_args_is_help=True)


# -- -p parsing (docker/go-connections nat.ParsePortSpec) ----------------------------------
def parse_publish(spec: str) -> list[tuple[str, dict[str, str]]]:
    """``[IP:][HOST:]CONTAINER[/PROTO]`` -> ``[("6379/tcp", {"HostIp": "", "HostPort": ""})]``.

    ``HOST`` and ``CONTAINER`` may be ranges of equal length (``8000-8001:80-81``).
    """
    body, _, proto = spec.partition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp", "sctp"):
        raise CliError(f"invalid proto: {proto}")
    ip, host, container = "", "", body
    if body.startswith("["):  # [::1]:80:80
        ip, _, rest = body[1:].partition("]")
        rest = rest.lstrip(":")
        host, _, container = rest.rpartition(":")
    else:
        parts = body.split(":")
        if len(parts) == 1:
            container = parts[0]
        elif len(parts) == 2:
            host, container = parts
        elif len(parts) == 3:
            ip, host, container = parts
        else:
            raise CliError(f"invalid port format: {spec}")
    c_low, c_high = _range(container, spec)
    if host:
        h_low, h_high = _range(host, spec)
        if c_high - c_low not in (0, h_high - h_low) and c_low != c_high:
            raise CliError(f"invalid ranges specified for container and host Ports: {container} and {host}")
    result = []
    for i, port in enumerate(range(c_low, c_high + 1)):
        if not host:
            host_port = ""
        elif c_low == c_high:
            host_port = host
        else:
            host_port = str(h_low + i)
        result.append((f"{port}/{proto}", {"HostIp": ip, "HostPort": host_port}))
    return result


def _range(text: str, spec: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    try:
        lo, hi = int(low), int(high or low)
    except ValueError:
        raise CliError(f"invalid port format: {spec}") from None
    if not 0 < lo <= hi < 65536:
        raise CliError(f"invalid port format: {spec}")
    return lo, hi


def port_bindings(specs: list[str]) -> tuple[dict[str, list[dict[str, str]]], dict[str, dict]]:
    """``-p`` values -> (HostConfig.PortBindings, Config.ExposedPorts additions)."""
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in specs:
        for key, binding in parse_publish(spec):
            bindings.setdefault(key, []).append(binding)
    return bindings, {key: {} for key in bindings}


def port_lines(inspect: dict[str, Any], private: str | None = None) -> list[str]:
    """``docker port`` output from a container's inspect: ``80/tcp -> 127.0.0.1:18080``."""
    ports = (inspect.get("NetworkSettings") or {}).get("Ports") or {}
    lines = []
    if private:
        key = private if "/" in private else f"{private}/tcp"
        bindings = ports.get(key)
        if not bindings:
            raise CliError(f"Error: No public port '{key}' published for {inspect.get('Name', '').lstrip('/')}")
        return [f"{b.get('HostIp') or '0.0.0.0'}:{b['HostPort']}" for b in bindings]
    for key in sorted(ports, key=lambda k: (int(k.split("/")[0]), k)):
        for b in ports[key] or []:
            lines.append(f"{key} -> {b.get('HostIp') or '0.0.0.0'}:{b['HostPort']}")
    return lines


# -- commands ---------------------------------------------------------------------------------
def ls(
    ctx: typer.Context,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only display network IDs")] = False,
    no_trunc: Annotated[bool, typer.Option("--no-trunc", help="Do not truncate the output")] = False,
    format: ListFormat = None,
) -> None:
    """List networks."""
    nets = client(ctx).get_json("/networks")
    if format and not quiet:
        typer.echo(render_listing(NETWORK, format, (network_row(n, no_trunc) for n in nets)), nl=False)
        return
    if quiet:
        for n in nets:
            typer.echo(n["Id"] if no_trunc else n["Id"][:12])
        return
    rows = [("NETWORK ID", "NAME", "DRIVER", "SCOPE")]
    rows += [(n["Id"] if no_trunc else n["Id"][:12], n["Name"], n["Driver"], n["Scope"]) for n in nets]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        typer.echo("   ".join(r[i].ljust(widths[i]) for i in range(3)) + "   " + r[3])


def inspect(ctx: typer.Context, networks: list[str]) -> None:
    """Display detailed information on one or more networks."""
    api = client(ctx)
    typer.echo(json.dumps([api.get_json(f"/networks/{n}") for n in networks], indent=4))


def create(
    ctx: typer.Context,
    name: str,
    subnet: Annotated[str | None, typer.Option("--subnet", help="Subnet in CIDR format")] = None,
    gateway: Annotated[str | None, typer.Option("--gateway", help="Gateway for the subnet")] = None,
    ip_range: Annotated[str | None, typer.Option("--ip-range", help="Allocate container IPs from a sub-range")] = None,
    internal: Annotated[bool, typer.Option("--internal", help="Restrict external access")] = False,
    opt: Annotated[list[str] | None, typer.Option("-o", "--opt", help="Driver options KEY=VALUE")] = None,
) -> None:
    """Create a network."""
    config = {k: v for k, v in (("Subnet", subnet), ("Gateway", gateway), ("IPRange", ip_range)) if v}
    options = dict(item.split("=", 1) for item in opt or [])
    body = {
        "Name": name,
        "Driver": "bridge",
        "Internal": internal,
        "Options": options,
        "IPAM": {"Driver": "default", "Config": [config] if config else []},
    }
    typer.echo(client(ctx).post("/networks/create", body).json()["Id"])


def rm(ctx: typer.Context, networks: list[str]) -> None:
    """Remove one or more networks."""
    for n in networks:
        client(ctx).delete(f"/networks/{n}")
        typer.echo(n)


def connect(
    ctx: typer.Context,
    network: str,
    container: str,
    alias: Annotated[list[str] | None, typer.Option("--alias", help="Network-scoped alias")] = None,
) -> None:
    """Connect a container to a network."""
    client(ctx).post(
        f"/networks/{network}/connect", {"Container": container, "EndpointConfig": {"Aliases": alias or []}}
    )


def disconnect(ctx: typer.Context, network: str, container: str) -> None:
    """Disconnect a container from a network."""
    client(ctx).post(f"/networks/{network}/disconnect", {"Container": container})


def prune(ctx: typer.Context) -> None:
    """Remove all unused networks."""
    for name in client(ctx).post("/networks/prune").json().get("NetworksDeleted") or []:
        typer.echo(name)
