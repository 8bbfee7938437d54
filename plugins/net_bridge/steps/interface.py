"""Inside the namespace: address on ``eth0`` (``ethN``), link and ``lo`` up,
default route via the bridge (first interface only).  Name, MAC and MTU were
set when the veth was created."""

from __future__ import annotations

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from dockyard.errors import System

from .. import nsutil

NAME = "interface"


def do(ctx) -> None:
    try:
        with nsutil.entered(ctx.netns_path):
            ns = IPRoute()
        with ns:
            (index,) = ns.link_lookup(ifname=ctx.ifname)
            ns.addr("add", index=index, address=ctx.ip, prefixlen=ctx.prefixlen)
            ns.link("set", index=index, state="up")
            (lo,) = ns.link_lookup(ifname="lo")
            ns.link("set", index=lo, state="up")
            if ctx.default_route:
                ns.route("replace", dst="0.0.0.0/0", gateway=ctx.gateway, oif=index)
    except (NetlinkError, OSError, ValueError) as exc:
        raise System(f"cannot configure {ctx.ifname} in {ctx.netns_name}: {exc}") from None


def undo(ctx) -> None:
    pass  # everything in the namespace goes with the veth / the namespace
