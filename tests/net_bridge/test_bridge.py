"""The bridge driver on a real kernel: bridge, netns, veth, IPAM, NAT, ports, reconcile."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dockyard.errors import Conflict, InvalidParameter, NotFound
from dockyard.models.runtime import NetworkRequest

from tests.helpers.bridge import cid, dnat_count, fetch, fetch_from, rules

pytestmark = pytest.mark.requires_root


def req(container_id, **kw):
    return NetworkRequest(container_id=container_id, mode=kw.pop("mode", "bridge"), **kw)


def ns_json(netns, *args):
    return json.loads(
        subprocess.run(["ip", "-n", netns, "-j", *args], capture_output=True, text=True, check=True).stdout
    )


def nft_table(d) -> str:
    return rules(d)


def veths_on(bridge) -> list[str]:
    out = subprocess.run(["ip", "-o", "link", "show", "master", bridge], capture_output=True, text=True).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_bridge_and_endpoint_shape(env):
    opts = env.options(mtu="1400")
    d = env.driver(opts)
    link = json.loads(
        subprocess.run(["ip", "-j", "-d", "addr", "show", opts["bridge"]], capture_output=True, text=True).stdout
    )[0]
    assert link["linkinfo"]["info_kind"] == "bridge" and link["mtu"] == 1400
    assert f"{link['addr_info'][0]['local']}/{link['addr_info'][0]['prefixlen']}" == opts["bip"]
    c = cid()
    a = d.network_prepare(req(c, name="web"))
    s = a.settings
    name = a.netns.name
    assert a.netns == Path("/run/netns") / f"dockyard-{c[:16]}"
    links = {link["ifname"]: link for link in ns_json(name, "addr")}
    assert set(links) == {"lo", "eth0"}
    eth0 = links["eth0"]
    assert eth0["mtu"] == 1400 and "UP" in eth0["flags"] and "UP" in links["lo"]["flags"]
    assert eth0["address"] == s["MacAddress"] == "02:42:" + ":".join(f"{int(b):02x}" for b in s["IPAddress"].split("."))
    assert eth0["addr_info"][0]["local"] == s["IPAddress"]
    assert s["Gateway"] == opts["bip"].split("/")[0] and s["IPPrefixLen"] == 24 and s["Bridge"] == opts["bridge"]
    routes = ns_json(name, "route")
    assert {"dst": "default", "gateway": s["Gateway"], "dev": "eth0"}.items() <= routes[0].items()
    assert s["Networks"]["bridge"]["IPAddress"] == s["IPAddress"]
    assert len(veths_on(opts["bridge"])) == 1
    assert Path(f"/proc/sys/net/ipv4/conf/{opts['bridge']}/route_localnet").read_text().strip() == "1"


def test_server_reachable_by_ip_by_mapped_port_and_from_another_container(env):
    d = env.driver()
    server, client = cid(), cid()
    a = d.network_prepare(req(server, port_bindings={"6379/tcp": [{"HostIp": "", "HostPort": ""}]}))
    b = d.network_prepare(req(client))
    port = int(a.settings["Ports"]["6379/tcp"][0]["HostPort"])
    assert port >= 49153
    assert d.network_settings(server)["Ports"] == a.settings["Ports"]
    env.serve_tcp(a.netns.name, 6379, "redis-ok")
    ip, gw = a.settings["IPAddress"], a.settings["Gateway"]
    assert fetch(ip, 6379) == b"redis-ok\n"  # container IP from the host
    assert fetch("127.0.0.1", port) == b"redis-ok\n"  # 127.0.0.1:<mapped> from the host
    assert fetch(gw, port) == b"redis-ok\n"  # a host address on the test bridge
    assert fetch_from(b.netns.name, ip, "6379") == "redis-ok\n"  # from a second container
    assert fetch_from(b.netns.name, gw, str(port)) == "redis-ok\n"  # published port, hairpin NAT
    assert fetch_from(a.netns.name, gw, str(port)) == "redis-ok\n"  # a container reaching its own port


def test_fixed_and_ip_specific_and_udp_ports(env):
    d = env.driver()
    c = cid()
    tcp_port, udp_port = free_port(), free_port()
    a = d.network_prepare(
        req(
            c,
            port_bindings={
                "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(tcp_port)}],
                "53/udp": [{"HostIp": "", "HostPort": str(udp_port)}],
            },
            exposed_ports=["80/tcp", "53/udp", "9999/tcp"],
        )
    )
    assert a.settings["Ports"] == {
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(tcp_port)}],
        "53/udp": [{"HostIp": "0.0.0.0", "HostPort": str(udp_port)}],
        "9999/tcp": None,
    }
    env.serve_tcp(a.netns.name, 80, "web")
    env.serve_udp(a.netns.name, 53)
    assert fetch("127.0.0.1", tcp_port) == b"web\n"
    with pytest.raises(OSError):  # bound to 127.0.0.1 only: the gateway address does not map
        fetch(a.settings["Gateway"], tcp_port, timeout=1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(3)
        u.sendto(b"ping", ("127.0.0.1", udp_port))
        assert u.recvfrom(100)[0] == b"echo:ping"


def test_publish_all_and_sequential_auto_ports(env):
    d = env.driver()
    a = d.network_prepare(req(cid(), exposed_ports=["80/tcp", "443/tcp"], publish_all=True))
    b = d.network_prepare(req(cid(), port_bindings={"80/tcp": [{}]}))
    got = [int(a.settings["Ports"][k][0]["HostPort"]) for k in ("80/tcp", "443/tcp")]
    got.append(int(b.settings["Ports"]["80/tcp"][0]["HostPort"]))
    assert len(set(got)) == 3 and all(p >= 49153 for p in got)


def test_port_in_use_is_a_clear_error(env):
    d = env.driver()
    with socket.socket() as squatter:
        squatter.bind(("0.0.0.0", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        c = cid()
        with pytest.raises(Conflict, match=f"0.0.0.0:{port}: bind: address already in use"):
            d.network_prepare(req(c, port_bindings={"80/tcp": [{"HostPort": str(port)}]}))
    # the failed start left nothing behind
    assert veths_on(d._test_options["bridge"]) == []
    assert not Path(f"/run/netns/dockyard-{c[:16]}").exists()
    assert dnat_count(d) == 0
    # one of ours holds it: "port is already allocated"
    port = free_port()
    d.network_prepare(req(cid(), port_bindings={"80/tcp": [{"HostPort": str(port)}]}))
    with pytest.raises(Conflict, match=f"Bind for 127.0.0.1:{port} failed: port is already allocated"):
        d.network_prepare(req(cid(), port_bindings={"81/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}))
    # and no host program can take it while it is published
    with socket.socket() as s, pytest.raises(OSError):
        s.bind(("0.0.0.0", port))


def test_prepare_and_release_are_idempotent(env):
    d = env.driver()
    c = cid()
    a1 = d.network_prepare(req(c, port_bindings={"80/tcp": [{}]}))
    a2 = d.network_prepare(req(c, port_bindings={"80/tcp": [{}]}))
    assert a1 == a2
    assert dnat_count(d) == 1
    d.network_release(c)
    d.network_release(c)
    d.network_remove(c)
    d.network_remove(c)
    assert veths_on(d._test_options["bridge"]) == []


def test_stop_keeps_address_and_port_rm_frees_them(env):
    d = env.driver()
    c = cid()
    a = d.network_prepare(req(c, port_bindings={"80/tcp": [{}]}))
    d.network_release(c)  # stop
    assert not a.netns.exists() and veths_on(d._test_options["bridge"]) == []
    assert dnat_count(d) == 0
    other = d.network_prepare(req(cid()))
    assert other.settings["IPAddress"] != a.settings["IPAddress"]
    again = d.network_prepare(req(c, port_bindings={"80/tcp": [{}]}))  # restart
    assert again.settings["IPAddress"] == a.settings["IPAddress"]
    assert again.settings["Ports"] == a.settings["Ports"]
    d.network_remove(c)  # rm
    assert d.store.endpoints(container_id=c) == [] and d.store.ports(container_id=c) == []
    with socket.socket() as s:
        s.bind(("0.0.0.0", int(a.settings["Ports"]["80/tcp"][0]["HostPort"])))  # the port is free again


def test_ipam_never_reuses_an_address_across_restarts(env):
    opts = env.options()
    d = env.driver(opts)
    root = d.root
    first = [d.network_prepare(req(cid(i))).settings["IPAddress"] for i in range(1, 4)]
    d.network_remove(cid(2))  # frees the second address
    d.close()
    d2 = env.driver(opts, root=root)
    # cid(1) and cid(3) still hold theirs (their namespaces survived); the freed one is not handed out next
    nxt = d2.network_prepare(req(cid(4))).settings["IPAddress"]
    assert nxt not in first
    held = [r["ip"] for r in d2.store.endpoints()]
    assert len(held) == len(set(held)) == 3


def test_fixed_cidr_limits_the_pool_and_exhaustion_is_reported(env):
    opts = env.options()
    base = opts["bip"].rsplit(".", 1)[0]
    opts["fixed_cidr"] = f"{base}.8/30"  # .8-.11: .9 and .10 usable (.8 and .11 are in the pool too)
    d = env.driver(opts)
    ips = [d.network_prepare(req(cid())).settings["IPAddress"] for _ in range(4)]
    assert sorted(ips) == sorted(f"{base}.{n}" for n in (8, 9, 10, 11))
    with pytest.raises(Exception, match="no available IPv4 address"):
        d.network_prepare(req(cid()))


CRASHER = textwrap.dedent("""
    import json, os, signal, sys
    from pathlib import Path
    from dockyard.plugins.net_bridge.driver import BridgeNetworkDriver
    from dockyard.models.runtime import NetworkRequest
    root, opts, ids = Path(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3:]
    d = BridgeNetworkDriver(root, opts)
    for i, c in enumerate(ids):
        d.network_prepare(NetworkRequest(container_id=c, mode="bridge",
                                         port_bindings={"80/tcp": [{"HostPort": ""}]}))
    print("ready", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def test_reconcile_after_sigkill(env, tmp_path):
    opts = env.options()
    root = tmp_path / "crash-root"
    env.roots.append(root)
    running, dead = cid(), cid()
    out = subprocess.run(
        [sys.executable, "-c", CRASHER, str(root), json.dumps(opts), running, dead],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == -signal.SIGKILL and "ready" in out.stdout, out.stderr
    bridge = opts["bridge"]
    # the "dead" container's namespace vanished while the daemon was down (its veth goes with it)
    subprocess.run(["ip", "netns", "del", f"dockyard-{dead[:16]}"], check=True)
    # a stray veth on our bridge, and a stale rule in our table
    subprocess.run(["ip", "link", "add", "dytleak0", "type", "veth", "peer", "name", "dytleak1"], check=True)
    subprocess.run(["ip", "link", "set", "dytleak0", "master", bridge], check=True)
    if env.firewall == "nftables":
        subprocess.run(
            [
                "nft",
                "add",
                "rule",
                "ip",
                "dockyard_" + bridge,
                "ports",
                "tcp",
                "dport",
                "1",
                "dnat",
                "to",
                "10.0.0.1:1",
            ],
            check=True,
        )
    else:  # a stale rule in our chain and a duplicate jump into it
        subprocess.run(
            [
                env.firewall,
                "-w",
                "-t",
                "nat",
                "-A",
                f"DOCKYARD-{bridge}",
                "-p",
                "tcp",
                "--dport",
                "1",
                "-j",
                "DNAT",
                "--to-destination",
                "10.0.0.1:1",
            ],
            check=True,
        )
        subprocess.run(
            [
                env.firewall,
                "-w",
                "-t",
                "nat",
                "-A",
                "PREROUTING",
                "-m",
                "addrtype",
                "--dst-type",
                "LOCAL",
                "-j",
                f"DOCKYARD-{bridge}",
            ],
            check=True,
        )
    d = env.driver(opts, root=root)
    assert veths_on(bridge) == [d.store.endpoint(running, "bridge")["veth"]]
    text = nft_table(d)
    assert dnat_count(d) == 1 and "dport 1 " not in text
    if env.firewall != "nftables":
        assert text.count(f"-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKYARD-{bridge}") == 1
    s = d.network_settings(running)
    port = int(s["Ports"]["80/tcp"][0]["HostPort"])
    env.serve_tcp(f"dockyard-{running[:16]}", 80, "survived")
    assert fetch("127.0.0.1", port) == b"survived\n"
    with socket.socket() as sq, pytest.raises(OSError):  # the port is reserved again
        sq.bind(("0.0.0.0", port))
    # the core's recover() releases the dead one; its address stays held until rm
    d.network_release(dead)
    assert d.store.endpoint(dead, "bridge")["active"] == 0
    # a second restart changes nothing
    d.close()
    d = env.driver(opts, root=root)
    assert dnat_count(d) == 1 and len(veths_on(bridge)) == 1
    assert len(nft_table(d).splitlines()) == len(text.splitlines())  # no rule or jump duplicated


def test_fifty_containers_leave_nothing_behind(env):
    d = env.driver()
    ids = [cid() for _ in range(50)]
    for i, c in enumerate(ids):
        d.network_prepare(req(c, port_bindings={"80/tcp": [{}]} if i % 2 else {}))
    bridge = d._test_options["bridge"]
    assert len(veths_on(bridge)) == 50 and dnat_count(d) == 25
    for c in ids:
        d.network_remove(c)
    assert veths_on(bridge) == []
    assert [n for n in os.listdir("/run/netns") if n in {f"dockyard-{c[:16]}" for c in ids}] == []
    assert dnat_count(d) == 0
    assert d.store.endpoints() == [] and d.store.ports() == [] and len(d.reservations) == 0


def test_two_daemons_do_not_disturb_each_other(env):
    d1, d2 = env.driver(), env.driver()
    a = d1.network_prepare(req(cid(), port_bindings={"80/tcp": [{}]}))
    b = d2.network_prepare(req(cid(), port_bindings={"80/tcp": [{}]}))
    assert a.settings["Ports"] != b.settings["Ports"]  # the second daemon skips the port the first holds
    env.serve_tcp(a.netns.name, 80, "one")
    env.serve_tcp(b.netns.name, 80, "two")
    # restart and shut down the first: the second's veth, namespace and rules are untouched
    d1.close()
    d1 = env.driver(d1._test_options, root=d1.root)
    assert fetch("127.0.0.1", int(b.settings["Ports"]["80/tcp"][0]["HostPort"])) == b"two\n"
    assert fetch("127.0.0.1", int(a.settings["Ports"]["80/tcp"][0]["HostPort"])) == b"one\n"
    d1.network_remove(next(iter(r["container_id"] for r in d1.store.endpoints())))
    d1.network_cleanup()
    assert not d1.fw.exists(d1.fw.table_name(d1.opts.table_prefix, d1.opts.bridge))
    assert d2.fw.exists(d2.fw.table_name(d2.opts.table_prefix, d2.opts.bridge))
    assert fetch("127.0.0.1", int(b.settings["Ports"]["80/tcp"][0]["HostPort"])) == b"two\n"
    assert len(veths_on(d2._test_options["bridge"])) == 1


def test_cleanup_keeps_rules_of_running_containers_and_drops_them_when_idle(env):
    d = env.driver()
    c = cid()
    d.network_prepare(req(c, port_bindings={"80/tcp": [{}]}))
    name = d.store.get_meta("tables")[0]
    d.network_cleanup()
    assert d.fw.count_dnat(name) == 1
    d.network_remove(c)
    d.network_cleanup()
    assert not d.fw.exists(name)
    if env.firewall != "nftables":  # the jumps into our chains are gone too
        saved = subprocess.run([f"{env.firewall}-save"], capture_output=True, text=True).stdout
        assert f"DOCKYARD-{d.opts.bridge}" not in saved


def test_modes_none_host_container(env):
    d = env.driver()
    c = cid()
    none = d.network_prepare(req(c, mode="none"))
    assert {link["ifname"] for link in ns_json(none.netns.name, "link")} == {"lo"}
    assert d.network_prepare(req(cid(), mode="host")).netns is None
    joined = d.network_prepare(req(cid(), mode=f"container:{c}", shared_netns=none.netns))
    assert joined.netns == none.netns
    with pytest.raises(Conflict):
        d.network_prepare(req(cid(), mode="container:gone", shared_netns=Path("/run/netns/dyt-nope")))
    with pytest.raises(NotFound):
        d.network_prepare(req(cid(), mode="no-such-network"))
    d.network_release(c)
    assert not none.netns.exists()


def test_user_networks_reach_inside_and_are_isolated_across(env):
    d = env.driver()
    n1, n2 = (f"dyt-{os.urandom(3).hex()}" for _ in range(2))
    sub1, sub2 = (env.options()["bip"] for _ in range(2))
    i1 = d.network_create(n1, {"IPAM": {"Config": [{"Subnet": sub1.rsplit(".", 1)[0] + ".0/24"}]}})
    i2 = d.network_create(n2, {"IPAM": {"Config": [{"Subnet": sub2.rsplit(".", 1)[0] + ".0/24"}]}})
    for info in (i1, i2):
        env.bridges.add(d.store.network(info["Name"])["bridge"])
    assert {n["Name"] for n in d.network_list()} == {"bridge", n1, n2}
    with pytest.raises(Conflict):
        d.network_create(n1, {})
    a = d.network_prepare(req(cid(), mode=n1, name="a"))
    b = d.network_prepare(req(cid(), mode=n1, name="b"))
    x = d.network_prepare(req(cid(), mode=n2, name="x"))
    ip_a = a.settings["Networks"][n1]["IPAddress"]
    assert a.settings["IPAddress"] == ""  # as Docker: top-level fields are for the default bridge only
    env.serve_tcp(a.netns.name, 7000, "same-net")
    assert fetch_from(b.netns.name, ip_a, "7000") == "same-net\n"
    assert fetch_from(x.netns.name, ip_a, "7000") == ""  # dropped by the isolation rule
    assert len(d.network_inspect(n1)["Containers"]) == 2
    with pytest.raises(Conflict):
        d.network_delete(n1)
    # connect x to n1 as well: eth1, and now it reaches a
    s = d.network_connect(x.settings and list(d.store.endpoints(network=n2))[0]["container_id"], n1, ["alias"])
    assert set(s["Networks"]) == {n1, n2}
    assert fetch_from(x.netns.name, ip_a, "7000") == "same-net\n"
    for r in d.store.endpoints():
        d.network_remove(r["container_id"])
    d.network_delete(n1)
    d.network_delete(n2)
    assert {n["Name"] for n in d.network_list()} == {"bridge"}
    with pytest.raises(InvalidParameter):
        d.network_create("ok", {"IPAM": {"Config": [{"Subnet": "not-a-subnet"}]}})
