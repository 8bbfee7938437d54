"""Give the bridge its gateway address (the containers' default route)."""

from __future__ import annotations

import ipaddress

from pyroute2.netlink.exceptions import NetlinkError

from dockyard.errors import System

NAME = "bridge_address"


def do(ctx) -> None:
    net = ipaddress.IPv4Network(ctx.subnet)
    ctx.added_address = False
    try:
        for addr in ctx.ipr.get_addr(family=2, index=ctx.bridge_index):
            if addr.get_attr("IFA_ADDRESS") == ctx.gateway and addr["prefixlen"] == net.prefixlen:
                return
        ctx.ipr.addr("add", index=ctx.bridge_index, address=ctx.gateway, prefixlen=net.prefixlen,
                     broadcast=str(net.broadcast_address))
        ctx.added_address = True
    except NetlinkError as exc:
        raise System(f"cannot give bridge {ctx.bridge} address {ctx.gateway}/{net.prefixlen}: {exc}") from None


def undo(ctx) -> None:
    if getattr(ctx, "added_address", False):
        net = ipaddress.IPv4Network(ctx.subnet)
        try:
            ctx.ipr.addr("del", index=ctx.bridge_index, address=ctx.gateway, prefixlen=net.prefixlen)
        except NetlinkError:
            pass
