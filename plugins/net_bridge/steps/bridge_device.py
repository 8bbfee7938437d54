"""Create the bridge (or adopt an existing one), set its MTU and bring it up."""

from __future__ import annotations

from pyroute2.netlink.exceptions import NetlinkError

from dockyard.errors import InvalidParameter, System

NAME = "bridge_device"


def do(ctx) -> None:
    ipr, name = ctx.ipr, ctx.bridge
    try:
        found = ipr.link_lookup(ifname=name)
        if found:
            link = ipr.get_links(found[0])[0]
            kind = link.get_attr("IFLA_LINKINFO") and link.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_KIND")
            if kind != "bridge":
                raise InvalidParameter(f"interface {name} exists and is not a bridge ({kind or 'unknown kind'})")
            ctx.created_bridge = False
        else:
            ipr.link("add", ifname=name, kind="bridge")
            ctx.created_bridge = True
        index = ipr.link_lookup(ifname=name)[0]
        ipr.link("set", index=index, mtu=ctx.mtu, state="up")
        ctx.bridge_index = index
    except NetlinkError as exc:
        raise System(f"cannot set up bridge {name}: {exc}") from None


def undo(ctx) -> None:
    if getattr(ctx, "created_bridge", False):
        found = ctx.ipr.link_lookup(ifname=ctx.bridge)
        if found:
            ctx.ipr.link("del", index=found[0])
