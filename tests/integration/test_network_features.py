"""Network features real clients use, through the docker CLI and docker-py, as Docker documents them:
IPAM configuration, fixed addresses (``--ip``, ``--ip6``), IPv6 networks, ``--internal``, labels and
driver options, duplicate names, ``--mac-address``, link-local addresses, ``network connect`` giving
a container DNS on every network (running or only created), and legacy ``--link`` with
``DELETE /containers/{id}/{link}``.

The daemon runs with ``dns_upstream=none``: names it does not know are NXDOMAIN, and no query
leaves the host.  Traffic goes only to addresses on the bridges these tests made.
"""

from __future__ import annotations

import json

import docker as dockerpy_module
import pytest

from tests.helpers.daemon import busybox_daemon, remove_all_containers

pytestmark = [
    pytest.mark.requires_root,
    pytest.mark.requires_lxc,
    pytest.mark.integration,
    pytest.mark.requires_docker_cli,
]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    with busybox_daemon(tmp_path_factory.mktemp("dockyard-netfeatures"), ("--network-opt", "dns_upstream=none")) as d:
        try:
            yield d
        finally:  # the networks go before the daemon (their containers first)
            remove_all_containers(d)
            for name in ("nf-ipam", "nf-v6", "nf-internal", "nf-other", "nf-mtu", "nf-dns", "nf-link"):
                d.docker("network", "rm", name)


def ok(result) -> str:
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def fails(result) -> str:
    assert result.returncode != 0, result.stdout.decode()
    return result.stderr.decode()


def inspect(daemon, name: str) -> dict:
    return json.loads(ok(daemon.docker("inspect", name)))[0]


def test_ipam_configuration_and_fixed_addresses(daemon):
    ok(
        daemon.docker(
            "network",
            "create",
            "--subnet",
            "10.191.0.0/24",
            "--ip-range",
            "10.191.0.128/25",
            "--gateway",
            "10.191.0.254",
            "--aux-address",
            "reserved=10.191.0.128",
            "nf-ipam",
        )
    )
    ipam = json.loads(ok(daemon.docker("network", "inspect", "nf-ipam")))[0]["IPAM"]
    assert ipam["Config"] == [
        {
            "Subnet": "10.191.0.0/24",
            "IPRange": "10.191.0.128/25",
            "Gateway": "10.191.0.254",
            "AuxiliaryAddresses": {"reserved": "10.191.0.128"},
        }
    ]
    ok(daemon.docker("run", "-d", "--name", "nf-auto", "--network", "nf-ipam", "busybox", "sleep", "300"))
    auto = inspect(daemon, "nf-auto")["NetworkSettings"]["Networks"]["nf-ipam"]
    assert auto["IPAddress"] == "10.191.0.129"  # from the range, past the auxiliary address
    assert auto["Gateway"] == "10.191.0.254"
    ok(
        daemon.docker(
            "run", "-d", "--name", "nf-fixed", "--network", "nf-ipam", "--ip", "10.191.0.7", "busybox", "sleep", "300"
        )
    )
    fixed = inspect(daemon, "nf-fixed")["NetworkSettings"]["Networks"]["nf-ipam"]
    assert fixed["IPAddress"] == "10.191.0.7" and fixed["IPAMConfig"]["IPv4Address"] == "10.191.0.7"
    assert "inet 10.191.0.7/24" in ok(daemon.docker("exec", "nf-fixed", "ip", "addr", "show", "eth0"))
    assert "Address already in use" in fails(
        daemon.docker("run", "--rm", "--network", "nf-ipam", "--ip", "10.191.0.7", "busybox", "true")
    )
    assert "does not belong to any of this network's subnets" in fails(
        daemon.docker("run", "--rm", "--network", "nf-ipam", "--ip", "10.200.0.7", "busybox", "true")
    )
    ok(daemon.docker("network", "create", "nf-other"))
    assert "user configured subnets" in fails(
        daemon.docker("run", "--rm", "--network", "nf-other", "--ip", "10.9.9.9", "busybox", "true")
    )
    assert "supported on user defined networks only" in fails(
        daemon.docker("run", "--rm", "--ip", "10.9.9.9", "busybox", "true")
    )
    ok(daemon.docker("rm", "-f", "nf-auto", "nf-fixed"))


def test_ipv6_network(daemon, dockerpy):
    pools = [
        dockerpy_module.types.IPAMPool(subnet="10.192.0.0/24"),
        dockerpy_module.types.IPAMPool(subnet="fd00:dead:beef::/64", gateway="fd00:dead:beef::1"),
    ]
    net = dockerpy.networks.create("nf-v6", enable_ipv6=True, ipam=dockerpy_module.types.IPAMConfig(pool_configs=pools))
    assert net.attrs["EnableIPv6"] is True
    assert {p["Subnet"] for p in net.attrs["IPAM"]["Config"]} == {"10.192.0.0/24", "fd00:dead:beef::/64"}
    ok(
        daemon.docker(
            "run",
            "-d",
            "--name",
            "nf-v6-a",
            "--network",
            "nf-v6",
            "--ip6",
            "fd00:dead:beef::a",
            "busybox",
            "sleep",
            "300",
        )
    )
    a = inspect(daemon, "nf-v6-a")["NetworkSettings"]["Networks"]["nf-v6"]
    assert (a["GlobalIPv6Address"], a["GlobalIPv6PrefixLen"], a["IPv6Gateway"]) == (
        "fd00:dead:beef::a",
        64,
        "fd00:dead:beef::1",
    )
    out = ok(
        daemon.docker(
            "run",
            "--rm",
            "--network",
            "nf-v6",
            "busybox",
            "sh",
            "-c",
            "ip -6 addr show eth0 | grep global; ping -6 -c 1 -W 5 fd00:dead:beef::a >/dev/null && "
            "echo reached; nslookup -type=AAAA nf-v6-a | grep -c fd00:dead:beef::a",
        )
    )
    assert "inet6 fd00:dead:beef::" in out and "reached" in out and out.strip().endswith("1")
    assert "IPv6 address pool" in fails(daemon.docker("network", "create", "--ipv6", "nf-v6-nopool"))
    ok(daemon.docker("rm", "-f", "nf-v6-a"))


def test_internal_network(daemon):
    ok(daemon.docker("network", "create", "--internal", "nf-internal"))
    assert json.loads(ok(daemon.docker("network", "inspect", "nf-internal")))[0]["Internal"] is True
    ok(daemon.docker("run", "-d", "--name", "nf-in-a", "--network", "nf-internal", "busybox", "sleep", "300"))
    routes = ok(daemon.docker("run", "--rm", "--network", "nf-internal", "busybox", "ip", "route"))
    assert "default" not in routes  # no way out of an internal network
    assert "reached" in ok(
        daemon.docker(
            "run",
            "--rm",
            "--network",
            "nf-internal",
            "busybox",
            "sh",
            "-c",
            "ping -c 1 -W 5 nf-in-a >/dev/null && echo reached",
        )
    )
    ok(daemon.docker("rm", "-f", "nf-in-a"))


def test_labels_options_and_duplicate_names(daemon, dockerpy):
    ok(daemon.docker("network", "create", "--label", "team=net", "-o", "com.docker.network.driver.mtu=1400", "nf-mtu"))
    net = json.loads(ok(daemon.docker("network", "inspect", "nf-mtu")))[0]
    assert net["Labels"] == {"team": "net"} and net["Options"]["com.docker.network.driver.mtu"] == "1400"
    assert "mtu 1400" in ok(
        daemon.docker("run", "--rm", "--network", "nf-mtu", "busybox", "ip", "link", "show", "eth0")
    )
    assert "already exists" in fails(daemon.docker("network", "create", "nf-mtu"))
    with pytest.raises(dockerpy_module.errors.APIError) as caught:
        dockerpy.networks.create("nf-mtu")
    assert caught.value.status_code == 409


def test_mac_address_and_link_local_ips(daemon, dockerpy):
    # API 1.41 takes the MAC address in Config.MacAddress (docker-py's mac_address); the docker CLI 28 puts
    # --mac-address in the endpoint settings and refuses itself to send that below API 1.44
    dockerpy.containers.run("busybox", "sleep 300", detach=True, name="nf-mac", mac_address="02:42:ab:cd:ef:01")
    assert inspect(daemon, "nf-mac")["NetworkSettings"]["MacAddress"] == "02:42:ab:cd:ef:01"
    assert inspect(daemon, "nf-mac")["Config"]["MacAddress"] == "02:42:ab:cd:ef:01"
    assert "02:42:ab:cd:ef:01" in ok(daemon.docker("exec", "nf-mac", "ip", "link", "show", "eth0"))
    c = dockerpy.containers.run(
        "busybox", "sleep 300", detach=True, network="nf-other", mac_address="02:42:00:00:00:77"
    )
    c.reload()
    assert c.attrs["NetworkSettings"]["Networks"]["nf-other"]["MacAddress"] == "02:42:00:00:00:77"
    ok(
        daemon.docker(
            "run",
            "-d",
            "--name",
            "nf-ll",
            "--network",
            "nf-other",
            "--link-local-ip",
            "169.254.20.20",
            "busybox",
            "sleep",
            "300",
        )
    )
    settings = inspect(daemon, "nf-ll")["NetworkSettings"]["Networks"]["nf-other"]
    assert settings["IPAMConfig"]["LinkLocalIPs"] == ["169.254.20.20"]
    assert "inet 169.254.20.20/16" in ok(daemon.docker("exec", "nf-ll", "ip", "addr", "show", "eth0"))
    c.remove(force=True)
    ok(daemon.docker("rm", "-f", "nf-mac", "nf-ll"))


def test_network_connect_gives_dns_on_every_network(daemon):
    ok(daemon.docker("network", "create", "nf-dns"))
    ok(
        daemon.docker(
            "run",
            "-d",
            "--name",
            "nf-server",
            "--network",
            "nf-dns",
            "--network-alias",
            "svc",
            "busybox",
            "sleep",
            "300",
        )
    )
    # a running container on the default bridge (no embedded DNS there) joins the user network
    ok(daemon.docker("run", "-d", "--name", "nf-joiner", "busybox", "sleep", "300"))
    assert "bad address" in fails(daemon.docker("exec", "nf-joiner", "ping", "-c", "1", "-W", "2", "svc"))
    ok(daemon.docker("network", "connect", "nf-dns", "nf-joiner"))
    assert "PING svc" in ok(daemon.docker("exec", "nf-joiner", "ping", "-c", "1", "-W", "5", "svc"))
    # a container only created yet: connected at its start, and at every start after
    ok(daemon.docker("create", "--name", "nf-created", "busybox", "sleep", "300"))
    ok(daemon.docker("network", "connect", "--alias", "late", "nf-dns", "nf-created"))
    assert set(inspect(daemon, "nf-created")["NetworkSettings"]["Networks"]) == {"bridge", "nf-dns"}
    ok(daemon.docker("start", "nf-created"))
    assert "PING nf-server" in ok(daemon.docker("exec", "nf-created", "ping", "-c", "1", "-W", "5", "nf-server"))
    assert "PING late" in ok(daemon.docker("exec", "nf-server", "ping", "-c", "1", "-W", "5", "late"))
    ok(daemon.docker("restart", "-t", "0", "nf-created"))
    networks = inspect(daemon, "nf-created")["NetworkSettings"]["Networks"]
    assert networks["nf-dns"]["IPAddress"] and networks["bridge"]["IPAddress"]
    ok(daemon.docker("network", "disconnect", "nf-dns", "nf-created"))
    assert set(inspect(daemon, "nf-created")["NetworkSettings"]["Networks"]) == {"bridge"}
    ok(daemon.docker("rm", "-f", "nf-server", "nf-joiner", "nf-created"))


def test_legacy_links(daemon, dockerpy):
    ok(
        daemon.docker(
            "run", "-d", "--name", "nf-db", "-e", "DB_PASSWORD=secret", "--expose", "5432", "busybox", "sleep", "300"
        )
    )
    db_ip = inspect(daemon, "nf-db")["NetworkSettings"]["IPAddress"]
    ok(daemon.docker("run", "-d", "--name", "nf-web", "--link", "nf-db:db", "busybox", "sleep", "300"))
    env = ok(daemon.docker("exec", "nf-web", "env")).splitlines()
    assert f"DB_PORT=tcp://{db_ip}:5432" in env
    assert f"DB_PORT_5432_TCP_ADDR={db_ip}" in env and "DB_PORT_5432_TCP_PROTO=tcp" in env
    assert "DB_NAME=/nf-web/db" in env and "DB_ENV_DB_PASSWORD=secret" in env
    hosts = ok(daemon.docker("exec", "nf-web", "cat", "/etc/hosts"))
    assert any(line.split()[:2] == [db_ip, "db"] and "nf-db" in line for line in hosts.splitlines())
    assert inspect(daemon, "nf-web")["HostConfig"]["Links"] == ["/nf-db:/nf-web/db"]
    ok(daemon.docker("rm", "--link", "/nf-web/db"))
    assert inspect(daemon, "nf-web")["HostConfig"]["Links"] is None
    assert " db " not in ok(daemon.docker("exec", "nf-web", "cat", "/etc/hosts")).replace("\t", " ") + " "
    assert "could not get container for nf-nosuch" in fails(
        daemon.docker("run", "--rm", "--link", "nf-nosuch:x", "busybox", "true")
    )
    ok(daemon.docker("stop", "-t", "0", "nf-db"))
    assert "Cannot link to a non running container" in fails(
        daemon.docker("run", "--rm", "--link", "nf-db:db", "busybox", "true")
    )
    ok(daemon.docker("rm", "-f", "nf-db", "nf-web"))
