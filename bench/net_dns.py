"""Embedded DNS and firewall-backend benchmark (root; real kernel; traffic only on the bench's own bridges).

    python bench/net_dns.py [--queries 2000] [--ports 50]

Reports: median and p99 latency of an A query for a container name through a
user network's resolver (from inside a container's namespace, UDP), and, per
firewall backend (nftables, iptables), the time to prepare N containers with
a published port each (one atomic rules apply per container) and the time of
one full re-apply at restart.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dockyard.models.runtime import NetworkRequest
from dockyard.plugins.net_bridge import firewall
from dockyard.plugins.net_bridge.driver import BridgeNetworkDriver

CLIENT = r"""
import json, socket, sys, time
from dnslib import DNSRecord
server, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
packet = DNSRecord.question(name).pack()
times = []
for _ in range(n):
    t = time.perf_counter()
    s.sendto(packet, (server, 53))
    s.recvfrom(4096)
    times.append(time.perf_counter() - t)
print(json.dumps(times))
"""


def free_subnet() -> ipaddress.IPv4Network:
    routes = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    taken = []
    for line in routes.splitlines():
        word = line.split()[1] if line.startswith(("local", "broadcast")) else line.split()[0]
        if word != "default":
            taken.append(ipaddress.IPv4Network(word, strict=False))
    while True:
        net = ipaddress.IPv4Network(f"10.{random.randint(100, 199)}.{random.randint(0, 255)}.0/24")
        if not any(net.overlaps(t) for t in taken):
            return net


def cleanup(d: BridgeNetworkDriver, bridges: list[str]) -> None:
    for ep in d.store.endpoints():
        d.network_remove(ep["container_id"])
    for row in d.store.networks():
        if not row["builtin"]:
            d.network_delete(row["name"])
    d.network_cleanup()
    d.close()
    for b in bridges:
        subprocess.run(["ip", "link", "del", b], capture_output=True)


def bench_dns(queries: int) -> dict:
    bridge = "dyb" + secrets.token_hex(4)
    net = free_subnet()
    with tempfile.TemporaryDirectory() as tmp:
        d = BridgeNetworkDriver(
            Path(tmp), {"bridge": bridge, "bip": f"{net.network_address + 1}/24", "dns_upstream": "none"}
        )
        bridges = [bridge]
        try:
            name = f"dyb-{secrets.token_hex(3)}"
            d.network_create(name, {"IPAM": {"Config": [{"Subnet": str(free_subnet())}]}})
            bridges.append(d.store.network(name)["bridge"])
            a = d.network_prepare(NetworkRequest(container_id=secrets.token_hex(32), mode=name, name="client"))
            d.network_prepare(
                NetworkRequest(container_id=secrets.token_hex(32), mode=name, name="server", aliases=["db"])
            )
            gw = d.store.network(name)["gateway"]
            out = subprocess.run(
                ["ip", "netns", "exec", a.netns.name, sys.executable, "-c", CLIENT, gw, "db", str(queries)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            times = sorted(json.loads(out))
            return {
                "queries": queries,
                "median_ms": round(statistics.median(times) * 1e3, 3),
                "p99_ms": round(times[int(len(times) * 0.99) - 1] * 1e3, 3),
                "qps_one_client": round(len(times) / sum(times)),
            }
        finally:
            cleanup(d, bridges)


def bench_firewall(kind: str, ports: int) -> dict:
    bridge = "dyb" + secrets.token_hex(4)
    net = free_subnet()
    opts = {"bridge": bridge, "bip": f"{net.network_address + 1}/24", "firewall": kind}
    with tempfile.TemporaryDirectory() as tmp:
        d = BridgeNetworkDriver(Path(tmp), opts)
        try:
            start = time.perf_counter()
            for _ in range(ports):
                d.network_prepare(
                    NetworkRequest(container_id=secrets.token_hex(32), mode="bridge", port_bindings={"80/tcp": [{}]})
                )
            prepare = time.perf_counter() - start
            d.close()
            start = time.perf_counter()
            d = BridgeNetworkDriver(Path(tmp), opts)  # a restart: reconcile and one full re-apply
            restart = time.perf_counter() - start
            count = d.fw.count_dnat(d.fw.table_name(d.opts.table_prefix, bridge))
            return {
                "backend": kind,
                "containers": ports,
                "prepare_total_s": round(prepare, 3),
                "per_container_ms": round(prepare / ports * 1e3, 1),
                "restart_s": round(restart, 3),
                "dnat_rules": count,
            }
        finally:
            cleanup(d, [bridge])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--ports", type=int, default=50)
    args = parser.parse_args()
    print(json.dumps({"dns": bench_dns(args.queries)}))
    for kind in ("nftables", "iptables"):
        try:
            firewall.backend(kind).check_available()
        except Exception as exc:
            print(json.dumps({"backend": kind, "skipped": str(exc)}))
            continue
        print(json.dumps(bench_firewall(kind, args.ports)))
    assert shutil.which("ip")


if __name__ == "__main__":
    main()
