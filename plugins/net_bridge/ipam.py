"""Address management: a persistent cursor over a subnet, Docker-style MACs.

Addresses are handed out in order from a cursor kept in the store, skipping
every address an endpoint row holds (running *or stopped* containers), so an
address is never given to two containers, and a released one is only reused
after the cursor has gone round the whole range (as Docker's serial allocator).
The same cursor serves IPv6 subnets (kind ``ip6``).  Auxiliary addresses
(``--aux-address``) and the gateway are never handed out; a fixed address
(``--ip``, ``--ip6``) is checked and taken as asked (:func:`reserve`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from dockyard.errors import Forbidden, InvalidParameter, Unavailable

from .store import Store


def mac_for(ip: str) -> str:
    """``02:42`` followed by the four bytes of the address, as Docker does."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(ip).packed)


def pool(subnet: str, gateway: str, ip_range: str = "", aux: Iterable[str] = ()) -> tuple[int, int, set[int]]:
    """(first, last, excluded) as integers."""
    net = ipaddress.ip_network(subnet, strict=False)
    rng = ipaddress.ip_network(ip_range, strict=False) if ip_range else net
    first, last = int(rng.network_address), int(rng.broadcast_address)
    excluded = {
        int(net.network_address),
        int(ipaddress.ip_address(gateway)),
        *(int(ipaddress.ip_address(a)) for a in aux),
    }
    if net.version == 4:
        excluded.add(int(net.broadcast_address))
    return first, last, excluded


def allocate(
    store: Store, network: str, subnet: str, gateway: str, ip_range: str = "", aux: Iterable[str] = (), kind: str = "ip"
) -> str:
    """Reserve the next free address of ``network`` and move the cursor past it (``kind`` ``ip6``:
    of its IPv6 subnet).

    Call inside a store transaction that also inserts the endpoint row.
    """
    first, last, excluded = pool(subnet, gateway, ip_range, aux)
    held = {int(ipaddress.ip_address(ip)) for ip in store.held_ips(network, kind)}
    size = last - first + 1
    version = ipaddress.ip_network(subnet, strict=False).version
    # IPv4 cursors are addresses; IPv6 ones offsets into the range (an address does not fit SQLite's integers)
    base = 0 if version == 4 else first
    start = store.cursor(network, kind, first - base) + base
    if not first <= start <= last:
        start = first
    for step in range(min(size, 1 << 20)):
        candidate = first + (start - first + step) % size
        if candidate in excluded or candidate in held:
            continue
        following = candidate + 1 if candidate < last else first
        store.set_cursor(network, kind, min(following - base, (1 << 62)))
        return str(ipaddress.ip_address(candidate))
    raise Unavailable(f"no available IPv{version} address on network {network!r} ({ip_range or subnet})")


def reserve(
    store: Store, network: str, subnet: str, gateway: str, address: str, aux: Iterable[str] = (), kind: str = "ip"
) -> str:
    """Take ``address`` as asked (``--ip``, ``--ip6``): it must lie in the subnet and be free."""
    net = ipaddress.ip_network(subnet, strict=False)
    ip = ipaddress.ip_address(address)
    if ip.version != net.version or ip not in net:
        raise InvalidParameter(f"Invalid address {address}: It does not belong to any of this network's subnets")
    _, _, excluded = pool(subnet, gateway, "", aux)
    held = {ipaddress.ip_address(h) for h in store.held_ips(network, kind)}
    if int(ip) in excluded or ip in held:
        raise Forbidden(f"Address already in use: {address} on network {network}")
    return str(ip)
