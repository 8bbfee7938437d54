"""A container's ``/etc/hostname``, ``/etc/hosts`` and ``/etc/resolv.conf``.

Written into the container's directory at every start and bind-mounted over the
image's files, as Docker does, so they follow the container's current network.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from dockyard.errors import InvalidParameter

__all__ = ["check", "resolv_conf", "write"]

_DEFAULT_HOSTS = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", "fe00::0\tip6-localnet",
                  "ff00::0\tip6-mcastprefix", "ff02::1\tip6-allnodes", "ff02::2\tip6-allrouters"]


def check(extra_hosts: list[str] | None, dns: list[str] | None, hostname: str = "", domainname: str = "") -> None:
    """What goes into these files must be one line of what it claims to be (checked at create): a newline
    in ``--add-host`` or ``--dns`` would add lines of the client's choosing."""
    for server in dns or []:
        try:
            ipaddress.ip_address(server)
        except ValueError:
            raise InvalidParameter(f"{server!r} is not an ip address (--dns)") from None
    for entry in extra_hosts or []:
        name, sep, address = entry.partition(":")
        if not sep or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise InvalidParameter(f"invalid argument {entry!r} for --add-host: expected host:ip")
        try:
            ipaddress.ip_address(address.strip("[]"))
        except ValueError:
            raise InvalidParameter(f"invalid IP address in add-host: {address!r}") from None
    for value, what in ((hostname, "hostname"), (domainname, "domainname")):
        if value and not re.fullmatch(r"[A-Za-z0-9_.-]{1,253}", value):
            raise InvalidParameter(f"invalid {what} {value!r}")


def write(directory: Path, hostname: str, extra_hosts: list[str], dns: list[str], host_network: bool,
          settings: dict | None = None, resolvers: list[str] | None = None) -> list[tuple[Path, str, bool]]:
    """Write the three files; returns them as the exec driver's binds ``(source, destination, read_only)``.

    ``extra_hosts``: ``--add-host name:ip``; ``settings``: the network driver's settings
    (the container's address goes into ``hosts``); ``dns`` and ``resolvers``: see :func:`resolv_conf`.
    """
    (directory / "hostname").write_text(hostname + "\n")
    hosts = list(_DEFAULT_HOSTS)
    if host_network:
        try:
            hosts = Path("/etc/hosts").read_text().splitlines()
        except OSError:
            pass
    for entry in extra_hosts:
        name, _, ip = entry.partition(":")
        hosts.append(f"{ip}\t{name}")
    settings = settings or {}
    ip = settings.get("IPAddress") or next(
        (n.get("IPAddress") for n in (settings.get("Networks") or {}).values() if n.get("IPAddress")), "")
    if ip:
        hosts.append(f"{ip}\t{hostname}")
    (directory / "hosts").write_text("\n".join(hosts) + "\n")
    (directory / "resolv.conf").write_text(resolv_conf(dns, host_network, resolvers or []))
    return [(directory / "hostname", "/etc/hostname", False), (directory / "hosts", "/etc/hosts", False),
            (directory / "resolv.conf", "/etc/resolv.conf", False)]


def resolv_conf(dns: list[str], host_network: bool, resolvers: list[str] | None = None) -> str:
    """The host's resolv.conf; in a namespace of its own a container cannot reach
    loopback nameservers (systemd-resolved, dnsmasq): drop them, and fall back to
    Docker's defaults when none is left.  ``--dns`` replaces the nameservers.
    ``resolvers`` (a network driver's embedded resolver, user networks) replace
    both; ``--dns`` servers are then that resolver's upstream, as in Docker."""
    try:
        lines = Path("/etc/resolv.conf").read_text().splitlines()
    except OSError:
        lines = []
    if resolvers:
        lines = [line for line in lines if not line.startswith("nameserver")]
        lines += [f"nameserver {s}" for s in resolvers]
        if not any(line.startswith("options") and "ndots:" in line for line in lines):
            lines.append("options ndots:0")  # a bare container name is asked as is first, as Docker
        return "\n".join(lines) + "\n"

    def loopback(line: str) -> bool:
        words = line.split()
        return len(words) > 1 and words[0] == "nameserver" and (words[1].startswith("127.") or words[1] == "::1")

    if dns:
        lines = [line for line in lines if not line.startswith("nameserver")] + [f"nameserver {s}" for s in dns]
    elif not host_network:
        lines = [line for line in lines if not loopback(line)]
        if not any(line.startswith("nameserver") for line in lines):
            lines += ["nameserver 8.8.8.8", "nameserver 8.8.4.4"]
    return "\n".join(lines) + "\n"
