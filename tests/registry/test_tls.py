"""TLS with a given certificate."""

from __future__ import annotations

import subprocess

import httpx
import pytest

from tests.helpers.registry import start_registry
from tests.helpers.images import layer_tar
from tests.helpers.registry import Recorder, image_on_disk


@pytest.mark.requires_openssl
def test_tls(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
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
