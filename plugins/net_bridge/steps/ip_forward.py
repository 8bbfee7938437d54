"""``net.ipv4.ip_forward=1`` so that containers reach beyond the host and
published ports are reachable from other machines (host-wide, like Docker;
never turned back off, other software may rely on it)."""

from __future__ import annotations

from pathlib import Path

from dockyard.errors import System

NAME = "ip_forward"
PATH = Path("/proc/sys/net/ipv4/ip_forward")


def do(ctx) -> None:
    if not ctx.ip_forward:
        return
    try:
        if PATH.read_text().strip() != "1":
            PATH.write_text("1\n")
    except OSError as exc:
        raise System(f"cannot enable IP forwarding: {exc}") from None


def undo(ctx) -> None:
    pass
