"""What Docker's default confinement costs a container start (root; real LXC).

    python bench/confinement_cost.py [--runs 30]

Runs ``true`` in a busybox container straight on the exec_lxc driver
(create, start, wait, delete), alternating between Docker's default
confinement (capabilities, seccomp filter, masked and read-only paths) and
none at all (``--privileged`` without its devices), and prints the median of
each and their ratio.  Alternating keeps the machine's load the same for both.
It also times resolving a confinement in the core (``dockyard.confinement.resolve``).
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from dockyard import confinement
from dockyard.models.runtime import RuntimeSpec
from dockyard.plugins.exec_lxc.driver import LxcDriver
from dockyard.testing.exec_conformance import build_busybox_rootfs, read_all


def one_run(driver: LxcDriver, rootfs: Path, logs: Path, conf) -> float:
    cid = secrets.token_hex(32)
    t0 = time.perf_counter()
    driver.exec_create(
        spec=RuntimeSpec(
            container_id=cid, rootfs=rootfs, args=["true"], log_path=logs / f"{cid}.json", confinement=conf
        )
    )
    sock = driver.exec_attach(container_id=cid, stdin=False, stdout=True, stderr=True)
    driver.exec_start(container_id=cid)
    read_all(sock)
    driver.exec_wait(container_id=cid)
    elapsed = time.perf_counter() - t0
    driver.exec_delete(container_id=cid)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dy-conf-bench-"))
    try:
        rootfs = build_busybox_rootfs(tmp / "rootfs")
        driver = LxcDriver(tmp / "lxc", {})
        default = confinement.resolve()
        bare = confinement.resolve(privileged=True).model_copy(update={"devices": [], "privileged": False})
        confined, unconfined = [], []
        for i in range(args.runs + 2):
            a, b = one_run(driver, rootfs, tmp, default), one_run(driver, rootfs, tmp, bare)
            if i >= 2:  # warm-up
                confined.append(a)
                unconfined.append(b)
        t0 = time.perf_counter()
        for _ in range(200):
            confinement.resolve(cap_add=["NET_ADMIN"], security_opt=["no-new-privileges"])
        resolve_ms = (time.perf_counter() - t0) / 200 * 1000
        ratios = sorted(a / b for a, b in zip(confined, unconfined, strict=True))
        for name, xs in (("Docker's default confinement", confined), ("unconfined", unconfined)):
            print(f"start+wait of `true`, {name + ':':<30} median {statistics.median(xs) * 1000:.1f} ms")
        print(
            f"ratio confined/unconfined (pairwise median):         {statistics.median(ratios):.3f} "
            f"({len(ratios)} pairs)"
        )
        print(f"confinement.resolve() in the core:                   {resolve_ms:.2f} ms per container")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
