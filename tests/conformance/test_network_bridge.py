"""The network conformance suite against the ``bridge`` driver, on a private
bridge and subnet per test, once per firewall backend (nftables, iptables)."""

from __future__ import annotations

import secrets
import subprocess

import pytest

pytest.register_assert_rewrite("dockyard.testing.network_conformance")

from dockyard.testing.network_conformance import NetworkDriverSuite  # noqa: E402

pytest_plugins = ["dockyard.testing.network_conformance"]
pytestmark = pytest.mark.requires_root


def _free_subnet() -> str:
    import ipaddress
    import random

    routes = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    taken = []
    for line in routes.splitlines():
        word = line.split()[1] if line.startswith(("local", "broadcast")) else line.split()[0]
        if word != "default":
            taken.append(ipaddress.IPv4Network(word, strict=False))
    while True:
        net = ipaddress.IPv4Network(f"10.{random.randint(100, 199)}.{random.randint(0, 255)}.0/24")
        if not any(net.overlaps(t) for t in taken):
            return f"{net.network_address + 1}/24"


class TestBridgeDriver(NetworkDriverSuite):
    firewall = "nftables"

    @pytest.fixture
    def driver_factory(self):
        from dockyard.plugins.net_bridge import firewall
        from dockyard.plugins.net_bridge.driver import BridgeNetworkDriver

        bridge = "dyt" + secrets.token_hex(4)
        options = {"bridge": bridge, "bip": _free_subnet(), "firewall": self.firewall, "dns_upstream": "none"}
        made = []

        def make(root):
            made.append(root)
            d = BridgeNetworkDriver(root, options)
            return d, d.close

        try:
            yield make
        finally:
            import sqlite3

            for root in made:  # bridges of user networks a failed test left behind
                try:
                    con = sqlite3.connect(root / "bridge.db")
                    for (name,) in con.execute("SELECT bridge FROM networks WHERE builtin = 0"):
                        subprocess.run(["ip", "link", "del", name], capture_output=True)
                    con.close()
                except sqlite3.Error:
                    pass
            subprocess.run(["ip", "link", "del", bridge], capture_output=True)
            for fw in (firewall.NftablesBackend(), firewall.backend("iptables")):
                try:
                    fw.delete(fw.table_name("dockyard", bridge))
                except Exception:
                    pass


class TestBridgeDriverIptables(TestBridgeDriver):
    firewall = "iptables"
