"""Create the bridge (or adopt an existing one), set its MTU and a fixed MAC, and bring it up.

The MAC matters: a Linux bridge whose address was never *set* takes the lowest
MAC of its ports, so it changes whenever a container comes or goes, and the
other containers' ARP entries for the gateway go stale for seconds (their
traffic to the gateway, the embedded DNS resolver included, is lost meanwhile).
Like Docker, we set one, derived from the bridge's name (stable across restarts).

A bridge dockyard creates carries the interface alias :data:`OWNER_ALIAS`; only
such a bridge is ever deleted (:func:`owned`), so removing a network never takes
down a bridge someone else made.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pyroute2.netlink.exceptions import NetlinkError

from dockyard.errors import InvalidParameter, System

NAME = "bridge_device"
#: ifalias of the bridges dockyard created
OWNER_ALIAS = "dockyard"


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
        if ctx.created_bridge:
            ipr.link("set", index=index, ifalias=OWNER_ALIAS)
        if not _address_set(name):
            ipr.link("set", index=index, address=mac_for(name))
        ipr.link("set", index=index, mtu=ctx.mtu, state="up")
        ctx.bridge_index = index
    except NetlinkError as exc:
        raise System(f"cannot set up bridge {name}: {exc}") from None


def undo(ctx) -> None:
    if getattr(ctx, "created_bridge", False):
        found = ctx.ipr.link_lookup(ifname=ctx.bridge)
        if found:
            ctx.ipr.link("del", index=found[0])


def owned(ipr, name: str) -> bool:
    """Whether bridge ``name`` exists and was created by dockyard."""
    found = ipr.link_lookup(ifname=name)
    if not found:
        return False
    return ipr.get_links(found[0])[0].get_attr("IFLA_IFALIAS") == OWNER_ALIAS


def mac_for(bridge: str) -> str:
    """A locally administered unicast MAC from the bridge's name (``06:``, never a container's ``02:42:``)."""
    raw = hashlib.sha256(f"dockyard-bridge/{bridge}".encode()).digest()[:5]
    return "06:" + ":".join(f"{b:02x}" for b in raw)


def _address_set(bridge: str) -> bool:
    """Was the bridge's MAC set explicitly (``addr_assign_type`` 3, NET_ADDR_SET)?"""
    try:
        return Path(f"/sys/class/net/{bridge}/addr_assign_type").read_text().strip() == "3"
    except OSError:
        return False
