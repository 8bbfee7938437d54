"""Named network namespaces (``/run/netns/<name>``), made and torn down with pyroute2.

Shared by network drivers: every container that does not use the host's network
gets one, created by the daemon with ``lo`` up (LXC alone would leave it down).
"""

from __future__ import annotations

from pathlib import Path

from pyroute2 import IPRoute, netns
from pyroute2.netlink.exceptions import NetlinkError

from dockyard.errors import System

NETNS_DIR = Path("/run/netns")


def name_for(container_id: str) -> str:
    return f"dockyard-{container_id[:16]}"


def path_of(name: str) -> Path:
    return NETNS_DIR / name


def create(name: str) -> Path:
    """Create (or adopt) a named netns with loopback up; returns its bind-mount path."""
    path = path_of(name)
    try:
        if not path.exists():
            netns.create(name)
        netns.pushns(name)
        try:
            with IPRoute() as ipr:
                (lo,) = ipr.link_lookup(ifname="lo")
                ipr.link("set", index=lo, state="up")
        finally:
            netns.popns()
    except (OSError, NetlinkError) as exc:
        raise System(f"cannot create network namespace {name}: {exc}") from None
    return path


def remove(name: str) -> None:
    """Remove a named netns; a missing one is fine."""
    if not path_of(name).exists():
        return
    try:
        netns.remove(name)
    except (OSError, NetlinkError) as exc:
        raise System(f"cannot remove network namespace {name}: {exc}") from None
