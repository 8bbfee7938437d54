"""The dockyard CLI side by side with the docker CLI, against the same daemon.

    python bench/cli_startup.py --host unix:///run/dockyard.sock [--runs 20]
    python bench/cli_startup.py --start-daemon [--runs 20]        # root: a throwaway daemon

For ``ps``, ``version``, ``images`` and ``run --rm busybox true``, each CLI is
started RUNS times, the two in turn (dockyard, docker, dockyard, ...) so that
both see the same machine load.  A run is the whole process, from spawn to exit:
wall time, and peak resident memory as the kernel accounts it, read by GNU
``/usr/bin/time`` (Debian package ``time``), which forks the command from its own
small process: a child spawned from this Python would be charged with this
Python's memory.  Prints median, min and max of each, the median of the per-pair
ratio (or difference), and the issue's targets: ``ps``, ``version`` and
``images`` under 100 ms and 25 MB; ``run --rm`` within 60 ms of the docker CLI.
The daemon needs a ``busybox`` image (``--start-daemon`` makes one from the
host's busybox).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout: its test helpers

from tests.helpers.daemon import busybox_rootfs_tar  # noqa: E402

CASES = {
    "ps": ["ps"],
    "version": ["version"],
    "images": ["images"],
    "run --rm": ["run", "--rm", "busybox", "true"],
}
#: (wall limit in seconds, peak limit in MiB) for the quick commands; `run` is judged against docker
TARGET_WALL, TARGET_PEAK, TARGET_RUN_DELTA = 0.100, 25.0, 0.060


TIME = "/usr/bin/time"


class Run(NamedTuple):
    wall: float  # seconds
    peak: float  # MiB
    status: int


def once(argv: list[str], env: dict[str, str]) -> Run:
    """One run of ``argv``, its output thrown away."""
    with tempfile.NamedTemporaryFile("r", prefix="dy-cli-bench-") as report:
        start = time.perf_counter()
        done = subprocess.run(
            [TIME, "-q", "-f", "%x %M", "-o", report.name, *argv],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wall = time.perf_counter() - start
        status, peak_kib = report.read().split()[-2:]
    if done.returncode != int(status):
        sys.exit(f"{TIME} failed ({done.returncode}) on {' '.join(argv)}")
    return Run(wall, int(peak_kib) / 1024, int(status))


def spread(values: list[float], scale: float, unit: str) -> str:
    return f"{statistics.median(values) * scale:7.1f} {unit} [{min(values) * scale:.1f}-{max(values) * scale:.1f}]"


def compare(
    name: str, args: list[str], dockyard: list[str], docker: str, env: dict[str, str], runs: int, warmup: int
) -> bool:
    a_argv, b_argv = dockyard + args, [docker, *args]
    for _ in range(warmup):
        once(a_argv, env), once(b_argv, env)
    a: list[Run] = []
    b: list[Run] = []
    for _ in range(runs):
        a.append(once(a_argv, env))
        b.append(once(b_argv, env))
    failed = [r.status for r in a + b if r.status != 0]
    if failed:
        sys.exit(f"{name}: a run exited with {failed[0]} ({' '.join(a_argv)} / {' '.join(b_argv)})")
    a_wall, b_wall = [r.wall for r in a], [r.wall for r in b]
    a_peak, b_peak = [r.peak for r in a], [r.peak for r in b]
    ratio = statistics.median(x / y for x, y in zip(a_wall, b_wall, strict=True))
    delta = statistics.median(x - y for x, y in zip(a_wall, b_wall, strict=True))
    if name == "run --rm":
        met = delta <= TARGET_RUN_DELTA
        target = f"within {TARGET_RUN_DELTA * 1000:.0f} ms of docker"
    else:
        met = statistics.median(a_wall) < TARGET_WALL and statistics.median(a_peak) < TARGET_PEAK
        target = f"< {TARGET_WALL * 1000:.0f} ms, < {TARGET_PEAK:.0f} MiB"
    print(
        f"{name:<9} dockyard {spread(a_wall, 1000, 'ms')} {spread(a_peak, 1, 'MiB')}   "
        f"docker {spread(b_wall, 1000, 'ms')} {spread(b_peak, 1, 'MiB')}   "
        f"ratio {ratio:5.2f}  diff {delta * 1000:+6.1f} ms   target {target}: {'met' if met else 'NOT met'}"
    )
    return met


def _answers(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(path))
            s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
            return s.recv(64).split(b" ")[1:2] == [b"200"]
    except OSError:
        return False


@contextmanager
def throwaway_daemon(dockyard: list[str]):
    """A daemon on a temporary data root and socket, with its own bridge, and a busybox image."""
    root = Path(tempfile.mkdtemp(prefix="dy-cli-bench-"))
    sock = root / "d.sock"
    bridge = "dyb" + secrets.token_hex(4)
    log = open(root / "daemon.log", "wb")
    daemon = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dockyard.daemon",
            "-H",
            f"unix://{sock}",
            "--data-root",
            str(root / "data"),
            "--storage-driver",
            "vfs",
            "--network-opt",
            f"bridge={bridge}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not _answers(sock):
            if daemon.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"the daemon did not start:\n{(root / 'daemon.log').read_text()}")
            time.sleep(0.05)
        host = f"unix://{sock}"
        subprocess.run(
            [*dockyard, "-H", host, "import", "-", "busybox:latest"],
            input=busybox_rootfs_tar(),
            check=True,
            capture_output=True,
        )
        yield host
    finally:
        daemon.terminate()
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        log.close()
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)
        subprocess.run(["nft", "delete", "table", "ip", f"dockyard_{bridge}"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--host", help="the daemon both CLIs talk to (unix:///path or tcp://host:port)")
    where.add_argument("--start-daemon", action="store_true", help="start a throwaway daemon (root)")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--dockyard", help="the dockyard command (default: the console script of this Python)")
    parser.add_argument("--docker", default=shutil.which("docker"), help="the docker CLI")
    parser.add_argument("cases", nargs="*", choices=[[], *CASES], help="which commands (default: all)")
    args = parser.parse_args()
    if not args.docker:
        sys.exit("the docker CLI is needed")
    if not os.access(TIME, os.X_OK):
        sys.exit(f"{TIME} is needed (Debian package: time)")
    script = Path(sys.executable).with_name("dockyard")
    dockyard = (
        args.dockyard.split()
        if args.dockyard
        else [str(script)]
        if script.exists()
        else [sys.executable, "-m", "dockyard.cli"]
    )
    with throwaway_daemon(dockyard) if args.start_daemon else _given(args.host) as host:
        config = tempfile.mkdtemp(prefix="dy-cli-bench-config-")
        env = {
            **os.environ,
            "DOCKYARD_HOST": host,
            "DOCKER_HOST": host,
            "DOCKER_CONFIG": config,
            "DOCKYARD_CONFIG": config,
        }
        try:
            print(f"{args.runs} runs each, in turn; median [min-max]; ratio and diff: median of the pairs")
            met = [
                compare(name, CASES[name], dockyard, args.docker, env, args.runs, args.warmup)
                for name in (args.cases or CASES)
            ]
        finally:
            shutil.rmtree(config, ignore_errors=True)
    sys.exit(0 if all(met) else 1)


@contextmanager
def _given(host: str):
    yield host


if __name__ == "__main__":
    main()
