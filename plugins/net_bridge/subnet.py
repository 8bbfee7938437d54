"""Choosing a subnet that no route or address on the host already covers (the driver
lists the host's routes and addresses, leaving out those of its own bridges)."""

from __future__ import annotations

import ipaddress
from typing import Iterable

IPv4Net = ipaddress.IPv4Network


def overlaps(net: IPv4Net, others: Iterable[IPv4Net]) -> IPv4Net | None:
    for other in others:
        if net.overlaps(other):
            return other
    return None


def choose(candidates: Iterable[str], taken: Iterable[IPv4Net]) -> IPv4Net | None:
    taken = list(taken)
    for text in candidates:
        net = IPv4Net(text)
        if overlaps(net, taken) is None:
            return net
    return None
