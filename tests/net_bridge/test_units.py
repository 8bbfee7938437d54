"""Pure functions of the bridge driver (no root needed)."""

from __future__ import annotations

import ipaddress

import pytest

from dockyard.errors import InvalidParameter
from dockyard.plugins.net_bridge import firewall, ipam, options, ports, subnet


def test_mac_like_docker():
    assert ipam.mac_for("172.17.0.4") == "02:42:ac:11:00:04"


def test_subnet_choice_skips_host_routes_and_docker0():
    taken = [ipaddress.IPv4Network("172.17.0.0/16"), ipaddress.IPv4Network("172.18.5.0/24")]
    assert str(subnet.choose(options.CANDIDATES, taken)) == "172.19.0.0/16"


def test_wanted_forms():
    w = ports.wanted(
        {
            "6379/tcp": [{"HostIp": "", "HostPort": ""}],
            "80": [{"HostIp": "127.0.0.1", "HostPort": "8080"}],
            "53/udp": [{"HostIp": "", "HostPort": "5353"}],
            "90/tcp": [{"HostIp": "", "HostPort": "9000-9010"}],
        },
        ["443/tcp"],
        True,
        "0.0.0.0",
    )
    assert ports.Wanted("tcp", 6379, "0.0.0.0", 0, 0) in w
    assert ports.Wanted("tcp", 80, "127.0.0.1", 8080, 8080) in w
    assert ports.Wanted("udp", 53, "0.0.0.0", 5353, 5353) in w
    assert ports.Wanted("tcp", 90, "0.0.0.0", 9000, 9010) in w
    assert ports.Wanted("tcp", 443, "0.0.0.0", 0, 0) in w  # -P


@pytest.mark.parametrize(
    "bad", [{"x/tcp": [{}]}, {"80/sctp": [{}]}, {"80/tcp": [{"HostPort": "70000"}]}, {"80/tcp": [{"HostIp": "nope"}]}]
)
def test_wanted_rejects(bad):
    with pytest.raises(InvalidParameter):
        ports.wanted(bad, [], False, "0.0.0.0")


def test_options_validation():
    assert options.parse({"bip": "10.9.0.1/24", "fixed-cidr": "10.9.0.128/25"}).fixed_cidr == "10.9.0.128/25"
    for bad in (
        {"bip": "10.9.0.0/24"},
        {"fixed_cidr": "10.1.0.0/24"},
        {"bip": "10.9.0.1/24", "fixed_cidr": "10.8.0.0/25"},
        {"firewall": "pf"},
        {"bridge": "x" * 16},
        {"nonsense": 1},
    ):
        with pytest.raises(InvalidParameter):
            options.parse(bad)


def test_render_has_our_table_only():
    text = firewall.render(
        firewall.TableSpec(
            name="dockyard_dyt0",
            bridge="dyt0",
            subnet="10.1.2.0/24",
            mappings=[
                firewall.Mapping("tcp", "0.0.0.0", 49153, "10.1.2.2", 80),
                firewall.Mapping("udp", "127.0.0.1", 53, "10.1.2.2", 53),
            ],
        )
    )
    assert text.startswith("table ip dockyard_dyt0 {")
    assert "tcp dport 49153 dnat to 10.1.2.2:80" in text
    assert "ip daddr 127.0.0.1 udp dport 53 dnat to 10.1.2.2:53" in text
    assert 'ip saddr 10.1.2.0/24 oifname != "dyt0" masquerade' in text
    assert firewall.table_name("dockyard", "br-x.y") == "dockyard_br_x_y"


def test_cli_publish_parsing_and_port_lines():
    from dockyard.cli.network import parse_publish, port_bindings, port_lines

    assert parse_publish("6379") == [("6379/tcp", {"HostIp": "", "HostPort": ""})]
    assert parse_publish("8080:80") == [("80/tcp", {"HostIp": "", "HostPort": "8080"})]
    assert parse_publish("127.0.0.1:8080:80/udp") == [("80/udp", {"HostIp": "127.0.0.1", "HostPort": "8080"})]
    assert port_bindings(["6379", "127.0.0.1::53/udp"])[0] == {
        "6379/tcp": [{"HostIp": "", "HostPort": ""}],
        "53/udp": [{"HostIp": "127.0.0.1", "HostPort": ""}],
    }
    inspect = {
        "Name": "/h4-d",
        "NetworkSettings": {"Ports": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18080"}], "443/tcp": None}},
    }
    assert port_lines(inspect) == ["80/tcp -> 127.0.0.1:18080"]  # the docker CLI trace, exactly
    assert port_lines(inspect, "80") == ["127.0.0.1:18080"]
