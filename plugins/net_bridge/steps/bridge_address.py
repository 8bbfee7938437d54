"""Give the bridge its gateway address (the containers' default route), and its IPv6 gateway address
on an IPv6 network."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

from pyroute2.netlink.exceptions import NetlinkError

from dockyard.errors import System

NAME = "bridge_address"

IFA_F_NODAD = 0x02


def do(ctx) -> None:
    net = ipaddress.IPv4Network(ctx.subnet)
    ctx.added_address = ctx.added_address6 = False
    try:
        if not any(
            a.get_attr("IFA_ADDRESS") == ctx.gateway and a["prefixlen"] == net.prefixlen
            for a in ctx.ipr.get_addr(family=2, index=ctx.bridge_index)
        ):
            ctx.ipr.addr(
                "add",
                index=ctx.bridge_index,
                address=ctx.gateway,
                prefixlen=net.prefixlen,
                broadcast=str(net.broadcast_address),
            )
            ctx.added_address = True
        if getattr(ctx, "subnet6", ""):
            net6 = ipaddress.IPv6Network(ctx.subnet6)
            Path(f"/proc/sys/net/ipv6/conf/{ctx.bridge}/disable_ipv6").write_text("0\n")
            if not any(
                ipaddress.ip_address(a.get_attr("IFA_ADDRESS")) == ipaddress.ip_address(ctx.gateway6)
                for a in ctx.ipr.get_addr(family=socket.AF_INET6, index=ctx.bridge_index)
            ):
                ctx.ipr.addr(
                    "add",
                    index=ctx.bridge_index,
                    address=ctx.gateway6,
                    prefixlen=net6.prefixlen,
                    family=socket.AF_INET6,
                    flags=IFA_F_NODAD,
                )
                ctx.added_address6 = True
    except (NetlinkError, OSError) as exc:
        raise System(f"cannot give bridge {ctx.bridge} its gateway address: {exc}") from None


def undo(ctx) -> None:
    net = ipaddress.IPv4Network(ctx.subnet)
    try:
        if getattr(ctx, "added_address", False):
            ctx.ipr.addr("del", index=ctx.bridge_index, address=ctx.gateway, prefixlen=net.prefixlen)
        if getattr(ctx, "added_address6", False):
            ctx.ipr.addr(
                "del",
                index=ctx.bridge_index,
                address=ctx.gateway6,
                prefixlen=ipaddress.IPv6Network(ctx.subnet6).prefixlen,
                family=socket.AF_INET6,
            )
    except NetlinkError:
        pass
