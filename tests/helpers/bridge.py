"""The bridge driver under test: private bridges and subnets, firewall rules, servers and clients in netns."""

from __future__ import annotations

import ipaddress
import random
import secrets
import socket
import subprocess
import sys
from pathlib import Path

from tests.helpers.waiting import wait_for

BUSYBOX = "/bin/busybox"


def _host_nets() -> list[ipaddress.IPv4Network]:
    out = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    nets = []
    for line in out.splitlines():
        dst = line.split()[0] if not line.startswith(("local", "broadcast")) else line.split()[1]
        if dst == "default":
            continue
        try:
            nets.append(ipaddress.IPv4Network(dst, strict=False))
        except ValueError:
            pass
    return nets


_used: set[str] = set()


def free_subnet() -> ipaddress.IPv4Network:
    taken = _host_nets()
    for _ in range(1000):
        net = ipaddress.IPv4Network(f"10.{random.randint(100, 199)}.{random.randint(0, 255)}.0/24")
        if str(net) not in _used and not any(net.overlaps(t) for t in taken):
            _used.add(str(net))
            return net
    raise RuntimeError("no free test subnet")


class Env:
    """Makes drivers on a private bridge and cleans everything up."""

    def __init__(self, tmp_path: Path, firewall: str = "nftables") -> None:
        self.firewall = firewall
        self.tmp = tmp_path
        self.drivers: list = []
        self.bridges: set[str] = set()
        self.roots: list[Path] = []
        self.procs: list[subprocess.Popen] = []

    def options(self, **extra) -> dict:
        net = free_subnet()
        bridge = "dyt" + secrets.token_hex(4)
        self.bridges.add(bridge)
        opts = {
            "bridge": bridge,
            "bip": f"{net.network_address + 1}/{net.prefixlen}",
            "firewall": self.firewall,
            "dns_upstream": "none",
        }
        opts.update(extra)
        return opts

    def driver(self, options: dict | None = None, root: Path | None = None):
        from dockyard.plugins.net_bridge.driver import BridgeNetworkDriver

        options = options or self.options()
        self.bridges.add(options["bridge"])
        root = root or self.tmp / f"root{len(self.roots)}"
        self.roots.append(root)
        d = BridgeNetworkDriver(root, options)
        d._test_options = options
        self.drivers.append(d)
        for row in d.store.networks():
            self.bridges.add(row["bridge"])
        return d

    def spawn(self, *argv: str) -> subprocess.Popen:
        p = subprocess.Popen(list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        return p

    def serve_tcp(self, netns: str, port: int, reply: str = "hello") -> subprocess.Popen:
        """A persistent busybox TCP server in ``netns`` that answers each connection with ``reply``."""
        p = self.spawn(
            "ip", "netns", "exec", netns, BUSYBOX, "nc", "-ll", "-p", str(port), "-e", BUSYBOX, "echo", reply
        )
        wait_listening(netns, port)
        return p

    def serve_udp(self, netns: str, port: int) -> subprocess.Popen:
        code = (
            "import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(('0.0.0.0',%d))\n"
            "while True:\n d,a=s.recvfrom(2048);s.sendto(b'echo:'+d,a)" % port
        )
        p = self.spawn("ip", "netns", "exec", netns, sys.executable, "-c", code)
        wait_listening(netns, port, udp=True)
        return p

    def cleanup(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait()
        names = set()
        for d in self.drivers:
            try:
                names |= {r["netns"] for r in d.store.endpoints()}
                names |= {f"dockyard-{r['container_id'][:16]}" for r in d.store.endpoints()}
                for t in d.store.get_meta("tables", []):
                    delete_rules(t)
                d.close()
            except Exception:
                pass
        for root in self.roots:  # also drivers made in subprocesses
            db = root / "bridge.db"
            if db.exists():
                import sqlite3

                con = sqlite3.connect(db)
                for cid, ns in con.execute("SELECT container_id, netns FROM endpoints"):
                    names |= {ns, f"dockyard-{cid[:16]}"}
                con.close()
        for name in names:
            if name and Path("/run/netns", name).exists():
                subprocess.run(["ip", "netns", "del", name], capture_output=True)
        for bridge in self.bridges:
            out = subprocess.run(["ip", "-o", "link", "show", "master", bridge], capture_output=True, text=True)
            for line in out.stdout.splitlines():
                subprocess.run(["ip", "link", "del", line.split(":")[1].strip().split("@")[0]], capture_output=True)
            subprocess.run(["ip", "link", "del", bridge], capture_output=True)
            subprocess.run(
                ["nft", "delete", "table", "ip", "dockyard_" + bridge.replace("-", "_")], capture_output=True
            )
            if self.firewall != "nftables":
                delete_rules(f"{self.firewall}:DOCKYARD-{bridge}")


def delete_rules(recorded: str) -> None:
    """Remove an nft table or a set of iptables chains of ours (missing is fine)."""
    from dockyard.plugins.net_bridge import firewall

    try:
        firewall.backend_of(recorded).delete(recorded)
    except Exception:
        pass


def rules(d) -> str:
    """The text of a driver's default-bridge rules, whatever its backend."""
    name = d.fw.table_name(d.opts.table_prefix, d.opts.bridge)
    return d.fw.listing(name)


def dnat_count(d) -> int:
    return d.fw.count_dnat(d.fw.table_name(d.opts.table_prefix, d.opts.bridge))


def wait_listening(netns: str, port: int, timeout: float = 5, udp: bool = False) -> None:
    """Wait until something in ``netns`` listens on ``port`` (TCP, or bound to it with ``udp``)."""
    flags = "-lun" if udp else "-ltn"

    def listening() -> bool:
        out = subprocess.run(
            ["ip", "netns", "exec", netns, BUSYBOX, "netstat", flags], capture_output=True, text=True
        ).stdout
        return f":{port} " in out

    if not wait_for(listening, timeout=timeout, interval=0.05):
        raise TimeoutError(f"nothing listens on {port} in {netns}")


def fetch(host: str, port: int, timeout: float = 3) -> bytes:
    with socket.create_connection((host, port), timeout=timeout) as s:
        data = b""
        while True:
            chunk = s.recv(100)
            if not chunk:
                return data
            data += chunk


def fetch_from(netns: str, host: str, port: int) -> str:
    """Connect from inside ``netns`` with busybox nc; returns what the server said."""
    out = subprocess.run(
        ["ip", "netns", "exec", netns, BUSYBOX, "nc", "-w", "3", host, str(port)],
        capture_output=True,
        text=True,
        timeout=10,
        input="",
    )
    return out.stdout


def cid(n: int | None = None) -> str:
    import hashlib

    return secrets.token_hex(32) if n is None else hashlib.sha256(f"test-{n}".encode()).hexdigest()
