"""Exec drivers side by side with a reference Docker daemon, in one run (root; real everything).

    python bench/exec_drivers.py [--runs 20] [--targets lxc,oci:runc,oci:crun] [--reference]
                                 [--storage-driver overlay] [--skip-100]

For every target (a dockyard daemon per exec driver/runtime, each on its own data root,
socket and bridge; with ``--reference``, Debian's ``docker.io`` started exactly as
``dockerd -H unix:///run/refdocker.sock --data-root /var/lib/refdocker --exec-root
/run/refdocker --pidfile /run/refdocker.pid`` and stopped at the end) it measures, through
the same docker CLI, runs interleaved round by round so every target sees the same load:

* ``docker run --rm busybox true``: median and p90, bridged and ``--network none``;
* lifecycle: ``create``, ``start``, ``stop -t 0``, ``rm`` of one container (sum of the four);
* ``docker ps -q``: the CLI's own start-up plus one API call (the floor under every figure above);
* 50 x ``docker run -d busybox sleep`` then one ``docker rm -f`` of all 50 (wall time);
* helper memory per running container with those 50 running: PSS (``/proc/PID/smaps_rollup``)
  of the per-container helpers (conmon for oci; conmon and the LXC monitor for lxc;
  containerd-shim-runc-v2 for Docker), summed and divided by 50;
* daemon RSS idle (busybox imported) and with 100 running containers (Docker: dockerd + containerd);
* driver level, no daemon: create, start, wait and delete of ``true`` on each exec driver
  (the runtime's own floor).

Prints a table per measure with each target's figures and its ratio to the reference.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout: its test helpers

from tests.helpers.daemon import busybox_rootfs_tar  # noqa: E402

DOCKER = shutil.which("docker", path="/usr/local/bin:/usr/bin") or "docker"
REF_SOCK = "/run/refdocker.sock"
REF_ARGS = [
    "dockerd",
    "-H",
    f"unix://{REF_SOCK}",
    "--data-root",
    "/var/lib/refdocker",
    "--exec-root",
    "/run/refdocker",
    "--pidfile",
    "/run/refdocker.pid",
]


def pss_kb(pid: int) -> int:
    try:
        for line in open(f"/proc/{pid}/smaps_rollup"):
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kb(pid: int) -> int:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def session_of(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[3])
    except (OSError, ValueError, IndexError):
        return -1


def all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


@dataclass
class Target:
    name: str
    host: str
    daemon: subprocess.Popen | None = None
    root: Path | None = None
    exec_driver: str = ""
    samples: dict[str, list[float]] = field(default_factory=dict)
    figures: dict[str, float] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return dict(os.environ, DOCKER_HOST=self.host, DOCKER_CONFIG=str(Path(tempfile.gettempdir()) / "bench-dcfg"))

    def docker(self, *args: str, input: bytes | None = None, check: bool = True) -> str:
        out = subprocess.run([DOCKER, *args], input=input, capture_output=True, env=self.env(), timeout=300)
        if check and out.returncode != 0:
            raise RuntimeError(f"{self.name}: docker {' '.join(args)}: {out.stderr.decode().strip()}")
        return out.stdout.decode()

    def timed(self, key: str, *args: str) -> float:
        t0 = time.perf_counter()
        self.docker(*args)
        dt = time.perf_counter() - t0
        self.samples.setdefault(key, []).append(dt)
        return dt

    # -- who is the daemon, who are the helpers ----------------------------------------------

    def daemon_pids(self) -> list[int]:
        if self.daemon is not None:
            return [self.daemon.pid]
        pid = int(Path("/run/refdocker.pid").read_text())
        children = [p for p in all_pids() if comm(p) == "containerd" and session_of(p) in (session_of(pid), pid)]
        return [pid, *children]

    def helper_pids(self) -> list[int]:
        if self.daemon is None:
            return [p for p in all_pids() if comm(p).startswith("containerd-shim")]
        base = self.root / "data" / "exec" / self.exec_driver
        roots = []
        for d in base.iterdir():
            for name in ("conmon.pid",):
                try:
                    roots.append(int((d / name).read_text().split()[0]))
                except (OSError, ValueError, IndexError):
                    pass
        sessions = {session_of(p) for p in roots}
        helpers = []
        for p in all_pids():
            if session_of(p) not in sessions:
                continue
            try:
                cgroups = Path(f"/proc/{p}/cgroup").read_text()
            except OSError:
                continue
            if "/dockyard/" not in cgroups.replace("dockyard.monitor", ""):  # not a container process
                helpers.append(p)
        return helpers


def start_dockyard(name: str, exec_driver: str, runtime: str, storage: str) -> Target:
    root = Path(tempfile.mkdtemp(prefix=f"dy-bench-{name.replace(':', '-')}-"))
    sock = root / "s.sock"
    bridge = "dyb" + hashlib.sha256(str(root).encode()).hexdigest()[:8]
    argv = [
        sys.executable,
        "-m",
        "dockyard.daemon",
        "-H",
        f"unix://{sock}",
        "--data-root",
        str(root / "data"),
        "--storage-driver",
        storage,
        "--exec-driver",
        exec_driver,
        "--network-opt",
        f"bridge={bridge}",
    ]
    if runtime:
        argv += ["--runtime", runtime]
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=open(root / "daemon.log", "ab"), start_new_session=True
    )
    t = Target(name, f"unix://{sock}", proc, root, exec_driver)
    wait_ping(t)
    return t


def start_reference() -> Target:
    if not shutil.which("dockerd"):
        sys.exit("--reference needs Debian's docker.io (dockerd)")
    if Path(REF_SOCK).exists():
        sys.exit(f"{REF_SOCK} exists: is a reference daemon already running?")
    log = open("/tmp/refdocker.log", "ab")
    subprocess.Popen(REF_ARGS, stdout=log, stderr=log, start_new_session=True)
    t = Target("docker", f"unix://{REF_SOCK}")
    wait_ping(t)
    return t


def wait_ping(t: Target) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if subprocess.run([DOCKER, "version"], capture_output=True, env=t.env()).returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{t.name} did not come up")


def stop(t: Target) -> None:
    try:
        ids = t.docker("ps", "-aq", check=False).split()
        if ids:
            t.docker("rm", "-f", *ids, check=False)
        t.docker("rmi", "-f", "busybox", check=False)
    finally:
        if t.daemon is not None:
            t.daemon.send_signal(signal.SIGTERM)
            try:
                t.daemon.wait(60)
            except subprocess.TimeoutExpired:
                t.daemon.kill()
            bridge = "dyb" + hashlib.sha256(str(t.root).encode()).hexdigest()[:8]
            subprocess.run(["ip", "link", "del", bridge], capture_output=True)
            subprocess.run(["nft", "delete", "table", "ip", f"dockyard_{bridge}"], capture_output=True)
            subprocess.run(["umount", "-R", str(t.root / "data")], capture_output=True)
            shutil.rmtree(t.root, ignore_errors=True)
        else:
            pid = int(Path("/run/refdocker.pid").read_text())
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 60
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.2)


def stats(xs: list[float]) -> tuple[float, float]:
    xs = sorted(xs)
    return statistics.median(xs), xs[max(0, int(round(0.9 * len(xs))) - 1)]


def driver_floor(runs: int) -> dict[str, list[float]]:
    """create/start/wait/delete of ``true`` straight on each exec driver (no daemon, host network)."""
    from dockyard.drivers import driver_class
    from dockyard.models.runtime import RuntimeSpec
    from dockyard.testing.exec_conformance import build_busybox_rootfs

    out: dict[str, list[float]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="dy-bench-floor-"))
    try:
        rootfs = build_busybox_rootfs(tmp / "rootfs")
        for name, options in (("lxc", {}), ("oci:runc", {"runtime": "runc"}), ("oci:crun", {"runtime": "crun"})):
            driver = driver_class("exec", name.split(":")[0])(tmp / name.replace(":", "-"), options)
            times = []
            for i in range(runs + 2):
                cid = secrets.token_hex(32)
                t0 = time.perf_counter()
                driver.exec_create(
                    spec=RuntimeSpec(container_id=cid, rootfs=rootfs, args=["true"], log_path=tmp / "log")
                )
                driver.exec_start(container_id=cid)
                driver.exec_wait(container_id=cid)
                driver.exec_delete(container_id=cid)
                if i >= 2:
                    times.append(time.perf_counter() - t0)
            out[name] = times
            getattr(driver, "close", lambda: None)()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--targets", default="lxc,oci:runc,oci:crun")
    ap.add_argument("--reference", action="store_true")
    ap.add_argument("--storage-driver", default="overlay")
    ap.add_argument("--skip-100", action="store_true", help="skip daemon RSS with 100 running containers")
    args = ap.parse_args()
    tar = busybox_rootfs_tar()
    targets: list[Target] = []
    try:
        for spec in args.targets.split(","):
            driver, _, runtime = spec.partition(":")
            targets.append(start_dockyard(spec, driver, runtime, args.storage_driver))
        if args.reference:
            targets.append(start_reference())
        for t in targets:
            t.docker("import", "-", "busybox:latest", input=tar)
            t.docker("run", "--rm", "busybox", "true")  # warm up
            t.docker("run", "--rm", "--network", "none", "busybox", "true")
            time.sleep(1)
            t.figures["rss_idle_kb"] = sum(rss_kb(p) for p in t.daemon_pids())
        for _ in range(args.runs):
            for t in targets:
                t.timed("run_rm_bridge", "run", "--rm", "busybox", "true")
                t.timed("run_rm_none", "run", "--rm", "--network", "none", "busybox", "true")
                t.timed("ps", "ps", "-q")
                t0 = time.perf_counter()
                cid = t.docker("create", "busybox", "sleep", "1000").strip()
                t.docker("start", cid)
                t.docker("stop", "-t", "0", cid)
                t.docker("rm", cid)
                t.samples.setdefault("lifecycle", []).append(time.perf_counter() - t0)
        for t in targets:
            t0 = time.perf_counter()
            ids = [t.docker("run", "-d", "busybox", "sleep", "100000").strip() for _ in range(50)]
            t.figures["run_d_50_s"] = time.perf_counter() - t0
            time.sleep(1)
            helpers = t.helper_pids()
            t.figures["helper_pss_kb"] = sum(pss_kb(p) for p in helpers) / 50
            t.figures["helper_procs"] = len(helpers)
            t0 = time.perf_counter()
            t.docker("rm", "-f", *ids)
            t.figures["rm_f_50_s"] = time.perf_counter() - t0
            assert not t.docker("ps", "-aq").split(), f"{t.name}: containers left after rm -f"
        if not args.skip_100:
            for t in targets:
                ids = [t.docker("run", "-d", "busybox", "sleep", "100000").strip() for _ in range(100)]
                time.sleep(2)
                t.figures["rss_100_kb"] = sum(rss_kb(p) for p in t.daemon_pids())
                for i in range(0, len(ids), 10):  # in tens: a loaded machine need not hit client timeouts
                    t.docker("rm", "-f", *ids[i : i + 10])
    finally:
        for t in targets:
            try:
                stop(t)
            except Exception as exc:  # noqa: BLE001 - keep stopping the others
                print(f"stopping {t.name}: {exc}", file=sys.stderr)
    floor = driver_floor(args.runs)
    report(targets, floor)


def report(targets: list[Target], floor: dict[str, list[float]]) -> None:
    ref = next((t for t in targets if t.daemon is None), None)
    print(f"{'measure':<34}" + "".join(f"{t.name:>22}" for t in targets))

    def row(label: str, values: list[str]) -> None:
        print(f"{label:<34}" + "".join(f"{v:>22}" for v in values))

    for key, label in (
        ("run_rm_bridge", "run --rm (bridge) median/p90 ms"),
        ("run_rm_none", "run --rm (none) median/p90 ms"),
        ("lifecycle", "lifecycle median/p90 ms"),
        ("ps", "ps -q (CLI floor) median ms"),
    ):
        values = []
        for t in targets:
            med, p90 = stats(t.samples[key])
            ratio = ""
            if ref is not None and t is not ref:
                ratio = f" ({med / stats(ref.samples[key])[0]:.2f}x)"
            values.append(f"{med * 1000:.0f}/{p90 * 1000:.0f}{ratio}")
        row(label, values)
    for key, label, scale, fmt in (
        ("run_d_50_s", "50 x run -d, s", 1, "{:.1f}"),
        ("rm_f_50_s", "rm -f 50, s", 1, "{:.2f}"),
        ("helper_pss_kb", "helper PSS per container, MB", 1 / 1024, "{:.2f}"),
        ("helper_procs", "helper processes for 50", 1, "{:.0f}"),
        ("rss_idle_kb", "daemon RSS idle, MB", 1 / 1024, "{:.0f}"),
        ("rss_100_kb", "daemon RSS, 100 running, MB", 1 / 1024, "{:.0f}"),
    ):
        values = []
        for t in targets:
            if key not in t.figures:
                values.append("-")
                continue
            v = fmt.format(t.figures[key] * scale)
            if ref is not None and t is not ref and key in ref.figures and ref.figures[key]:
                v += f" ({t.figures[key] / ref.figures[key]:.2f}x)"
            values.append(v)
        row(label, values)
    print()
    for name, times in floor.items():
        med, p90 = stats(times)
        print(
            f"driver floor {name:<10} create+start+wait+delete of true: median {med * 1000:.1f} ms, "
            f"p90 {p90 * 1000:.1f} ms"
        )


if __name__ == "__main__":
    main()
