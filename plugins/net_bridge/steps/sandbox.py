"""The container's network namespace, ``/run/netns/dockyard-<id16>``."""

from __future__ import annotations

from pyroute2.netlink.exceptions import NetlinkError

from dockyard.errors import System

from .. import nsutil

NAME = "sandbox"


def do(ctx) -> None:
    try:
        ctx.netns_path = nsutil.create(ctx.netns_name)
    except (OSError, NetlinkError) as exc:
        raise System(f"cannot create network namespace {ctx.netns_name}: {exc}") from None


def undo(ctx) -> None:
    nsutil.remove(ctx.netns_name)
