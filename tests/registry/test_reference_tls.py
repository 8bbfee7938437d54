"""Reference parsing as Docker does it, and TLS with a given certificate."""

from __future__ import annotations

import shutil
import subprocess

import httpx
import pytest

from dockyard.errors import InvalidParameter
from dockyard.plugins.registry_http.client import decode_auth_header, encode_auth_header, is_loopback
from dockyard.reference import parse, split_search_term

from .conftest import start_registry
from .images import layer_tar
from .test_driver import Recorder, image_on_disk


@pytest.mark.parametrize("text, domain, path, tag, digest, local", [
    ("busybox", "docker.io", "library/busybox", "latest", None, "busybox"),
    ("busybox:1.36", "docker.io", "library/busybox", "1.36", None, "busybox"),
    ("user/app", "docker.io", "user/app", "latest", None, "user/app"),
    ("docker.io/library/busybox", "docker.io", "library/busybox", "latest", None, "busybox"),
    ("index.docker.io/user/app:v1", "docker.io", "user/app", "v1", None, "user/app"),
    ("localhost:5000/ubuntu", "localhost:5000", "ubuntu", "latest", None, "localhost:5000/ubuntu"),
    ("localhost/ubuntu:x", "localhost", "ubuntu", "x", None, "localhost/ubuntu"),
    ("localhost.localdomain:5000/ubuntu", "localhost.localdomain:5000", "ubuntu", "latest", None,
     "localhost.localdomain:5000/ubuntu"),
    ("127.0.0.1:5080/h4-busybox:v1", "127.0.0.1:5080", "h4-busybox", "v1", None, "127.0.0.1:5080/h4-busybox"),
    ("reg.example.com/a/b/c@sha256:" + "a" * 64, "reg.example.com", "a/b/c", None, "sha256:" + "a" * 64,
     "reg.example.com/a/b/c"),
])
def test_parse(text, domain, path, tag, digest, local):
    ref = parse(text, index="")
    assert (ref.domain, ref.path, ref.tag, ref.digest, ref.repository) == (domain, path, tag, digest, local)


def test_default_index_from_environment(monkeypatch):
    monkeypatch.setenv("DOCKYARD_INDEX_URL", "http://127.0.0.1:5999")
    ref = parse("ubuntu")
    assert (ref.domain, ref.path, ref.repository) == ("127.0.0.1:5999", "ubuntu", "ubuntu")
    assert parse("alice/app").path == "alice/app"
    assert split_search_term("busy") == ("127.0.0.1:5999", "busy")
    assert split_search_term("localhost:5000/busy") == ("localhost:5000", "busy")


@pytest.mark.parametrize("bad", ["", "user/UPPER", "a//b", "host:5000/x:bad tag", "x@sha256:short"])
def test_invalid(bad):
    with pytest.raises(InvalidParameter):
        parse(bad, index="")


def test_auth_header_and_loopback():
    header = encode_auth_header({"username": "u", "password": "p", "serveraddress": "h:1"})
    assert decode_auth_header(header)["username"] == "u"
    assert decode_auth_header("e30=") == {} and decode_auth_header(None) == {} and decode_auth_header("!!") == {}
    assert decode_auth_header("eyJ1c2VybmFtZSI6Img0dXNlciIsInBhc3N3b3JkIjoiaDRwYXNzIiwic2VydmVyYWRkcmVzcyI6IjEyNy4w"
                              "LjAuMTo1MDgwIn0=")["serveraddress"] == "127.0.0.1:5080"
    assert is_loopback("127.0.0.1:5000") and is_loopback("localhost:5000") and is_loopback("[::1]:5000")
    assert not is_loopback("registry.example.com") and not is_loopback("10.0.0.1:5000")


@pytest.mark.skipif(not shutil.which("openssl"), reason="needs openssl")
def test_tls(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    server = start_registry(tmp_path / "tls", "--tls-cert", str(cert), "--tls-key", str(key), scheme="https")
    try:
        import ssl

        r = httpx.get(f"https://{server.host}/v2/", verify=ssl.create_default_context(cafile=str(cert)))
        assert r.status_code == 200 and r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
        from dockyard.plugins.registry_http.driver import HttpDistributionDriver

        driver = HttpDistributionDriver(tmp_path / "driver", {})
        image = image_on_disk(tmp_path, [layer_tar({"tls": b"1"})])
        driver.distribution_push(f"{server.host}/tls/img:v1", image, {}, Recorder())
        pulled = driver.distribution_pull(f"{server.host}/tls/img:v1", {}, Recorder(), None, str(tmp_path / "w"))
        assert pulled["config"] == image["config"]
        from dockyard.plugins.registry_http.client import _scheme_cache

        assert _scheme_cache[server.host] == "https"
    finally:
        server.stop()
