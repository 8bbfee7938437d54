"""A veth pair: host end on the bridge (up, MTU of the bridge, hairpin on so a
container can reach its own published port); the peer is created directly
inside the container's namespace, already named ``eth0`` (``ethN``) and
carrying the MAC derived from its address."""

from __future__ import annotations

from pathlib import Path

from pyroute2.netlink.exceptions import NetlinkError

from dockyard.errors import System

NAME = "veth"


def do(ctx) -> None:
    ipr = ctx.ipr
    try:
        stale = ipr.link_lookup(ifname=ctx.veth)
        if stale:
            ipr.link("del", index=stale[0])
        ipr.link(
            "add",
            ifname=ctx.veth,
            kind="veth",
            mtu=ctx.mtu,
            master=ctx.bridge_index,
            peer={"ifname": ctx.ifname, "net_ns_fd": ctx.netns_name, "mtu": ctx.mtu, "address": ctx.mac},
        )
        ipr.link("set", ifname=ctx.veth, state="up")
    except NetlinkError as exc:
        raise System(f"cannot create veth pair {ctx.veth} for {ctx.container_id[:12]}: {exc}") from None
    try:
        Path(f"/sys/class/net/{ctx.veth}/brport/hairpin_mode").write_text("1\n")
    except OSError:
        pass


def undo(ctx) -> None:
    try:
        found = ctx.ipr.link_lookup(ifname=ctx.veth)
        if found:
            ctx.ipr.link("del", index=found[0])
    except NetlinkError as exc:
        if exc.code != 19:  # ENODEV: gone with its namespace
            raise System(f"cannot delete veth {ctx.veth}: {exc}") from None
