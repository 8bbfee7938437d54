"""The bridge driver's options (``--network-opt KEY=VALUE`` or the daemon config).

=================  ===========================================================
``bridge``         name of the default bridge (``dockyard0``)
``bip``            the bridge's address and prefix, e.g. ``10.66.0.1/16``
                   (Docker's ``--bip``); default: first free candidate /16
``fixed_cidr``     sub-range of the subnet that container addresses come from
``mtu``            MTU of the bridge and of every veth (default 1500)
``ip_masq``        masquerade traffic leaving the subnet (default true)
``ip_forward``     set ``net.ipv4.ip_forward=1`` at start (default true)
``icc``            let containers of a network talk to each other (default true)
``host_ip``        default host address for published ports (``0.0.0.0``)
``port_range``     range of automatic host ports (``49153-65535``)
``firewall``       ``nftables`` (default: one table per bridge), or
                   ``iptables`` (Debian's alternative, nft or legacy), or
                   ``iptables-nft`` / ``iptables-legacy`` (chains of our own)
``table_prefix``   prefix of our nftables tables (``dockyard``); a table is
                   ``<prefix>_<bridge>`` so two daemons never share one;
                   iptables chains are ``<PREFIX>-<bridge>``
``embedded_dns``   run a DNS resolver for each user-defined network on its
                   gateway address (default true)
``dns_upstream``   where that resolver forwards names it does not know:
                   ``ip[:port],...``; ``none`` answers NXDOMAIN instead;
                   default: the host's resolv.conf nameservers
``keep_rules``     keep the rules of still-running containers at shutdown
                   (default true: containers outlive the daemon)
=================  ===========================================================
"""

from __future__ import annotations

import ipaddress
import re

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from dockyard.errors import InvalidParameter

#: automatic subnets, in order (Docker's default-bridge and local pools, /16 only)
CANDIDATES = [f"172.{n}.0.0/16" for n in range(17, 32)] + [f"10.{n}.0.0/16" for n in range(200, 255)]


class BridgeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bridge: str = "dockyard0"
    bip: str = ""
    fixed_cidr: str = ""
    mtu: int = 1500
    ip_masq: bool = True
    ip_forward: bool = True
    icc: bool = True
    host_ip: str = "0.0.0.0"
    port_range: str = "49153-65535"
    firewall: str = "nftables"
    table_prefix: str = "dockyard"
    keep_rules: bool = True
    embedded_dns: bool = True
    dns_upstream: str = ""

    @field_validator("bridge")
    @classmethod
    def _ifname(cls, v: str) -> str:
        # the kernel's dev_valid_name: 1-15 bytes, no '/', ':' or white space, not "." or ".."
        if not re.fullmatch(r"[^/:\s]{1,15}", v) or v in (".", "..") or len(v.encode()) > 15:
            raise ValueError(f"invalid bridge name {v!r} (1 to 15 characters, no '/', ':' or space)")
        return v

    @field_validator("bip")
    @classmethod
    def _bip(cls, v: str) -> str:
        if v:
            iface = ipaddress.IPv4Interface(v)
            if iface.network.prefixlen > 30:
                raise ValueError("bip needs a prefix of /30 or shorter")
            if iface.ip in (iface.network.network_address, iface.network.broadcast_address):
                raise ValueError(f"bip {v} is the network or broadcast address")
        return v

    @field_validator("fixed_cidr")
    @classmethod
    def _cidr(cls, v: str) -> str:
        if v:
            ipaddress.IPv4Network(v, strict=False)
        return v

    @field_validator("firewall")
    @classmethod
    def _firewall(cls, v: str) -> str:
        if v not in ("nftables", "iptables", "iptables-nft", "iptables-legacy"):
            raise ValueError(f"unknown firewall backend {v!r} (nftables, iptables, iptables-nft, iptables-legacy)")
        return v

    @field_validator("table_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not v or len(v) > 12 or not v.replace("_", "").isalnum():
            raise ValueError(f"invalid table_prefix {v!r} (1 to 12 letters, digits or '_')")
        return v

    @field_validator("dns_upstream")
    @classmethod
    def _upstream(cls, v: str) -> str:
        if v:
            import socket

            try:
                for item in v.replace(" ", ",").split(","):
                    if item and item.lower() not in ("none", "off"):
                        host, sep, port = item.rpartition(":")
                        socket.inet_aton(host if sep else item)
                        if sep and not 0 < int(port) < 65536:
                            raise ValueError(port)
            except (OSError, ValueError):
                raise ValueError(f"invalid dns_upstream {v!r} (ip[:port],... or none)") from None
        return v

    @property
    def ports(self) -> tuple[int, int]:
        low, _, high = self.port_range.partition("-")
        return int(low), int(high or low)


def parse(options: dict) -> BridgeOptions:
    try:
        opts = BridgeOptions.model_validate({k.replace("-", "_"): v for k, v in (options or {}).items()})
        low, high = opts.ports
        if not 0 < low <= high < 65536:
            raise ValueError(f"invalid port_range {opts.port_range!r}")
        if opts.fixed_cidr:
            if not opts.bip:
                raise ValueError("fixed_cidr needs bip")
            if not ipaddress.IPv4Network(opts.fixed_cidr, strict=False).subnet_of(
                ipaddress.IPv4Interface(opts.bip).network
            ):
                raise ValueError(f"fixed_cidr {opts.fixed_cidr} is not inside bip {opts.bip}")
    except (ValidationError, ValueError) as exc:
        raise InvalidParameter(f"invalid bridge network options: {exc}") from None
    return opts
