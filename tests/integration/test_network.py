"""The guidebook's Part 2 scenario: a server in a container, found by its own IP
on the bridge and by a published port on the host.  Traffic only goes to
127.0.0.1 and to addresses on the test daemon's own bridge."""

from __future__ import annotations

import json
import signal
import socket

import pytest

from tests.helpers.daemon import ask, busybox_rootfs_tar, out, remove_bridge, start_daemon

pytestmark = [
    pytest.mark.requires_root,
    pytest.mark.requires_lxc,
    pytest.mark.integration,
    pytest.mark.requires_docker_cli,
]

SERVER = "while true; do echo pong | nc -l -p 6379; done"


def test_published_port_and_container_ip(daemon):
    cid = out(daemon.docker("run", "-d", "--name", "net-srv", "-p", "6379", "busybox", "sh", "-c", SERVER)).strip()
    mapping = out(daemon.docker("port", "net-srv", "6379")).splitlines()[0]
    host_port = int(mapping.rsplit(":", 1)[1])
    assert host_port >= 49153
    assert out(daemon.dockyard("port", "net-srv", "6379")).splitlines()[0].endswith(f":{host_port}")
    settings = json.loads(out(daemon.docker("inspect", cid)))[0]["NetworkSettings"]
    assert settings["Ports"]["6379/tcp"][0]["HostPort"] == str(host_port)
    assert settings["MacAddress"].startswith("02:42:")
    ip = settings["IPAddress"]
    assert ip and settings["Gateway"] and settings["IPPrefixLen"] == 16
    assert "->6379/tcp" in out(daemon.docker("ps", "--filter", "name=net-srv"))
    assert ask("127.0.0.1", host_port) == b"pong\n"
    assert ask(ip, 6379) == b"pong\n"
    # and from a second container, by address
    assert out(daemon.docker("run", "--rm", "busybox", "sh", "-c", f"echo hi | nc {ip} 6379")) == "pong\n"
    daemon.docker("rm", "-f", "net-srv")


def test_fixed_host_port_conflict_is_a_clear_error(daemon):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        result = daemon.docker("run", "-d", "--name", "net-clash", "-p", f"127.0.0.1:{port}:80", "busybox", "true")
        assert result.returncode != 0 and "already" in result.stderr.decode()
    daemon.docker("rm", "-f", "net-clash")


def test_hosts_hostname_and_dns(daemon):
    text = out(
        daemon.docker(
            "run",
            "--rm",
            "-h",
            "myhost",
            "--add-host",
            "db.local:10.9.8.7",
            "--dns",
            "10.1.1.1",
            "busybox",
            "sh",
            "-c",
            "cat /etc/hostname /etc/hosts /etc/resolv.conf",
        )
    )
    assert "myhost\n" in text and "10.9.8.7\tdb.local" in text and "nameserver 10.1.1.1" in text
    lines = [line for line in text.splitlines() if line.endswith("\tmyhost")]
    assert lines and not lines[0].startswith("127.")


def test_none_and_host_modes(daemon):
    none = out(daemon.docker("run", "--rm", "--net", "none", "busybox", "ip", "-o", "link"))
    assert "lo" in none and "eth0" not in none
    host = out(daemon.docker("run", "--rm", "--net", "host", "busybox", "ip", "-o", "link"))
    assert len(host.splitlines()) >= 2


def test_network_survives_a_daemon_crash(tmp_path):
    d = start_daemon(tmp_path)
    try:
        out(d.dockyard("import", "-", "busybox", input=busybox_rootfs_tar()))
        out(d.docker("run", "-d", "--name", "crash-srv", "-p", "6379", "busybox", "sh", "-c", SERVER))
        port = int(out(d.docker("port", "crash-srv", "6379")).splitlines()[0].rsplit(":", 1)[1])
        assert ask("127.0.0.1", port) == b"pong\n"
        d.stop(signal.SIGKILL)
        d = start_daemon(tmp_path)
        assert ask("127.0.0.1", port) == b"pong\n"
        assert out(d.docker("port", "crash-srv", "6379")).splitlines()[0].endswith(f":{port}")
        out(d.docker("rm", "-f", "crash-srv"))
    finally:
        d.stop()
        remove_bridge(tmp_path)
