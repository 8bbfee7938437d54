"""Re-render the network's nftables table with this container's mappings
(atomic replace; skipped when the container publishes nothing)."""

from __future__ import annotations

NAME = "port_rules"


def do(ctx) -> None:
    if ctx.mappings:
        ctx.driver._pending.add(ctx.container_id)
        ctx.driver._apply_firewall(ctx.network)


def undo(ctx) -> None:
    if ctx.mappings:
        ctx.driver._pending.discard(ctx.container_id)
        ctx.driver._apply_firewall(ctx.network)
