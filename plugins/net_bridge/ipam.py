"""Address management: a persistent cursor over a subnet, Docker-style MACs.

Addresses are handed out in order from a cursor kept in the store, skipping
every address an endpoint row holds (running *or stopped* containers), so an
address is never given to two containers, and a released one is only reused
after the cursor has gone round the whole range (as Docker's serial allocator).
"""

from __future__ import annotations

import ipaddress

from dockyard.errors import Unavailable

from .store import Store


def mac_for(ip: str) -> str:
    """``02:42`` followed by the four bytes of the address, as Docker does."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(ip).packed)


def pool(subnet: str, gateway: str, ip_range: str = "") -> tuple[int, int, set[int]]:
    """(first, last, excluded) as integers."""
    net = ipaddress.IPv4Network(subnet, strict=False)
    rng = ipaddress.IPv4Network(ip_range, strict=False) if ip_range else net
    first, last = int(rng.network_address), int(rng.broadcast_address)
    excluded = {int(net.network_address), int(net.broadcast_address), int(ipaddress.IPv4Address(gateway))}
    return first, last, excluded


def allocate(store: Store, network: str, subnet: str, gateway: str, ip_range: str = "") -> str:
    """Reserve the next free address of ``network`` and move the cursor past it.

    Call inside a store transaction that also inserts the endpoint row.
    """
    first, last, excluded = pool(subnet, gateway, ip_range)
    held = {int(ipaddress.IPv4Address(ip)) for ip in store.held_ips(network)}
    size = last - first + 1
    start = store.cursor(network, "ip", first)
    if not first <= start <= last:
        start = first
    for step in range(size):
        candidate = first + (start - first + step) % size
        if candidate in excluded or candidate in held:
            continue
        store.set_cursor(network, "ip", candidate + 1 if candidate < last else first)
        return str(ipaddress.IPv4Address(candidate))
    raise Unavailable(f"no available IPv4 address on network {network!r} ({ip_range or subnet})")
