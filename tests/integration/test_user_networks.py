"""User-defined networks end to end, through the docker CLI against a real daemon:
names and aliases through the embedded resolver, isolation between networks,
connect/disconnect, ls/inspect/rm; and a second daemon on the iptables backend.

The daemons run with ``dns_upstream=none``: a name the resolver does not know
is NXDOMAIN and no query ever leaves the host.  Traffic goes only to 127.0.0.1
and to addresses on the bridges these tests made; bridges, namespaces, nft
tables and iptables chains are removed in ``finally``.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess

import pytest

from tests.helpers.daemon import (
    ask,
    bridge_name,
    busybox_rootfs_tar,
    out,
    remove_all_containers,
    remove_bridge,
    start_daemon,
)

pytestmark = [
    pytest.mark.requires_root,
    pytest.mark.requires_lxc,
    pytest.mark.integration,
    pytest.mark.requires_docker_cli,
]

SERVER = "while true; do echo pong | nc -l -p 7000; done"
SUFFIX = os.urandom(3).hex()
NET1, NET2 = f"un1-{SUFFIX}", f"un2-{SUFFIX}"


def _cleanup_host(root) -> None:
    """Whatever a daemon on ``root`` left on the host: user-network bridges, tables, chains."""
    db = root / "data" / "network" / "bridge" / "bridge.db"
    bridges = [bridge_name(root)]
    if db.exists():
        con = sqlite3.connect(db)
        bridges += [b for (b,) in con.execute("SELECT bridge FROM networks WHERE builtin = 0")]
        con.close()
    from dockyard.plugins.net_bridge import firewall

    for bridge in bridges:
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)
        for fw in (firewall.NftablesBackend(), firewall.backend("iptables")):
            try:
                fw.delete(fw.table_name("dockyard", bridge))
            except Exception:
                pass
    remove_bridge(root)


def _daemon(tmp_path_factory, *opts: str):
    root = tmp_path_factory.mktemp("dockyard-un")
    d = start_daemon(root, ("--network-opt", "dns_upstream=none", *opts))
    result = d.dockyard("import", "-", "busybox:latest", input=busybox_rootfs_tar())
    assert result.returncode == 0, result.stderr.decode()
    return d


def _finish(d) -> None:
    try:
        remove_all_containers(d)
        if d.process.poll() is None:
            for line in d.docker("network", "ls", "-q", "--filter", "type=custom").stdout.decode().split():
                d.docker("network", "rm", line)
    finally:
        d.stop()
        _cleanup_host(d.root)
        shutil.rmtree(d.root, ignore_errors=True)


@pytest.fixture(scope="module")
def un(tmp_path_factory):
    d = _daemon(tmp_path_factory)
    try:
        yield d
    finally:
        _finish(d)


@pytest.fixture(scope="module")
def nets(un):
    """net1 with un-a (alias web) and un-b (a server on 7000, alias db); net2 with un-x."""
    out(un.docker("network", "create", NET1))
    out(un.docker("network", "create", NET2))
    out(
        un.docker("run", "-d", "--name", "un-a", "--network", NET1, "--network-alias", "web", "busybox", "sleep", "600")
    )
    out(
        un.docker(
            "run", "-d", "--name", "un-b", "--network", NET1, "--network-alias", "db", "busybox", "sh", "-c", SERVER
        )
    )
    out(un.docker("run", "-d", "--name", "un-x", "--network", NET2, "busybox", "sleep", "600"))
    ips = {name: ip_of(un, name, net) for name, net in (("un-a", NET1), ("un-b", NET1), ("un-x", NET2))}
    return ips


def ip_of(d, container: str, network: str) -> str:
    info = json.loads(out(d.docker("inspect", container)))[0]
    return info["NetworkSettings"]["Networks"][network]["IPAddress"]


def gateway_of(d, network: str) -> str:
    return json.loads(out(d.docker("network", "inspect", network)))[0]["IPAM"]["Config"][0]["Gateway"]


def run(d, network: str, script: str) -> subprocess.CompletedProcess:
    """``script`` in a new container on ``network``; refuses to look anything up (exit 97) unless
    the only nameserver is that network's own resolver, so no query can leave the host."""
    guard = (
        f"if grep '^nameserver' /etc/resolv.conf | grep -qv '^nameserver {gateway_of(d, network)}$'; "
        "then echo 'foreign nameserver' >&2; exit 97; fi; "
    )
    return d.docker("run", "--rm", "--network", network, "busybox", "sh", "-c", guard + script, timeout=90)


def test_resolv_conf_points_at_the_networks_resolver(un, nets):
    gateway = json.loads(out(un.docker("network", "inspect", NET1)))[0]["IPAM"]["Config"][0]["Gateway"]
    text = out(un.docker("run", "--rm", "--network", NET1, "busybox", "cat", "/etc/resolv.conf"))
    assert f"nameserver {gateway}" in text and "options ndots:0" in text
    # the default bridge has no embedded resolver (as Docker): no nameserver on its gateway
    default_gw = json.loads(out(un.docker("network", "inspect", "bridge")))[0]["IPAM"]["Config"][0]["Gateway"]
    assert f"nameserver {default_gw}" not in out(un.docker("run", "--rm", "busybox", "cat", "/etc/resolv.conf"))


def test_containers_reach_each_other_by_name_and_alias(un, nets):
    text = out(run(un, NET1, "nslookup un-b; nslookup db; nslookup web"))
    assert text.count(f"Address: {nets['un-b']}") == 2 and f"Address: {nets['un-a']}" in text
    assert out(run(un, NET1, "ping -c1 -W2 un-a && echo hi | nc -w 3 un-b 7000")).endswith("pong\n")
    assert out(run(un, NET1, "echo hi | nc -w 3 db 7000")) == "pong\n"


def test_unknown_names_are_nxdomain(un, nets):
    result = run(un, NET1, "nslookup no-such-container")
    assert result.returncode != 0 and "NXDOMAIN" in (result.stdout + result.stderr).decode()


def test_other_network_cannot_resolve_or_reach_them(un, nets):
    for name in ("un-b", "db", "web"):
        result = run(un, NET2, f"nslookup {name}")
        assert result.returncode != 0 and "NXDOMAIN" in (result.stdout + result.stderr).decode(), name
    result = run(un, NET2, f"echo hi | nc -w 2 {nets['un-b']} 7000")
    assert "pong" not in result.stdout.decode()
    # while net2's own names resolve on net2
    assert f"Address: {nets['un-x']}" in out(run(un, NET2, "nslookup un-x"))


def test_connect_and_disconnect(un, nets):
    out(un.docker("network", "connect", "--alias", "xalias", NET1, "un-x"))
    try:
        ip_x1 = ip_of(un, "un-x", NET1)
        text = out(run(un, NET1, "nslookup xalias; nslookup un-x"))
        assert text.count(f"Address: {ip_x1}") == 2
        containers = json.loads(out(un.docker("network", "inspect", NET1)))[0]["Containers"]
        assert {c["Name"] for c in containers.values()} == {"un-a", "un-b", "un-x"}
    finally:
        out(un.docker("network", "disconnect", NET1, "un-x"))
    result = run(un, NET1, "nslookup xalias")
    assert result.returncode != 0 and "NXDOMAIN" in (result.stdout + result.stderr).decode()
    assert NET1 not in json.loads(out(un.docker("inspect", "un-x")))[0]["NetworkSettings"]["Networks"]


def test_network_ls_inspect_and_rm(un, nets):
    names = out(un.docker("network", "ls", "--format", "{{.Name}}")).split()
    assert {"bridge", "host", "none", NET1, NET2} <= set(names)
    info = json.loads(out(un.docker("network", "inspect", NET2)))[0]
    assert info["Driver"] == "bridge" and info["IPAM"]["Config"][0]["Subnet"]
    result = un.docker("network", "rm", NET2)  # un-x is on it
    assert result.returncode != 0 and "active endpoints" in result.stderr.decode()
    out(un.docker("rm", "-f", "un-x"))
    out(un.docker("network", "rm", NET2))
    assert NET2 not in out(un.docker("network", "ls", "--format", "{{.Name}}")).split()
    assert un.docker("network", "inspect", NET2).returncode != 0


def test_resolver_survives_a_daemon_restart(un, nets, tmp_path_factory):
    un.stop()
    d = start_daemon(un.root, ("--network-opt", "dns_upstream=none"))
    un.process = d.process
    assert f"Address: {nets['un-b']}" in out(run(un, NET1, "nslookup db"))


# -- the iptables backend ---------------------------------------------------------------------
@pytest.mark.requires_iptables
def test_iptables_backend_smoke(tmp_path_factory):
    d = _daemon(tmp_path_factory, "--network-opt", "firewall=iptables")
    chain = f"DOCKYARD-{bridge_name(d.root)}"
    try:
        import docker as dockerpy

        client = dockerpy.DockerClient(base_url=d.host, timeout=30)
        status = dict(client.info()["DockyardNetworkStatus"])
        client.close()
        assert status["NAT"].startswith("iptables chains") and chain in status["NAT"]
        out(d.docker("run", "-d", "--name", "ipt-srv", "-p", "7000", "busybox", "sh", "-c", SERVER))
        port = int(out(d.docker("port", "ipt-srv", "7000")).splitlines()[0].rsplit(":", 1)[1])
        assert ask("127.0.0.1", port) == b"pong\n"
        saved = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
        assert f"-A {chain} -p tcp -m tcp --dport {port} -j DNAT" in saved
        assert f"-A PREROUTING -m addrtype --dst-type LOCAL -j {chain}" in saved
        # names on a user network of this daemon too
        net = f"unipt-{SUFFIX}"
        out(d.docker("network", "create", net))
        out(d.docker("run", "-d", "--name", "ipt-b", "--network", net, "busybox", "sh", "-c", SERVER))
        assert out(run(d, net, "echo hi | nc -w 3 ipt-b 7000")).endswith("pong\n")
        remove_all_containers(d)
        out(d.docker("network", "rm", net))
        d.stop()  # no container left: the daemon removes its chains and the jumps into them
        saved = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
        assert chain not in saved
    finally:
        _finish(d)
