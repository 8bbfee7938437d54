"""The embedded DNS resolver of user networks, on a real kernel.

Queries are sent from inside the containers' namespaces to the networks'
gateway addresses (on the test's own bridges).  Upstream forwarding is only
exercised towards a fake resolver on 127.0.0.1; every other test runs with
``dns_upstream=none`` (unknown names: NXDOMAIN).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading

import pytest

from dnslib import QTYPE, RCODE, RR, A, DNSRecord  # noqa: E402

from dockyard.models.runtime import NetworkRequest  # noqa: E402
from dockyard.plugins.net_bridge import dns  # noqa: E402

from tests.helpers.bridge import cid  # noqa: E402

pytestmark = pytest.mark.requires_root

QUERY = """
import json, sys
from dnslib import DNSRecord
name, qtype, server, tcp = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "tcp"
try:
    raw = DNSRecord.question(name, qtype).send(server, 53, tcp=tcp, timeout=3)
except Exception as exc:
    print(json.dumps({"error": str(exc)})); sys.exit()
r = DNSRecord.parse(raw)
print(json.dumps({"rcode": r.header.rcode, "answers": [str(rr.rdata) for rr in r.rr]}))
"""


def query(netns: str, server: str, name: str, qtype: str = "A", tcp: bool = False) -> dict:
    out = subprocess.run(
        ["ip", "netns", "exec", netns, sys.executable, "-c", QUERY, name, qtype, server, "tcp" if tcp else "udp"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def req(container_id, mode, **kw):
    return NetworkRequest(container_id=container_id, mode=mode, **kw)


def subnet_of(env) -> str:
    return env.options()["bip"].rsplit(".", 1)[0] + ".0/24"


@pytest.fixture
def nets(env):
    """A driver with two user networks, n1 (a, b) and n2 (x)."""
    d = env.driver()
    n1, n2 = (f"dyt-{os.urandom(3).hex()}" for _ in range(2))
    for n in (n1, n2):
        d.network_create(n, {"IPAM": {"Config": [{"Subnet": subnet_of(env)}]}})
        env.bridges.add(d.store.network(n)["bridge"])
    a, b, x = cid(), cid(), cid()
    att = {
        "a": d.network_prepare(req(a, n1, name="alpha", aliases=["web"])),
        "b": d.network_prepare(req(b, n1, name="beta", aliases=["db", "Cache"])),
        "x": d.network_prepare(req(x, n2, name="xray")),
    }
    gw1, gw2 = d.store.network(n1)["gateway"], d.store.network(n2)["gateway"]
    return d, n1, n2, {"a": a, "b": b, "x": x}, att, gw1, gw2


def ip_on(att, network):
    return att.settings["Networks"][network]["IPAddress"]


def test_names_aliases_and_isolation(nets):
    d, n1, n2, ids, att, gw1, gw2 = nets
    ns_a, ns_x = att["a"].netns.name, att["x"].netns.name
    ip_b = ip_on(att["b"], n1)
    for name in ("beta", "db", "cache", "CACHE", ids["b"][:12], f"beta.{n1}"):
        assert query(ns_a, gw1, name) == {"rcode": RCODE.NOERROR, "answers": [ip_b]}, name
    assert query(ns_a, gw1, "beta", tcp=True) == {"rcode": RCODE.NOERROR, "answers": [ip_b]}
    assert query(ns_a, gw1, "alpha")["answers"] == [ip_on(att["a"], n1)]  # itself
    # a local name has no AAAA: NOERROR, empty (not NXDOMAIN, not forwarded)
    assert query(ns_a, gw1, "beta", "AAAA") == {"rcode": RCODE.NOERROR, "answers": []}
    # PTR of a peer
    rev = ".".join(reversed(ip_b.split("."))) + ".in-addr.arpa"
    assert query(ns_a, gw1, rev, "PTR")["answers"] == [f"beta.{n1}."]
    # unknown name, no upstream: NXDOMAIN
    assert query(ns_a, gw1, "nosuchname")["rcode"] == RCODE.NXDOMAIN
    # x (on n2) cannot see n1's names through its own resolver...
    assert query(ns_x, gw2, "beta")["rcode"] == RCODE.NXDOMAIN
    assert query(ns_x, gw2, "xray")["answers"] == [ip_on(att["x"], n2)]
    # ...nor by asking n1's resolver directly: refused (x is no container of n1)
    assert query(ns_x, gw1, "beta")["rcode"] == RCODE.REFUSED
    # and n1 does not see n2
    assert query(ns_a, gw1, "xray")["rcode"] == RCODE.NXDOMAIN


def test_connect_disconnect_and_stop_change_what_resolves(nets):
    d, n1, n2, ids, att, gw1, gw2 = nets
    ns_x = att["x"].netns.name
    d.network_connect(ids["x"], n1, ["xalias"])
    ip_x1 = d.network_settings(ids["x"])["Networks"][n1]["IPAddress"]
    # x's resolver (n2's gateway) now answers n1's names too: x shares n1 with them (as Docker)
    assert query(ns_x, gw2, "beta")["answers"] == [ip_on(att["b"], n1)]
    assert query(att["a"].netns.name, gw1, "xalias")["answers"] == [ip_x1]
    assert query(att["a"].netns.name, gw1, "xray")["answers"] == [ip_x1]  # its address on n1, not on n2
    d.network_disconnect(ids["x"], n1)
    assert query(ns_x, gw2, "beta")["rcode"] == RCODE.NXDOMAIN
    r = query(att["a"].netns.name, gw1, "xray")
    assert r.get("rcode") == RCODE.NXDOMAIN, r
    # a stopped container stops resolving; started again, it does again
    d.network_release(ids["b"])
    assert query(att["a"].netns.name, gw1, "beta")["rcode"] == RCODE.NXDOMAIN
    d.network_prepare(req(ids["b"], n1, name="beta", aliases=["db"]))
    assert query(att["a"].netns.name, gw1, "db")["answers"] == [ip_on(att["b"], n1)]


def test_resolver_comes_back_after_a_restart_and_goes_with_the_network(env, nets):
    d, n1, n2, ids, att, gw1, gw2 = nets
    assert set(d.dns.serving()) == {n1, n2}
    opts, root = d._test_options, d.root
    d.close()  # like a daemon that exits (or dies): the resolver goes with the process
    assert query(att["a"].netns.name, gw1, "beta").get("error")
    d = env.driver(opts, root=root)
    assert set(d.dns.serving()) == {n1, n2}
    assert query(att["a"].netns.name, gw1, "beta")["answers"] == [ip_on(att["b"], n1)]
    assert ("Embedded DNS", "2 resolver(s) on the gateways of user networks") in d.network_status()
    for c in ids.values():
        d.network_remove(c)
    d.network_delete(n2)
    assert set(d.dns.serving()) == {n1}
    d.close()
    assert not d.dns or not d.dns.thread.is_alive()


def test_default_bridge_has_no_resolver(env):
    d = env.driver()
    d.network_prepare(NetworkRequest(container_id=cid(), mode="bridge", name="plain"))
    assert d._resolver_for("bridge") == [] and d.dns is None


class FakeUpstream:
    """A resolver on 127.0.0.1 (UDP and TCP) that answers every A query with 127.0.0.7."""

    def __init__(self) -> None:
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.port = self.udp.getsockname()[1]
        self.tcp = socket.socket()
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind(("127.0.0.1", self.port))
        self.tcp.listen()
        self.seen: list[str] = []
        threading.Thread(target=self._udp, daemon=True).start()
        threading.Thread(target=self._tcp, daemon=True).start()

    def _reply(self, data: bytes) -> bytes:
        q = DNSRecord.parse(data)
        self.seen.append(str(q.q.qname))
        r = q.reply()
        r.add_answer(RR(q.q.qname, QTYPE.A, rdata=A("127.0.0.7"), ttl=5))
        return r.pack()

    def _udp(self) -> None:
        while True:
            try:
                data, addr = self.udp.recvfrom(4096)
            except OSError:
                return
            self.udp.sendto(self._reply(data), addr)

    def _tcp(self) -> None:
        while True:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            with conn:
                size = int.from_bytes(conn.recv(2), "big")
                data = b""
                while len(data) < size:
                    data += conn.recv(size - len(data))
                out = self._reply(data)
                conn.sendall(len(out).to_bytes(2, "big") + out)

    def close(self) -> None:
        self.udp.close()
        self.tcp.close()


def test_other_names_are_forwarded_upstream_over_udp_and_tcp(env):
    upstream = FakeUpstream()
    try:
        d = env.driver(env.options(dns_upstream=f"127.0.0.1:{upstream.port}"))
        n = f"dyt-{os.urandom(3).hex()}"
        d.network_create(n, {"IPAM": {"Config": [{"Subnet": subnet_of(env)}]}})
        env.bridges.add(d.store.network(n)["bridge"])
        a = d.network_prepare(req(cid(), n, name="alpha"))
        gw = d.store.network(n)["gateway"]
        assert query(a.netns.name, gw, "elsewhere.test")["answers"] == ["127.0.0.7"]
        assert query(a.netns.name, gw, "tcp.elsewhere.test", tcp=True)["answers"] == ["127.0.0.7"]
        assert query(a.netns.name, gw, "alpha")["answers"] == [ip_on(a, n)]
        assert upstream.seen == ["elsewhere.test.", "tcp.elsewhere.test."]  # local names never leave
        # a container's own --dns servers take the daemon's place (none reachable here: SERVFAIL, not a leak)
        b = d.network_prepare(NetworkRequest(container_id=cid(), mode=n, name="beta"))
        d.store.execute("UPDATE endpoints SET dns = ? WHERE ip = ?", json.dumps(["127.0.0.1:9"]), ip_on(b, n))
        assert query(b.netns.name, gw, "elsewhere.test")["rcode"] == RCODE.SERVFAIL
        assert len(upstream.seen) == 2
    finally:
        upstream.close()


# -- protocol unit tests: no sockets -------------------------------------------------
class Directory:
    def dns_scope(self, network, client_ip):
        return ["n1"] if client_ip == "10.0.0.2" else None

    def dns_addresses(self, networks, name):
        return ["10.0.0.3"] if name == "peer" else None

    def dns_name_of(self, networks, ip):
        return "peer.n1" if ip == "10.0.0.3" else None

    def dns_upstream(self, network, client_ip):
        return []


def test_answer_units():
    directory = Directory()
    reply, forward = dns.answer(directory, "n1", "10.0.0.2", DNSRecord.question("peer").pack())
    r = DNSRecord.parse(reply)
    assert not forward and [str(x.rdata) for x in r.rr] == ["10.0.0.3"] and r.rr[0].ttl == dns.TTL
    assert dns.answer(directory, "n1", "10.0.0.2", DNSRecord.question("other.example").pack()) == (None, True)
    refused, _ = dns.answer(directory, "n1", "10.9.9.9", DNSRecord.question("peer").pack())
    assert DNSRecord.parse(refused).header.rcode == RCODE.REFUSED
    assert dns.answer(directory, "n1", "10.0.0.2", b"\x00garbage") == (None, False)
    ptr, _ = dns.answer(directory, "n1", "10.0.0.2", DNSRecord.question("3.0.0.10.in-addr.arpa", "PTR").pack())
    assert str(DNSRecord.parse(ptr).rr[0].rdata) == "peer.n1."
    assert DNSRecord.parse(dns.nxdomain(DNSRecord.question("x").pack())).header.rcode == RCODE.NXDOMAIN


def test_server_lists(tmp_path):
    assert dns.parse_servers("10.0.0.1, 127.0.0.1:5353") == [("10.0.0.1", 53), ("127.0.0.1", 5353)]
    assert dns.parse_servers("none") == []
    with pytest.raises(OSError):
        dns.parse_servers("not-an-ip")
    conf = tmp_path / "resolv.conf"
    conf.write_text("search example\nnameserver 127.0.0.53\nnameserver ::1\nnameserver 10.1.1.1\n")
    assert dns.host_servers(conf) == [("127.0.0.53", 53), ("10.1.1.1", 53)]
