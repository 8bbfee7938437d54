"""A container's ``/etc/hostname``, ``/etc/hosts`` and ``/etc/resolv.conf``.

Written into the container's directory at every start and bind-mounted over the
image's files, as Docker does, so they follow the container's current network.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from pathlib import Path

from dockyard.errors import InvalidParameter

__all__ = ["check", "resolv_conf", "write", "write_hosts", "write_resolv_conf"]

_DEFAULT_HOSTS = [
    "127.0.0.1\tlocalhost",
    "::1\tlocalhost ip6-localhost ip6-loopback",
    "fe00::0\tip6-localnet",
    "ff00::0\tip6-mcastprefix",
    "ff02::1\tip6-allnodes",
    "ff02::2\tip6-allrouters",
]


def check(
    extra_hosts: list[str] | None,
    dns: list[str] | None,
    hostname: str = "",
    domainname: str = "",
    search: list[str] | None = None,
    options: list[str] | None = None,
) -> None:
    """What goes into these files must be one line of what it claims to be (checked at create): a newline
    in ``--add-host``, ``--dns``, ``--dns-search`` or ``--dns-option`` would add lines of the client's
    choosing."""
    for domain in search or []:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,253}", domain):
            raise InvalidParameter(f"{domain!r} is not a valid domain (--dns-search)")
    for option in options or []:
        if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", option):
            raise InvalidParameter(f"invalid DNS option {option!r} (--dns-option)")
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


def write(
    directory: Path,
    hostname: str,
    extra_hosts: list[str],
    dns: list[str],
    host_network: bool,
    settings: dict | None = None,
    resolvers: list[str] | None = None,
    *,
    search: Sequence[str] = (),
    options: Sequence[str] = (),
) -> list[tuple[Path, str, bool]]:
    """Write the three files; returns them as the exec driver's binds ``(source, destination, read_only)``.

    ``extra_hosts``: ``--add-host name:ip`` and ready ``ip<TAB>names`` lines (links);
    ``settings``: the network driver's settings (the container's address goes into ``hosts``);
    ``dns``, ``resolvers``, ``search`` and ``options``: see :func:`resolv_conf`.
    """
    (directory / "hostname").write_text(hostname + "\n")
    write_hosts(directory, hostname, extra_hosts, host_network, settings)
    write_resolv_conf(directory, dns, host_network, resolvers or [], search, options)
    return [
        (directory / "hostname", "/etc/hostname", False),
        (directory / "hosts", "/etc/hosts", False),
        (directory / "resolv.conf", "/etc/resolv.conf", False),
    ]


def write_hosts(
    directory: Path, hostname: str, extra_hosts: list[str], host_network: bool, settings: dict | None = None
) -> None:
    """(Re)write ``hosts`` in place (see :func:`write`)."""
    hosts = list(_DEFAULT_HOSTS)
    if host_network:
        try:
            hosts = Path("/etc/hosts").read_text().splitlines()
        except OSError:
            pass
    for entry in extra_hosts:
        if "\t" in entry:
            hosts.append(entry)
            continue
        name, _, ip = entry.partition(":")
        hosts.append(f"{ip}\t{name}")
    settings = settings or {}
    ip = settings.get("IPAddress") or next(
        (n.get("IPAddress") for n in (settings.get("Networks") or {}).values() if n.get("IPAddress")), ""
    )
    if ip:
        hosts.append(f"{ip}\t{hostname}")
    (directory / "hosts").write_text("\n".join(hosts) + "\n")


def write_resolv_conf(
    directory: Path,
    dns: list[str],
    host_network: bool,
    resolvers: list[str],
    search: Sequence[str] = (),
    options: Sequence[str] = (),
) -> None:
    """(Re)write ``resolv.conf`` in place: the container sees the new content through its bind mount
    (``network connect`` gives a running container its new network's resolver)."""
    (directory / "resolv.conf").write_text(resolv_conf(dns, host_network, resolvers, search, options))


def resolv_conf(
    dns: list[str],
    host_network: bool,
    resolvers: list[str] | None = None,
    search: Sequence[str] = (),
    options: Sequence[str] = (),
) -> str:
    """The host's resolv.conf; in a namespace of its own a container cannot reach
    loopback nameservers (systemd-resolved, dnsmasq): drop them, and fall back to
    Docker's defaults when none is left.  ``--dns`` replaces the nameservers.
    ``resolvers`` (a network driver's embedded resolver, user networks) replace
    both; ``--dns`` servers are then that resolver's upstream, as in Docker.
    ``--dns-search`` replaces the search domains (``.`` alone: none) and
    ``--dns-option`` the options, as Docker's ``resolvconf.Build`` does."""
    return _with_search_and_options(
        _nameservers(dns, host_network, resolvers), list(search), list(options), bool(resolvers)
    )


def _with_search_and_options(text: str, search: list[str], options: list[str], embedded: bool) -> str:
    lines = text.splitlines()
    if search:
        lines = [line for line in lines if not line.startswith(("search", "domain"))]
        if search != ["."]:
            lines.insert(0, "search " + " ".join(search))
    if options:
        lines = [line for line in lines if not line.startswith("options")]
        if embedded and not any(o.startswith("ndots:") for o in options):
            options = [*options, "ndots:0"]
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def _nameservers(dns: list[str], host_network: bool, resolvers: list[str] | None = None) -> str:
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
