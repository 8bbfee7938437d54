"""Fixtures for the bridge driver's tests: real kernel, no netlink mocks.

Each test gets its own bridge name (``dyt<hex>``) and a /24 inside 10.x that
overlaps no route on the host; everything it made (veths, namespaces, bridge,
nft table or iptables chains) is removed in ``finally``.  Traffic goes only to
loopback and to addresses on the test's own bridges.

The ``env`` fixture runs each test once per firewall backend (``nftables``,
``iptables``, ``iptables-legacy``): ``env.options()`` carries ``firewall=...``.
Helpers: :mod:`tests.helpers.bridge`.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.helpers.bridge import Env
from tests.helpers.requirements import require, require_that


@pytest.fixture(params=["nftables", "iptables", "iptables-legacy"])
def env(request, tmp_path):
    require("root")
    if request.param == "nftables":
        require("nft")
    else:
        require("iptables")
        works = subprocess.run([request.param, "-w", "-t", "nat", "-S"], capture_output=True).returncode == 0
        require_that(works, f"{request.param} with kernel support", f"`{request.param} -t nat -S` fails here")
    e = Env(tmp_path, request.param)
    try:
        yield e
    finally:
        e.cleanup()
