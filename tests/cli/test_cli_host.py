"""Parsing -H / DOCKYARD_HOST."""

from __future__ import annotations

import pytest

from dockyard.cli.client import CliError, parse_host


@pytest.mark.parametrize(
    ("value", "url", "path", "address", "base"),
    [
        (None, "unix:///var/run/dockyard.sock", "/var/run/dockyard.sock", None, "http://localhost"),
        ("", "unix:///var/run/dockyard.sock", "/var/run/dockyard.sock", None, "http://localhost"),
        ("unix:///tmp/d.sock", "unix:///tmp/d.sock", "/tmp/d.sock", None, "http://localhost"),
        ("/tmp/d.sock", "unix:///tmp/d.sock", "/tmp/d.sock", None, "http://localhost"),
        ("tcp://10.0.0.2:2375", "tcp://10.0.0.2:2375", None, ("10.0.0.2", 2375), "http://10.0.0.2:2375"),
        ("tcp://example.org", "tcp://example.org:4243", None, ("example.org", 4243), "http://example.org:4243"),
        ("tcp://:5000", "tcp://127.0.0.1:5000", None, ("127.0.0.1", 5000), "http://127.0.0.1:5000"),
        ("tcp://[::1]:2375", "tcp://[::1]:2375", None, ("::1", 2375), "http://[::1]:2375"),
        ("localhost:2375", "tcp://localhost:2375", None, ("localhost", 2375), "http://localhost:2375"),
    ],
)
def test_parse_host(value, url, path, address, base) -> None:
    host = parse_host(value)
    assert host.url == url
    assert host.socket_path == path
    assert host.address == address
    assert host.base_url == base


@pytest.mark.parametrize("value", ["ssh://me@box", "tcp://host:notaport", "unix://", "tcp://h:1/path"])
def test_parse_host_rejects(value) -> None:
    with pytest.raises(CliError, match="Invalid bind address format"):
        parse_host(value)
