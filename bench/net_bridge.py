"""Bridge driver benchmark (root; real kernel; traffic only to loopback and the bench's own bridge).

    python bench/net_bridge.py [--count 50] [--bytes 1073741824]

Reports: median prepare / release / prepare+release per container (bridge vs
``none`` mode), time to prepare 50 bridged containers, and throughput of a
bounded transfer through a port mapping (127.0.0.1:<host port>, DNAT) vs
directly to the container IP.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dockyard.models.runtime import NetworkRequest
from dockyard.plugins.net_bridge.driver import BridgeNetworkDriver

SINK = r"""
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(8)
print("up", flush=True)
while True:
    c, _ = s.accept()
    n = 0
    buf = bytearray(1 << 20)
    while True:
        k = c.recv_into(buf)
        if not k:
            break
        n += k
    c.sendall(str(n).encode()); c.close()
"""


def free_subnet() -> str:
    out = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    taken = []
    for line in out.splitlines():
        word = line.split()[1] if line.startswith(("local", "broadcast")) else line.split()[0]
        if word != "default":
            taken.append(ipaddress.IPv4Network(word, strict=False))
    while True:
        net = ipaddress.IPv4Network(f"10.{random.randint(100, 199)}.{random.randint(0, 255)}.0/24")
        if not any(net.overlaps(t) for t in taken):
            return f"{net.network_address + 1}/24"


def transfer(host: str, port: int, total: int) -> float:
    chunk = b"\0" * (1 << 20)
    with socket.create_connection((host, port), timeout=30) as s:
        start = time.perf_counter()
        sent = 0
        while sent < total:
            s.sendall(chunk)
            sent += len(chunk)
        s.shutdown(socket.SHUT_WR)
        got = int(s.recv(64))
        elapsed = time.perf_counter() - start
    assert got == sent, (got, sent)
    return sent / elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=50)
    ap.add_argument("--bytes", type=int, default=1 << 30)
    args = ap.parse_args()
    bridge = "dyb" + secrets.token_hex(4)
    root = Path(tempfile.mkdtemp(prefix="dy-bench-"))
    d = BridgeNetworkDriver(root, {"bridge": bridge, "bip": free_subnet()})
    results: dict = {}
    sink = None
    try:
        for mode in ("none", "bridge"):
            prep, rel = [], []
            for _ in range(args.count):
                c = secrets.token_hex(32)
                t = time.perf_counter()
                d.network_prepare(NetworkRequest(container_id=c, mode=mode))
                prep.append(time.perf_counter() - t)
                t = time.perf_counter()
                d.network_release(c)
                d.network_remove(c)
                rel.append(time.perf_counter() - t)
                time.sleep(0.01)  # let the kernel's asynchronous netns clean-up run, as between real starts
            results[mode] = {
                "prepare_ms": statistics.median(prep) * 1e3,
                "release_ms": statistics.median(rel) * 1e3,
                "both_ms": statistics.median([a + b for a, b in zip(prep, rel, strict=True)]) * 1e3,
            }
        results["added_by_bridge_ms"] = results["bridge"]["prepare_ms"] - results["none"]["prepare_ms"]
        ids = [secrets.token_hex(32) for _ in range(args.count)]
        t = time.perf_counter()
        for c in ids:
            d.network_prepare(NetworkRequest(container_id=c, mode="bridge", port_bindings={"80/tcp": [{}]}))
        results[f"prepare_{args.count}_with_port_s"] = time.perf_counter() - t
        t = time.perf_counter()
        for c in ids:
            d.network_remove(c)
        results[f"remove_{args.count}_s"] = time.perf_counter() - t

        c = secrets.token_hex(32)
        a = d.network_prepare(NetworkRequest(container_id=c, mode="bridge", port_bindings={"9000/tcp": [{}]}))
        port = int(a.settings["Ports"]["9000/tcp"][0]["HostPort"])
        sink = subprocess.Popen(
            ["ip", "netns", "exec", a.netns.name, sys.executable, "-c", SINK, "9000"], stdout=subprocess.PIPE, text=True
        )
        assert sink.stdout.readline().strip() == "up"
        results["bytes"] = args.bytes
        results["direct_GBps"] = transfer(a.settings["IPAddress"], 9000, args.bytes) / 1e9
        results["mapped_127_GBps"] = transfer("127.0.0.1", port, args.bytes) / 1e9
        d.network_remove(c)
    finally:
        if sink is not None:
            sink.kill()
        d.network_cleanup()
        d.close()
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
