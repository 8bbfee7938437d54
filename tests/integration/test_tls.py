"""Mutual TLS on TCP (``--tlsverify --tlscacert --tlscert --tlskey``), used by the docker CLI, docker-py
and the dockyard CLI exactly as their users do: ``DOCKER_TLS_VERIFY=1`` and ``DOCKER_CERT_PATH``.

Certificates are made for each run with openssl: a CA, the daemon's (for
127.0.0.1 and localhost), a client's, and a client certificate from another CA.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.daemon import DOCKER, remove_all_containers, busybox_rootfs_tar, remove_bridge, start_daemon

pytestmark = [
    pytest.mark.requires_root,
    pytest.mark.requires_lxc,
    pytest.mark.integration,
    pytest.mark.requires_docker_cli,
]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d: Path) -> None:
    """ca.pem, server-{cert,key}.pem, and client cert.pem/key.pem (DOCKER_CERT_PATH's names); rogue/ holds a
    client certificate signed by another CA."""
    d.mkdir(parents=True)

    def ca(name: str) -> None:
        _openssl(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{name}-key.pem",
            "-out",
            f"{name}.pem",
            "-days",
            "2",
            "-subj",
            f"/CN={name}",
            cwd=d,
        )

    def signed(key: str, cert: str, cn: str, ext: str, by: str) -> None:
        _openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", f"{cn}.csr", "-subj", f"/CN={cn}", cwd=d
        )
        (d / f"{cn}.ext").write_text(ext)
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{cn}.csr",
            "-CA",
            f"{by}.pem",
            "-CAkey",
            f"{by}-key.pem",
            "-CAcreateserial",
            "-out",
            cert,
            "-days",
            "2",
            "-extfile",
            f"{cn}.ext",
            cwd=d,
        )

    ca("ca")
    ca("rogue-ca")
    signed(
        "server-key.pem",
        "server-cert.pem",
        "server",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        "ca",
    )
    signed("key.pem", "cert.pem", "client", "extendedKeyUsage=clientAuth\n", "ca")
    signed("rogue-key.pem", "rogue-cert.pem", "rogue", "extendedKeyUsage=clientAuth\n", "rogue-ca")
    rogue = d / "rogue"
    rogue.mkdir()
    shutil.copy(d / "ca.pem", rogue / "ca.pem")  # trusts the daemon, but its own cert is from another CA
    shutil.copy(d / "rogue-cert.pem", rogue / "cert.pem")
    shutil.copy(d / "rogue-key.pem", rogue / "key.pem")


@pytest.fixture(scope="module")
def tls_daemon(tmp_path_factory):
    root = tmp_path_factory.mktemp("dytls")
    certs = root / "certs"
    make_pki(certs)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    d = start_daemon(
        root,
        extra=(
            "-H",
            f"tcp://127.0.0.1:{port}",
            "--tlsverify",
            "--tlscacert",
            str(certs / "ca.pem"),
            "--tlscert",
            str(certs / "server-cert.pem"),
            "--tlskey",
            str(certs / "server-key.pem"),
        ),
    )
    d.port, d.certs = port, certs  # type: ignore[attr-defined]
    try:
        result = d.dockyard("import", "-", "busybox:latest", input=busybox_rootfs_tar())
        assert result.returncode == 0, result.stderr.decode()
        yield d
    finally:
        remove_all_containers(d)
        d.stop()
        remove_bridge(root)
        shutil.rmtree(root, ignore_errors=True)


def tls_env(d, cert_path: Path | None = None, verify: bool = True) -> dict[str, str]:
    env = dict(os.environ)
    for name in (
        "DOCKER_HOST",
        "DOCKYARD_HOST",
        "DOCKER_TLS_VERIFY",
        "DOCKER_CERT_PATH",
        # requests (docker-py) would take these over DOCKER_CERT_PATH's CA
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
    ):
        env.pop(name, None)
    env.update(
        DOCKER_HOST=f"tcp://127.0.0.1:{d.port}",
        DOCKYARD_HOST=f"tcp://127.0.0.1:{d.port}",
        DOCKER_CERT_PATH=str(cert_path or d.certs),
        DOCKER_CONFIG=str(d.root / "docker-config"),
    )
    if verify:
        env["DOCKER_TLS_VERIFY"] = "1"
    return env


def run(args: list[str], env: dict[str, str], input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, input=input, capture_output=True, timeout=90)


DOCKYARD = [sys.executable, "-m", "dockyard.cli"]


@pytest.mark.parametrize("cli", ["docker", "dockyard"], ids=["docker-cli", "dockyard-cli"])
def test_clis_over_mutual_tls(tls_daemon, cli):
    command = [DOCKER] if cli == "docker" else DOCKYARD
    env = tls_env(tls_daemon)
    version = run([*command, "version"], env)
    assert version.returncode == 0 and b"0.1.0" in version.stdout, version.stderr
    hello = run([*command, "run", "--rm", "busybox", "echo", "over tls"], env)
    assert hello.returncode == 0 and hello.stdout == b"over tls\n", hello.stderr
    # stdin's end reaches the container (a half-close under TLS) and the output after it still arrives
    piped = run([*command, "run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo after-eof"], env, input=b"in\n")
    assert piped.returncode == 0 and piped.stdout == b"in\nafter-eof\n", piped.stderr


def test_dockerpy_over_mutual_tls(tls_daemon):
    script = (
        "import docker, json\n"
        "c = docker.from_env()\n"
        "out = c.containers.run('busybox', ['echo', 'docker-py'], remove=True)\n"
        "box = c.containers.run('busybox', ['sleep', '60'], detach=True)\n"
        "code, ex = box.exec_run(['sh', '-c', 'echo exec'])\n"
        "box.remove(force=True)\n"
        "print(json.dumps([out.decode(), code, ex.decode(), c.version()['ApiVersion']]))\n"
    )
    result = run([sys.executable, "-c", script], tls_env(tls_daemon))
    assert result.returncode == 0, result.stderr.decode()
    assert json.loads(result.stdout) == ["docker-py\n", 0, "exec\n", "1.41"]


def test_clients_without_a_trusted_certificate_are_refused(tls_daemon):
    d = tls_daemon
    for env in (
        tls_env(d, verify=False),  # plain HTTP to a TLS port
        tls_env(d, cert_path=d.certs / "rogue"),
    ):  # a client certificate from another CA
        for command in ([DOCKER], DOCKYARD):
            result = run([*command, "ps"], env)
            assert result.returncode != 0, (command, env.get("DOCKER_CERT_PATH"))
    # no client certificate at all
    context = ssl.create_default_context(cafile=str(d.certs / "ca.pem"))
    with socket.create_connection(("127.0.0.1", d.port), timeout=10) as raw:
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"GET /_ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                if not tls.recv(100):
                    raise ConnectionResetError("closed without an answer")
    assert "TLS connection from 127.0.0.1" in d.log.read_text()


def test_tls_alone_does_not_verify_clients_and_tlsverify_does(tmp_path):
    """--tls encrypts but lets any client in (the daemon warns at start); --tlsverify requires a certificate."""
    certs = tmp_path / "certs"
    make_pki(certs)
    from dockyard.daemon.tls import TlsSettings

    context = TlsSettings(enabled=True, cert=certs / "server-cert.pem", key=certs / "server-key.pem").context()
    assert context.verify_mode == ssl.CERT_NONE
    verified = TlsSettings(
        verify=True, cacert=certs / "ca.pem", cert=certs / "server-cert.pem", key=certs / "server-key.pem"
    ).context()
    assert verified.verify_mode == ssl.CERT_REQUIRED
