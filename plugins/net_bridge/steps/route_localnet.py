"""``net.ipv4.conf.<bridge>.route_localnet=1``: lets a connection to
``127.0.0.1:<published port>``, DNATed to a container, be routed out of the
bridge (the firewall table masquerades its 127/8 source and drops 127/8
destinations arriving *from* the bridge)."""

from __future__ import annotations

from pathlib import Path

from dockyard.errors import System

NAME = "route_localnet"


def _path(bridge: str) -> Path:
    return Path("/proc/sys/net/ipv4/conf") / bridge / "route_localnet"


def do(ctx) -> None:
    try:
        _path(ctx.bridge).write_text("1\n")
    except OSError as exc:
        raise System(f"cannot enable route_localnet on {ctx.bridge}: {exc}") from None


def undo(ctx) -> None:
    try:
        _path(ctx.bridge).write_text("0\n")
    except OSError:
        pass
