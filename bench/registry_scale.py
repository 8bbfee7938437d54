"""The registry beyond one machine, measured on loopback: skopeo push/pull throughput and manifest GETs/s.

    python -m bench.registry_scale [--clients 8] [--mb 32] [--runs 3] [--seconds 5]

Configurations, all in the same run:

* ``docker-registry``: Debian's docker-registry 2.8 on the file system (the reference);
* ``fs x1``: one ``dockyard registry serve`` on the file system;
* ``s3 x1``: one replica on SeaweedFS (master, volume server, filer and S3 gateway on loopback);
* ``s3 x3``: three replicas over one SeaweedFS bucket, the clients spread across them.

Throughput: ``--clients`` skopeo processes at once, each pushing its own image (``--mb`` MB of
incompressible layers in 2 blobs, prepared once as compressed OCI layouts so that skopeo
recompresses nothing) and then pulling it back into a ``dir:`` layout; MB/s is the bytes of
all images over the wall time of the round, median of ``--runs`` rounds.

Manifest GETs/s: ApacheBench (``ab -k``, keep-alive) with ``--clients`` connections in all,
spread over the replicas, for ``--seconds``; median of ``--runs``.

Each round runs every configuration once, in turn, on an empty registry; the ratios to the
reference are taken round by round (so a machine whose speed drifts moves both sides alike) and
their median is reported.

Every server runs on a free 127.0.0.1 port with its own temporary directory and is stopped at
the end; request loops are bounded in time.  The machine's cores are shared by the servers,
SeaweedFS and the clients: the report prints ``nproc``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers.registry import (
    DOCKER_REGISTRY,
    SKOPEO,
    skopeo,
    start_docker_registry,  # noqa: E402
    start_registry,
)
from tests.helpers.images import docker_archive, layer_tar  # noqa: E402
from tests.helpers.seaweedfs import start_seaweedfs  # noqa: E402

ACCEPT = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"


def prepare_images(work: Path, clients: int, mb: int) -> list[tuple[Path, int]]:
    """One compressed OCI layout per client (random content: compression does not shrink it)."""
    images = []
    for n in range(clients):
        layers = [layer_tar({f"data/{n}-{i}.bin": os.urandom(mb * (1 << 20) // 2)}) for i in range(2)]
        archive, _ = docker_archive(layers)
        tar = work / f"src-{n}.tar"
        tar.write_bytes(archive)
        layout = work / f"oci-{n}"
        skopeo("copy", f"docker-archive:{tar}", f"oci:{layout}:img", timeout=600)
        tar.unlink()
        size = sum(p.stat().st_size for p in (layout / "blobs" / "sha256").iterdir())
        images.append((layout, size))
    return images


def throughput(hosts: list[str], images: list[tuple[Path, int]], work: Path, tag: str) -> tuple[float, float]:
    """(push MB/s, pull MB/s) of every client at once, client n on hosts[n % len(hosts)]."""
    total = sum(size for _, size in images) / 1e6

    def push(n: int) -> None:
        layout, _ = images[n]
        skopeo(
            "copy",
            "--dest-tls-verify=false",
            f"oci:{layout}:img",
            f"docker://{hosts[n % len(hosts)]}/bench/c{n}:{tag}",
            timeout=600,
        )

    def pull(n: int) -> None:
        out = work / f"pulled-{n}"
        skopeo(
            "copy",
            "--src-tls-verify=false",
            f"docker://{hosts[(n + 1) % len(hosts)]}/bench/c{n}:{tag}",
            f"dir:{out}",
            timeout=600,
        )
        shutil.rmtree(out, ignore_errors=True)

    with ThreadPoolExecutor(len(images)) as pool:
        start = time.perf_counter()
        list(pool.map(push, range(len(images))))
        pushed = time.perf_counter() - start
        start = time.perf_counter()
        list(pool.map(pull, range(len(images))))  # from another replica than the one pushed to, when there are
        pulled = time.perf_counter() - start
    return total / pushed, total / pulled


def manifest_gets(hosts: list[str], clients: int, seconds: float) -> float:
    """Requests per second of ``clients`` keep-alive connections spread over ``hosts`` (ApacheBench)."""
    shares = [clients // len(hosts) + (1 if i < clients % len(hosts) else 0) for i in range(len(hosts))]
    procs = []
    for host, share in zip(hosts, shares, strict=True):
        if share:
            procs.append(
                subprocess.Popen(
                    [
                        "ab",
                        "-q",
                        "-k",
                        "-c",
                        str(share),
                        "-t",
                        str(seconds),
                        "-n",
                        "10000000",
                        "-H",
                        f"Accept: {ACCEPT}",
                        f"http://{host}/v2/bench/c0/manifests/v1",
                    ],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
    total = 0.0
    for proc in procs:
        out, err = proc.communicate(timeout=seconds + 60)
        match = re.search(r"Requests per second:\s+([\d.]+)", out)
        failed = re.search(r"Non-2xx responses:\s+(\d+)", out)
        assert match and not failed, f"ab failed: {out}\n{err}"
        total += float(match.group(1))
    return total


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return round(total / 1024, 1)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--mb", type=int, default=32, help="MB per client image")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5)
    args = p.parse_args()
    assert SKOPEO and shutil.which("ab"), "needs skopeo and ab (apache2-utils)"
    work = Path(tempfile.mkdtemp(prefix="registry-scale-"))
    started = []
    report: dict = {"nproc": os.cpu_count(), "clients": args.clients, "MB_per_client": args.mb, "runs": args.runs}
    try:
        images = prepare_images(work, args.clients, args.mb)
        report["MB_per_round"] = round(sum(s for _, s in images) / 1e6, 1)
        weed = start_seaweedfs(work / "seaweedfs")
        started.append(weed)

        def ours(name: str, settings: dict | None = None) -> list:
            return [start_registry(work / name, settings=settings)]

        def replicas(bucket: str, count: int):
            weed.client().create_bucket(Bucket=bucket)
            settings = {"storage": weed.storage_settings(bucket, "reg")}
            with ThreadPoolExecutor(count) as pool:
                return list(pool.map(lambda i: start_registry(work / f"{bucket}-{i}", settings=settings), range(count)))

        configs = []
        if DOCKER_REGISTRY:
            configs.append(("docker-registry", lambda run: [start_docker_registry(work / f"reference-{run}")]))
        configs += [
            ("fs x1", lambda run: ours(f"fs-{run}")),
            ("s3 x1", lambda run: replicas(f"one-{run}", 1)),
            ("s3 x3", lambda run: replicas(f"three-{run}", 3)),
        ]
        results = {label: {"push": [], "pull": [], "gets": [], "rss": []} for label, _ in configs}
        for run in range(args.runs):
            # every configuration once per round, in turn: a machine whose speed drifts moves all alike,
            # and the ratios are taken round by round
            for label, start in configs:
                servers = start(run)  # an empty registry each time: every push uploads everything
                started.extend(servers)
                hosts = [s.host for s in servers]
                push_rate, pull_rate = throughput(hosts, images, work, "v1")
                results[label]["push"].append(push_rate)
                results[label]["pull"].append(pull_rate)
                results[label]["gets"].append(manifest_gets(hosts, args.clients, args.seconds))
                results[label]["rss"].append(rss_mb([s.process.pid for s in servers]))
                for server in servers:
                    server.stop()
        reference = results.get("docker-registry")
        for label, _ in configs:
            r = results[label]
            entry = report[label] = {
                "push_MBps": round(statistics.median(r["push"]), 1),
                "pull_MBps": round(statistics.median(r["pull"]), 1),
                "manifest_gets_per_s": round(statistics.median(r["gets"])),
                "push_runs": [round(x, 1) for x in r["push"]],
                "pull_runs": [round(x, 1) for x in r["pull"]],
                "gets_runs": [round(x) for x in r["gets"]],
                "server_rss_MB": max(r["rss"]),
            }
            if reference and label != "docker-registry":
                entry["vs_reference"] = {  # the median of the round-by-round ratios
                    name: round(statistics.median([a / b for a, b in zip(r[key], reference[key], strict=True)]), 2)
                    for name, key in (("push_MBps", "push"), ("pull_MBps", "pull"), ("manifest_gets_per_s", "gets"))
                }
        print(json.dumps(report, indent=2))
    finally:
        for server in reversed(started):
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
