"""Build benchmarks: the issue's 6-step Dockerfile with a 20 MB context, cold and cached.

    python -m bench.build_bench [--mb 20] [--repeat 3] [--runs 5] [--storage-driver vfs]

Starts a daemon of its own (with POST /build, through tests/build/launch_daemon.py)
on a temporary data root, imports busybox, then times with the docker CLI
(``DOCKER_BUILDKIT=0``) and the dockyard CLI:

* cold: ``--no-cache`` build of the 6-step Dockerfile (FROM, COPY, RUN, ENV, RUN, CMD);
* cached: the same build again, unchanged (no RUN may execute);
* one changed file: the cache is used up to the COPY;
* per RUN step: a Dockerfile of N ``RUN true`` steps, (t(N) - t(0)) / N.

Reference (issue 6): Docker's classic builder on this machine, 2.06 s cold and
0.27 s fully cached.  Medians of ``--repeat`` runs are printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers.build import start_build_daemon  # noqa: E402
from tests.helpers.daemon import DOCKER, busybox_rootfs_tar  # noqa: E402

DOCKERFILE = """\
FROM busybox
COPY . /app
RUN ls /app | wc -l > /count
ENV MODE=bench
RUN du -s /app > /du
CMD ["cat", "/count"]
"""


def make_context(root: Path, mb: int) -> Path:
    ctx = root / "ctx"
    (ctx / "data").mkdir(parents=True)
    for i in range(mb):
        (ctx / "data" / f"blob-{i:03d}.bin").write_bytes(os.urandom(1 << 20))
    for i in range(50):
        (ctx / f"src-{i}.txt").write_text(f"source file {i}\n" * 20)
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    return ctx


def timed(command: list[str], env: dict[str, str], expect_cached: bool | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout.decode()}\n{done.stderr.decode()}")
    if expect_cached is not None:
        ran = b"Running in" in done.stdout
        if expect_cached and ran:
            raise SystemExit(f"expected a fully cached build:\n{done.stdout.decode()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--storage-driver", default=os.environ.get("DOCKYARD_TEST_STORAGE_DRIVER", "vfs"))
    args = parser.parse_args()
    os.environ["DOCKYARD_TEST_STORAGE_DRIVER"] = args.storage_driver
    root = Path(tempfile.mkdtemp(prefix="build-bench-"))
    daemon = start_build_daemon(root)
    try:
        import docker

        client = docker.DockerClient(base_url=daemon.host, timeout=300)
        client.api.import_image_from_data(busybox_rootfs_tar(), repository="busybox", tag="latest")
        ctx = make_context(root, args.mb)
        env = dict(daemon.env(), DOCKER_BUILDKIT="0")
        clis = {"dockyard": [sys.executable, "-m", "dockyard.cli", "build"]}
        if (
            subprocess.run(
                [sys.executable, "-m", "dockyard.cli", "build", "--help"], env=env, capture_output=True
            ).returncode
            == 0
        ):
            clis["dockyard"] = [sys.executable, "-m", "dockyard.cli", "build"]
        if DOCKER:
            clis["docker"] = [DOCKER, "build"]
        print(f"storage driver {args.storage_driver}, context {args.mb} MB + 50 small files, medians of {args.repeat}")
        for name, cli in clis.items():
            cold, cached, changed = [], [], []
            for i in range(args.repeat):
                cold.append(timed([*cli, "--no-cache", "-t", "bench:cold", str(ctx)], env))
                cached.append(timed([*cli, "-t", "bench:cold", str(ctx)], env, expect_cached=True))
                (ctx / "src-0.txt").write_text(f"changed {i} {time.time()}\n")
                changed.append(timed([*cli, "-t", "bench:cold", str(ctx)], env))
            print(
                f"{name:8s} CLI: cold {statistics.median(cold):.2f} s   cached {statistics.median(cached):.2f} s"
                f"   one file changed {statistics.median(changed):.2f} s"
            )
        runs_ctx = root / "runs"
        runs_ctx.mkdir()
        cli = clis.get("docker", clis["dockyard"])
        (runs_ctx / "Dockerfile").write_text("FROM busybox\nENV X=1\n")
        base = statistics.median(timed([*cli, "--no-cache", "-q", str(runs_ctx)], env) for _ in range(args.repeat))
        (runs_ctx / "Dockerfile").write_text("FROM busybox\nENV X=1\n" + "RUN true\n" * args.runs)
        many = statistics.median(timed([*cli, "--no-cache", "-q", str(runs_ctx)], env) for _ in range(args.repeat))
        print(f"per RUN step (RUN true, busybox base): {(many - base) / args.runs:.3f} s")
        for c in client.containers.list(all=True):
            c.remove(force=True)
        client.close()
    finally:
        daemon.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
