"""Which registries may be reached over plain HTTP, and with which CA."""

from __future__ import annotations

import ssl
import subprocess

from dockyard import registry_hosts
from dockyard.registry_hosts import insecure_registries, is_insecure, is_loopback, tls_verify


def test_loopback():
    assert is_loopback("127.0.0.1:5000") and is_loopback("localhost:5000") and is_loopback("[::1]:5000")
    assert is_loopback("registry.localhost")
    assert not is_loopback("registry.example.com:5000") and not is_loopback("10.0.0.1")


def test_insecure_by_name_cidr_or_environment(monkeypatch):
    assert is_insecure("reg.lan:5000", ["reg.lan:5000"]) and not is_insecure("reg.lan:5001", ["reg.lan:5000"])
    assert is_insecure("10.1.2.3:5000", ["10.0.0.0/8"]) and not is_insecure("11.1.2.3:5000", ["10.0.0.0/8"])
    assert is_insecure("127.0.0.1:5000", [])
    monkeypatch.setenv("DOCKYARD_INSECURE_REGISTRIES", "a.lan:1, 192.168.0.0/16")
    assert insecure_registries() == ["a.lan:1", "192.168.0.0/16"]
    assert is_insecure("192.168.7.7:443") and not is_insecure("b.lan:1")


def test_verification(tmp_path, monkeypatch):
    assert tls_verify("reg.example.com", insecure=False) is True
    assert tls_verify("reg.lan", insecure=True) is False
    monkeypatch.setattr(registry_hosts, "CERT_DIRS", (tmp_path / "missing", tmp_path))
    (tmp_path / "reg.lan").mkdir()
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=reg.lan",
            "-keyout",
            str(tmp_path / "key.pem"),
            "-out",
            str(tmp_path / "reg.lan" / "ca.crt"),
        ],
        check=True,
        capture_output=True,
    )
    context = tls_verify("reg.lan", insecure=True)  # a CA of its own: verified even when insecure
    assert isinstance(context, ssl.SSLContext)
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "reg.lan"),),)]


def test_registry_config_reports_insecure_hosts_cidrs_and_mirrors_as_moby_does():
    registry_config = registry_hosts.registry_config
    config = registry_config(["10.1.0.0/16", "reg.local:5000"], ["http://127.0.0.1:5001"])
    assert config["InsecureRegistryCIDRs"] == ["127.0.0.0/8", "10.1.0.0/16"]
    assert config["Mirrors"] == ["http://127.0.0.1:5001/"]
    assert config["IndexConfigs"]["docker.io"] == {
        "Name": "docker.io",
        "Mirrors": ["http://127.0.0.1:5001/"],
        "Secure": True,
        "Official": True,
    }
    assert config["IndexConfigs"]["reg.local:5000"]["Secure"] is False
    assert registry_config([], [])["IndexConfigs"].keys() == {"docker.io"}
