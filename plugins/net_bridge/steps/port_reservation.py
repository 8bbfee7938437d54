"""Bind every published host port (see ports.py); a port already in use is a
clear error here, before any rule exists."""

from __future__ import annotations

NAME = "port_reservation"


def do(ctx) -> None:
    ctx.driver._reserve_ports(ctx)


def undo(ctx) -> None:
    ctx.driver._unreserve_ports(ctx.container_id)
