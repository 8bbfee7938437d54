"""Registry benchmarks on loopback: ours beside Debian's docker-registry.

    python -m bench.registry_bench daemon  [--mb 50]          push/pull through the daemon (docker CLI)
    python -m bench.registry_bench skopeo  [--mb 256 --layers 4]   skopeo push/pull, both registries
    python -m bench.registry_bench manifests [--clients 8 --seconds 5]   manifest GETs/s, both registries
    python -m bench.registry_bench all

Layers are half random, half repetitive text (compressible), so compression
costs something without dominating.  Every server is started here on a free
127.0.0.1 port and stopped at the end; request loops are bounded in time.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers.registry import DOCKER_REGISTRY, skopeo, start_docker_registry, start_registry  # noqa: E402
from tests.helpers.images import docker_archive  # noqa: E402


def layer(size: int, seed: int) -> bytes:
    rnd = os.urandom(size // 2)
    text = (f"line {seed} of a fairly repetitive configuration file\n" * (size // 100 + 1)).encode()[: size - len(rnd)]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in ((f"data/random-{seed}.bin", rnd), (f"data/text-{seed}.txt", text)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_skopeo(mb: int, layers: int, work: Path) -> dict:
    archive, _ = docker_archive([layer(mb * (1 << 20) // layers, i) for i in range(layers)])
    src = work / "img.tar"
    src.write_bytes(archive)
    size = len(archive) / 1e6
    results = {}
    servers = [("dockyard", lambda: start_registry(work / "ours"))]
    if DOCKER_REGISTRY:
        servers.append(("docker-registry", lambda: start_docker_registry(work / "theirs")))
    for label, start in servers:
        server = start()
        try:
            dest = f"docker://{server.host}/bench/img:v1"
            push = timed(lambda: skopeo("copy", "--dest-tls-verify=false", f"docker-archive:{src}", dest))
            out = work / f"out-{label}"
            pull = timed(lambda: skopeo("copy", "--src-tls-verify=false", dest, f"dir:{out}"))
            blob = next(p for p in out.iterdir() if p.stat().st_size > 1 << 20)
            digest = "sha256:" + blob.name
            data = blob.read_bytes()
            with httpx.Client(timeout=120) as client:
                up = timed(
                    lambda: client.post(
                        f"{server.url}/v2/bench/raw/blobs/uploads/", params={"digest": digest}, content=data
                    ).raise_for_status()
                )
                down = timed(lambda: client.get(f"{server.url}/v2/bench/img/blobs/{digest}").raise_for_status())
            results[label] = {
                "push_MBps": round(size / push, 1),
                "pull_MBps": round(size / pull, 1),
                "blob_upload_MBps": round(len(data) / 1e6 / up, 1),
                "blob_download_MBps": round(len(data) / 1e6 / down, 1),
                "rss_MB": round(rss_mb(server.process.pid), 1),
            }
            shutil.rmtree(out, ignore_errors=True)
        finally:
            server.stop()
    return {"image_MB": round(size, 1), **results}


def bench_manifests(clients: int, seconds: float, work: Path) -> dict:
    archive, _ = docker_archive([layer(1 << 20, 0)])
    src = work / "small.tar"
    src.write_bytes(archive)
    results = {}
    servers = [("dockyard", lambda: start_registry(work / "m-ours"))]
    if DOCKER_REGISTRY:
        servers.append(("docker-registry", lambda: start_docker_registry(work / "m-theirs")))
    accept = {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
    for label, start in servers:
        server = start()
        try:
            skopeo("copy", "--dest-tls-verify=false", f"docker-archive:{src}", f"docker://{server.host}/m/img:v1")
            latencies: list[list[float]] = [[] for _ in range(clients)]
            deadline = time.monotonic() + seconds

            def worker(n: int) -> None:
                with httpx.Client() as client:
                    while time.monotonic() < deadline:
                        t = time.perf_counter()
                        client.get(f"{server.url}/v2/m/img/manifests/v1", headers=accept).raise_for_status()
                        latencies[n].append(time.perf_counter() - t)

            threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
            start_time = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.monotonic() - start_time
            flat = sorted(x for lst in latencies for x in lst)
            results[label] = {
                "requests_per_s": round(len(flat) / elapsed),
                "p50_ms": round(statistics.median(flat) * 1000, 2),
                "p99_ms": round(flat[int(len(flat) * 0.99)] * 1000, 2),
                "rss_MB": round(rss_mb(server.process.pid), 1),
            }
        finally:
            server.stop()
    return {"clients": clients, **results}


def bench_daemon(mb: int, work: Path) -> dict:
    from tests.helpers.daemon import start_daemon

    registry = start_registry(work / "d-reg")
    daemon = start_daemon(work / "d1")
    other = start_daemon(work / "d2")
    try:
        archive, _ = docker_archive([layer(mb * (1 << 20) // 2, i) for i in range(2)], tag="bench:latest")
        size = len(archive) / 1e6
        assert daemon.docker("load", input=archive).returncode == 0
        name = f"{registry.host}/bench/img:v1"
        daemon.docker("tag", "bench:latest", name)

        def run(d, *args):
            result = d.docker(*args, timeout=600)
            assert result.returncode == 0, result.stderr.decode()

        push = timed(lambda: run(daemon, "push", name))
        pull = timed(lambda: run(other, "pull", name))
        return {
            "image_MB": round(size, 1),
            "push_MBps": round(size / push, 1),
            "pull_MBps": round(size / pull, 1),
            "push_s": round(push, 2),
            "pull_s": round(pull, 2),
        }
    finally:
        daemon.stop()
        other.stop()
        registry.stop()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["daemon", "skopeo", "manifests", "all"])
    p.add_argument("--mb", type=int, default=0)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=5)
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="registry-bench-"))
    try:
        report = {}
        if args.what in ("daemon", "all"):
            report["daemon"] = bench_daemon(args.mb or 50, work)
        if args.what in ("skopeo", "all"):
            report["skopeo"] = bench_skopeo(args.mb or 256, args.layers, work)
        if args.what in ("manifests", "all"):
            report["manifests"] = bench_manifests(args.clients, args.seconds, work)
        print(json.dumps(report, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
