"""NAT, port mapping and isolation in one nftables table per bridge.

The whole table is rendered from the driver's state and applied with one
``nft -f -`` transaction of the form::

    table ip T {}          # create if missing, so that the delete cannot fail
    delete table ip T      # drop whatever is there (stale rules of a crashed daemon)
    table ip T { ... }     # the complete, current table

nft applies a file atomically: the kernel sees the old table or the new one,
never a half-written one or a duplicate rule.  Nothing outside table ``T`` is
read or written.  Table names are ``<prefix>_<bridge>`` (non-alphanumerics as
``_``), so two daemons with different bridges never share a table.

Backends: this module is the ``nftables`` one (:class:`NftablesBackend`);
``iptables.py`` is the other (option ``firewall=iptables``).  The driver talks
to either through :func:`backend`, and records what it owns as names that say
which backend made them (:func:`backend_of`), so that a daemon restarted with
the other backend still cleans up the first one's rules.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field

from dockyard.errors import DriverNotSupported, System

NFT = "nft"


@dataclass(frozen=True)
class Mapping:
    proto: str  # "tcp" / "udp"
    host_ip: str  # "" or "0.0.0.0" = every local address
    host_port: int
    container_ip: str
    container_port: int


@dataclass
class TableSpec:
    name: str
    bridge: str
    subnet: str
    masquerade: bool = True
    icc: bool = True
    internal: bool = False
    mappings: list[Mapping] = field(default_factory=list)
    #: other bridges of this daemon: traffic from ours to them is dropped (network isolation)
    isolate_from: list[str] = field(default_factory=list)


def check_available() -> None:
    if shutil.which(NFT) is None:
        raise DriverNotSupported("bridge", "the nft command (package nftables) is not installed")


def table_name(prefix: str, bridge: str) -> str:
    return f"{prefix}_{re.sub(r'[^A-Za-z0-9_]', '_', bridge)}"


def _q(name: str) -> str:
    return '"' + name.replace('"', "") + '"'


def render(spec: TableSpec) -> str:
    br = _q(spec.bridge)
    lines = [f"table ip {spec.name} {{"]
    # port mapping: DNAT for packets to a local address, from outside and from the host itself
    lines += [
        "  chain prerouting {",
        "    type nat hook prerouting priority dstnat; policy accept;",
        "    fib daddr type local jump ports",
        "  }",
        "  chain output {",
        "    type nat hook output priority -100; policy accept;",
        "    fib daddr type local jump ports",
        "  }",
        "  chain ports {",
    ]
    for m in sorted(spec.mappings, key=lambda m: (m.proto, m.host_port, m.host_ip)):
        match = "" if m.host_ip in ("", "0.0.0.0") else f"ip daddr {m.host_ip} "
        lines.append(f"    {match}{m.proto} dport {m.host_port} dnat to {m.container_ip}:{m.container_port}")
    lines.append("  }")
    lines += [
        "  chain postrouting {",
        "    type nat hook postrouting priority srcnat; policy accept;",
        # 127.0.0.1:<port> from the host: the kernel routes it out of the bridge thanks to
        # route_localnet; the source must be rewritten or the reply could not come back
        f"    oifname {br} ip saddr 127.0.0.0/8 masquerade",
        # hairpin: a container reaching a published port of a container on the same bridge
        f"    oifname {br} ip saddr {spec.subnet} ct status dnat masquerade",
    ]
    if spec.masquerade and not spec.internal:
        lines.append(f"    ip saddr {spec.subnet} oifname != {br} masquerade")
    lines.append("  }")
    # route_localnet lets 127/8 be routed to the bridge; never let a container use it to
    # reach the host's loopback services (the CVE-2020-8558 class of problem)
    lines += [
        "  chain guard {",
        "    type filter hook prerouting priority raw; policy accept;",
        f"    iifname {br} ip daddr 127.0.0.0/8 drop",
        "  }",
    ]
    lines += ["  chain forward {", "    type filter hook forward priority filter; policy accept;"]
    if spec.isolate_from:
        others = ", ".join(_q(b) for b in sorted(spec.isolate_from))
        lines.append(f"    iifname {br} oifname {{ {others} }} drop")
    if not spec.icc:
        lines.append(f"    iifname {br} oifname {br} drop")
    if spec.internal:
        lines.append(f"    iifname {br} oifname != {br} drop")
        lines.append(f"    oifname {br} iifname != {br} drop")
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def _run(script: str) -> None:
    try:
        result = subprocess.run([NFT, "-f", "-"], input=script, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        raise System(f"cannot run nft: {exc}") from None
    if result.returncode != 0:
        raise System(f"nft failed: {result.stderr.strip() or result.stdout.strip()}")


def apply(spec: TableSpec) -> None:
    """Replace table ``spec.name`` by its rendering, atomically."""
    _run(f"table ip {spec.name} {{}}\ndelete table ip {spec.name}\n" + render(spec))


def delete(name: str) -> None:
    """Remove a table of ours; a missing one is fine."""
    _run(f"table ip {name} {{}}\ndelete table ip {name}\n")


def exists(name: str) -> bool:
    result = subprocess.run([NFT, "list", "table", "ip", name], capture_output=True, text=True)
    return result.returncode == 0


def listing(name: str) -> str:
    result = subprocess.run([NFT, "list", "table", "ip", name], capture_output=True, text=True)
    return result.stdout if result.returncode == 0 else ""


def count_dnat(name: str) -> int:
    return listing(name).count("dnat to")


class NftablesBackend:
    """The functions above, behind the interface the driver uses for every backend."""

    kind = "nftables"

    @staticmethod
    def table_name(prefix: str, bridge: str) -> str:
        return table_name(prefix, bridge)

    @staticmethod
    def check_available() -> None:
        check_available()

    @staticmethod
    def describe(name: str) -> str:
        return f"nftables table ip {name}"

    apply = staticmethod(apply)
    delete = staticmethod(delete)
    exists = staticmethod(exists)
    listing = staticmethod(listing)
    count_dnat = staticmethod(count_dnat)


BACKENDS = ("nftables", "iptables", "iptables-nft", "iptables-legacy")


def backend(kind: str):
    """The backend for option ``firewall``."""
    if kind == "nftables":
        return NftablesBackend()
    from .iptables import IptablesBackend

    return IptablesBackend(kind)


def backend_of(recorded: str):
    """The backend that made a recorded name: ``<iptables variant>:<chain>``, or a bare nft table name."""
    kind, sep, _ = recorded.partition(":")
    return backend(kind) if sep and kind in BACKENDS else NftablesBackend()


def any_available() -> str | None:
    """The first backend whose tools are installed (for ``check_supported``)."""
    for kind in ("nftables", "iptables"):
        try:
            backend(kind).check_available()
            return kind
        except DriverNotSupported:
            continue
    return None
