"""docker exec latency (root; real LXC).

    python bench/exec_latency.py [--runs 30] [--host unix:///var/run/dockyard.sock]

1. driver level: ``exec_run`` + read the stream + ``exec_run_wait`` of ``true`` in a
   running busybox container, straight on the exec_lxc driver (no daemon);
2. end to end, when ``--host`` is given: ``docker exec <c> true`` through the docker
   CLI (the daemon needs a ``busybox`` image; a container is started and removed),
   and, for scale, ``docker ps -q`` (one API call and the CLI's own start-up).

Prints median and p90 of each.  Interleaving keeps the machine load comparable.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from dockyard.models.runtime import ProcessSpec, RuntimeSpec
from dockyard.plugins.exec_lxc.driver import LxcDriver
from dockyard.testing.exec_conformance import build_busybox_rootfs, read_all


def summary(name: str, xs: list[float]) -> str:
    xs = sorted(xs)
    p90 = xs[max(0, int(round(0.9 * len(xs))) - 1)]
    return f"{name:<34} median {statistics.median(xs) * 1000:6.1f} ms   p90 {p90 * 1000:6.1f} ms   ({len(xs)} runs)"


def driver_level(runs: int) -> list[float]:
    tmp = Path(tempfile.mkdtemp(prefix="dy-exec-bench-"))
    driver = LxcDriver(tmp / "lxc", {})
    cid = secrets.token_hex(32)
    try:
        rootfs = build_busybox_rootfs(tmp / "rootfs")
        driver.exec_create(
            spec=RuntimeSpec(container_id=cid, rootfs=rootfs, args=["sleep", "100000"], log_path=tmp / "log.json")
        )
        driver.exec_start(container_id=cid)
        times = []
        for i in range(runs + 2):
            exec_id = secrets.token_hex(32)
            t0 = time.perf_counter()
            sock = driver.exec_run(container_id=cid, exec_id=exec_id, spec=ProcessSpec(args=["true"]))
            codes: list[int] = []
            waiter = threading.Thread(
                target=lambda: codes.append(driver.exec_run_wait(container_id=cid, exec_id=exec_id))
            )
            waiter.start()
            read_all(sock)
            waiter.join()
            if i >= 2:  # warm-up
                times.append(time.perf_counter() - t0)
            assert codes == [0], codes
        return times
    finally:
        try:
            driver.exec_stop(container_id=cid, signal=signal.SIGKILL, timeout=0)
            driver.exec_delete(container_id=cid)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def end_to_end(host: str, runs: int) -> tuple[list[float], list[float]]:
    docker = shutil.which("docker") or sys.exit("the docker CLI is needed for --host")
    env = dict(os.environ, DOCKER_HOST=host)
    name = "exec-bench-" + secrets.token_hex(4)
    subprocess.run(
        [docker, "run", "-d", "--name", name, "busybox", "sleep", "100000"], env=env, check=True, capture_output=True
    )
    try:
        exec_times, ps_times = [], []
        for i in range(runs + 2):
            t0 = time.perf_counter()
            subprocess.run([docker, "exec", name, "true"], env=env, check=True)
            t1 = time.perf_counter()
            subprocess.run([docker, "ps", "-q"], env=env, check=True, capture_output=True)
            t2 = time.perf_counter()
            if i >= 2:
                exec_times.append(t1 - t0)
                ps_times.append(t2 - t1)
        return exec_times, ps_times
    finally:
        subprocess.run([docker, "rm", "-f", name], env=env, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--host", help="a dockyard daemon's socket (unix:///...), for the end-to-end numbers")
    args = parser.parse_args()
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs")
    print(summary("driver exec_run(true)+wait", driver_level(args.runs)))
    if args.host:
        exec_times, ps_times = end_to_end(args.host, args.runs)
        print(summary("docker exec c true (end to end)", exec_times))
        print(summary("docker ps -q (CLI + one call)", ps_times))


if __name__ == "__main__":
    main()
