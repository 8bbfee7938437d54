"""Inside the namespace: addresses on ``eth0`` (``ethN``) -- IPv4, IPv6 on an IPv6 network and any
link-local ones asked for --, link and ``lo`` up, default routes via the bridge (first interface only,
and not on an internal network).  Name, MAC and MTU were set when the veth was created."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from dockyard.errors import System

from .. import nsutil

NAME = "interface"

#: no duplicate address detection: the address is ours (the IPAM gave it), usable at once
IFA_F_NODAD = 0x02


def do(ctx) -> None:
    try:
        with nsutil.entered(ctx.netns_path):
            ns = IPRoute()
            if ctx.ip6 or any(ipaddress.ip_address(a).version == 6 for a in ctx.link_local):
                # a namespace may start with IPv6 off on new interfaces; this one is on an IPv6 network
                Path(f"/proc/sys/net/ipv6/conf/{ctx.ifname}/disable_ipv6").write_text("0\n")
        with ns:
            (index,) = ns.link_lookup(ifname=ctx.ifname)
            ns.addr("add", index=index, address=ctx.ip, prefixlen=ctx.prefixlen)
            if ctx.ip6:
                ns.addr(
                    "add",
                    index=index,
                    address=ctx.ip6,
                    prefixlen=ctx.prefixlen6,
                    family=socket.AF_INET6,
                    flags=IFA_F_NODAD,
                )
            for address in ctx.link_local:
                parsed = ipaddress.ip_address(address)
                if parsed.version == 4:
                    ns.addr("add", index=index, address=address, prefixlen=16)
                else:
                    ns.addr(
                        "add", index=index, address=address, prefixlen=64, family=socket.AF_INET6, flags=IFA_F_NODAD
                    )
            ns.link("set", index=index, state="up")
            (lo,) = ns.link_lookup(ifname="lo")
            ns.link("set", index=lo, state="up")
            if ctx.default_route:
                ns.route("replace", dst="0.0.0.0/0", gateway=ctx.gateway, oif=index)
                if ctx.ip6 and ctx.gateway6:
                    ns.route("replace", dst="::/0", gateway=ctx.gateway6, oif=index, family=socket.AF_INET6)
    except (NetlinkError, OSError, ValueError) as exc:
        raise System(f"cannot configure {ctx.ifname} in {ctx.netns_name}: {exc}") from None


def undo(ctx) -> None:
    pass  # everything in the namespace goes with the veth / the namespace
