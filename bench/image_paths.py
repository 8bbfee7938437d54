#!/usr/bin/env python3
"""Image data paths side by side with a reference Docker daemon, in one run.

    sudo python -m bench.image_paths [--drivers vfs,overlay,btrfs] [--rounds 3] [--paths ...] [--dir /var/tmp]

One command; it prints the table (and ``--json FILE`` keeps the figures).  Every
path is driven through the real ``docker`` CLI against Debian's ``dockerd`` (the
reference) and against a dockyard daemon per storage driver, in rounds: in each
round every daemon runs the path once, one after the other, so that a ratio is
taken between runs that shared the machine's mood.  The table gives medians over
the rounds of MB/s for both and of the per-round ratio (dockyard / Docker for
throughput; for commit, diff and build the ratio of times, dockyard / Docker,
lower is better).  The load average is printed at the start and the end: on a
busy machine, trust the ratios, not the MB/s.

Inputs (generated once into ``--dir``, kept with ``--keep``):

* ``rootfs``: a ~200 MB synthetic root file system tar (``bench.storage_drivers.make_tree``:
  ~20 000 files of 64 B - 64 KiB, text and random, directories, hard links, symlinks);
* ``img5``: a 50 MB image of 5 layers of 10 MB (docker-archive).

Paths (each on both inputs where it applies):

import   ``docker import rootfs.tar``                         tar MB / s
load     ``docker load -i`` the image's docker-archive          archive MB / s
save     ``docker save -o``                                      archive MB / s
export   ``docker export -o`` of a created container            tar MB / s
commit   ``docker commit`` of a container holding 50 MB more    time ratio (target <= 1.0)
diff     ``docker diff`` of that container                      time ratio (target <= 1.0)
push     ``docker push`` to an empty reference registry          uncompressed MB / s
pull     ``docker pull`` of what was pushed, the image removed   uncompressed MB / s
registry skopeo copy into and out of ``dockyard registry`` and Debian's ``docker-registry``
         (push, pull, one blob GET): dockyard's server / the reference server
build    the 6-step Dockerfile of bench/build_bench.py (20 MB context), cold and cached: time ratio

The reference daemon is started, if ``/run/refdocker.sock`` does not answer, exactly as
``dockerd -H unix:///run/refdocker.sock --data-root /var/lib/refdocker --exec-root
/run/refdocker --pidfile /run/refdocker.pid``, and stopped at the end; one that already
answers (another benchmark's) is used and left running.  Images and containers this
benchmark makes in it are named ``dybench/*`` / ``dybench-*`` and removed at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DOCKER = shutil.which("docker", path="/usr/local/bin:/usr/bin") or "docker"
REF_SOCKET = Path("/run/refdocker.sock")
REF_COMMAND = [
    "dockerd",
    "-H",
    "unix:///run/refdocker.sock",
    "--data-root",
    "/var/lib/refdocker",
    "--exec-root",
    "/run/refdocker",
    "--pidfile",
    "/run/refdocker.pid",
]
PATHS = ("import", "load", "save", "export", "commit", "diff", "push", "pull", "registry", "build")
TIME_PATHS = ("commit", "diff", "build-cold", "build-cached")  # ratio of times: lower is better
TARGETS = {
    "import": 1.5,
    "load": 1.5,
    "save": 1.5,
    "export": 1.5,
    "push": 1.5,
    "pull": 1.5,
    "commit": 1.0,
    "diff": 1.0,
    "build-cold": 0.8,
    "build-cached": 0.8,
    "registry": 1.0,
}


# ---------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def docker_archive_file(layers: list[Path], out: Path, tag: str) -> str:
    """Write a docker-archive (``docker save`` format) of uncompressed layer tars; returns the image ID."""
    diff_ids = [_sha256_file(p) for p in layers]
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"]},
            "created": "2026-01-01T00:00:00Z",
            "history": [{"created": "2026-01-01T00:00:00Z", "created_by": f"layer {i}"} for i in range(len(layers))],
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    ).encode()
    image_id = hashlib.sha256(config).hexdigest()
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        names = []
        for path, diff_id in zip(layers, diff_ids, strict=True):
            name = f"{diff_id[7:]}/layer.tar"
            tar.add(str(path), arcname=name)
            names.append(name)
        for name, data in (
            (f"{image_id}.json", config),
            (
                "manifest.json",
                json.dumps([{"Config": f"{image_id}.json", "RepoTags": [tag], "Layers": names}]).encode(),
            ),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return image_id


def tree_tar(work: Path, name: str, mb: int, seed: int) -> Path:
    """A layer tar of a generated tree (cached in ``work``)."""
    from bench.storage_drivers import make_tree
    from dockyard import archive

    out = work / f"{name}.tar"
    if out.exists():
        return out
    tree = work / f"tree-{name}"
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir()
    make_tree(tree, mb, seed=seed)
    with open(out.with_suffix(".part"), "wb") as f, archive.export_tree(tree) as stream:
        shutil.copyfileobj(stream, f, 1 << 20)
    os.replace(out.with_suffix(".part"), out)
    shutil.rmtree(tree)
    return out


def extra_tree(work: Path, mb: int = 50) -> Path:
    """A directory of ``mb`` MB (1 000 files) copied into containers before commit and diff."""
    out = work / "extra"
    if not out.exists():
        part = work / "extra.part"
        shutil.rmtree(part, ignore_errors=True)
        part.mkdir()
        size = mb * 1_000_000 // 1000
        for i in range(1000):
            (part / f"f{i:04d}").write_bytes(os.urandom(size // 2) + b"text " * (size // 10))
        os.replace(part, out)
    return out


def unique_tar(source: Path, out: Path, tag: bytes) -> Path:
    """``source``'s members, one more holding ``tag``, then the end of the archive."""
    from dockyard.pipeline import copy_range
    from dockyard.tarstream import BLOCK, RECORD, TarReader, ustar_header

    with open(source, "rb") as f, open(out, "wb") as o:
        reader = TarReader(f.read, chunk=64 << 10, seek=lambda n: f.seek(n, os.SEEK_CUR))
        while reader.next() is not None:
            pass
        end = reader.offset - BLOCK  # where the end-of-archive block starts
        copy_range(f.fileno(), o.fileno(), 0, end)
        tail = ustar_header(b"dybench-run", 0o644, 0, 0, len(tag), 0, b"0") + tag + bytes(-len(tag) % BLOCK)
        tail += bytes(2 * BLOCK)
        o.seek(end)
        o.write(tail + bytes(-(end + len(tail)) % RECORD))
    return out


@dataclass
class Inputs:
    rootfs: Path
    rootfs_archive: Path
    img5: Path
    extra: Path
    sizes: dict[str, int] = field(default_factory=dict)  # image -> uncompressed bytes


def prepare(work: Path, mb: int) -> Inputs:
    rootfs = tree_tar(work, "rootfs", mb, seed=1)
    rootfs_archive = work / "rootfs-image.tar"
    if not rootfs_archive.exists():
        docker_archive_file([rootfs], rootfs_archive, "dybench/rootfs:load")
    layers = [tree_tar(work, f"layer{i}", max(1, mb // 20), seed=10 + i) for i in range(5)]
    img5 = work / "img5.tar"
    if not img5.exists():
        docker_archive_file(layers, img5, "dybench/img5:load")
    inputs = Inputs(rootfs, rootfs_archive, img5, extra_tree(work, max(1, mb // 4)))
    inputs.sizes = {"rootfs": rootfs.stat().st_size, "img5": sum(p.stat().st_size for p in layers)}
    return inputs


# ---------------------------------------------------------------------------
# daemons and registries
# ---------------------------------------------------------------------------


def answers(path: Path) -> bool:
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        try:
            s.connect(str(path))
            s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
            return s.recv(64).split(b" ")[1:2] == [b"200"]
        except OSError:
            return False


def wait_for(check, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not come up in {timeout:.0f} s")
        time.sleep(0.1)


@dataclass
class Daemon:
    label: str
    socket: Path
    process: subprocess.Popen | None
    config_dir: Path

    def docker(self, *args: str, check: bool = True, timeout: float = 1800) -> subprocess.CompletedProcess:
        env = dict(
            os.environ, DOCKER_HOST=f"unix://{self.socket}", DOCKER_CONFIG=str(self.config_dir), DOCKER_BUILDKIT="0"
        )
        done = subprocess.run([DOCKER, *args], env=env, capture_output=True, timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(f"{self.label}: docker {' '.join(args)} failed: {done.stderr.decode()[-2000:]}")
        return done

    def timed(self, *args: str) -> float:
        start = time.perf_counter()
        self.docker(*args)
        return time.perf_counter() - start

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def reference_daemon(work: Path) -> Daemon:
    config = work / "docker-config"
    config.mkdir(exist_ok=True)
    if answers(REF_SOCKET):
        print("reference: the Docker daemon already answering on /run/refdocker.sock (left running)", file=sys.stderr)
        return Daemon("docker", REF_SOCKET, None, config)
    log = open(work / "refdocker.log", "ab")
    process = subprocess.Popen(REF_COMMAND, stdout=log, stderr=log, start_new_session=True)
    wait_for(lambda: answers(REF_SOCKET) or process.poll() is not None, "the reference dockerd")
    if process.poll() is not None:
        raise SystemExit(f"dockerd exited: see {work / 'refdocker.log'}")
    return Daemon("docker", REF_SOCKET, process, config)


def dockyard_daemon(work: Path, driver: str) -> Daemon:
    root = work / f"dockyard-{driver}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    sock = root / "dockyard.sock"
    log = open(root / "daemon.log", "ab")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dockyard.daemon",
            "-H",
            f"unix://{sock}",
            "--data-root",
            str(root / "data"),
            "--storage-driver",
            driver,
            "--network-driver",
            "none",
        ],
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    wait_for(lambda: answers(sock) or process.poll() is not None, f"dockyard ({driver})")
    if process.poll() is not None:
        raise SystemExit(f"dockyard --storage-driver {driver} exited: see {root / 'daemon.log'}")
    (root / "docker-config").mkdir()
    return Daemon(f"dockyard/{driver}", sock, process, root / "docker-config")


def stop_dockyard(daemon: Daemon) -> None:
    for name in daemon.docker("ps", "-aq", check=False).stdout.decode().split():
        daemon.docker("rm", "-f", name, check=False)
    daemon.stop()
    shutil.rmtree(daemon.socket.parent, ignore_errors=True)


# ---------------------------------------------------------------------------
# the paths
# ---------------------------------------------------------------------------


class Run:
    """One round of one path on every daemon; results[path][label] -> list of (value, seconds)."""

    def __init__(self, inputs: Inputs, work: Path, daemons: list[Daemon]) -> None:
        self.inputs, self.work, self.daemons = inputs, work, daemons
        self.results: dict[str, dict[str, list[float]]] = {}
        self.counter = 0

    def record(self, path: str, label: str, value: float) -> None:
        self.results.setdefault(path, {}).setdefault(label, []).append(value)

    def name(self, kind: str) -> str:
        self.counter += 1
        return f"dybench/{kind}:{os.getpid()}-{self.counter}"

    def cleanup_image(self, d: Daemon, name: str) -> None:
        d.docker("rmi", "-f", name, check=False)

    # -- each path, on one daemon --------------------------------------------------------------
    def import_(self, d: Daemon) -> None:
        name = self.name("imp")
        # a member naming the run makes every import new content: a daemon that has the layer already
        # (dockyard names layers by content and skips applying one it has) would measure nothing
        tar = unique_tar(self.inputs.rootfs, self.work / "import.tar", name.encode())
        seconds = d.timed("import", str(tar), name)
        self.record("import rootfs", d.label, tar.stat().st_size / 1e6 / seconds)
        tar.unlink()
        self.cleanup_image(d, name)

    def load(self, d: Daemon) -> None:
        for key, archive, tag in (
            ("rootfs", self.inputs.rootfs_archive, "dybench/rootfs:load"),
            ("img5", self.inputs.img5, "dybench/img5:load"),
        ):
            self.cleanup_image(d, tag)
            seconds = d.timed("load", "-q", "-i", str(archive))
            self.record(f"load {key}", d.label, archive.stat().st_size / 1e6 / seconds)

    def save(self, d: Daemon) -> None:
        for key, tag in (("rootfs", "dybench/rootfs:load"), ("img5", "dybench/img5:load")):
            out = self.work / f"save-{os.getpid()}.tar"
            seconds = d.timed("save", "-o", str(out), tag)
            self.record(f"save {key}", d.label, out.stat().st_size / 1e6 / seconds)
            out.unlink()

    def export(self, d: Daemon) -> None:
        for key, tag in (("rootfs", "dybench/rootfs:load"), ("img5", "dybench/img5:load")):
            container = f"dybench-export-{os.getpid()}"
            d.docker("rm", "-f", container, check=False)
            d.docker("create", "--name", container, tag, "/bin/sh")
            out = self.work / f"export-{os.getpid()}.tar"
            seconds = d.timed("export", "-o", str(out), container)
            self.record(f"export {key}", d.label, out.stat().st_size / 1e6 / seconds)
            out.unlink()
            d.docker("rm", "-f", container, check=False)

    def commit_diff(self, d: Daemon) -> None:
        container = f"dybench-commit-{os.getpid()}"
        d.docker("rm", "-f", container, check=False)
        d.docker("create", "--name", container, "dybench/rootfs:load", "/bin/sh")
        d.docker("cp", str(self.inputs.extra), f"{container}:/extra")
        start = time.perf_counter()
        listing = d.docker("diff", container).stdout
        self.record("diff", d.label, time.perf_counter() - start)
        assert listing.count(b"\n") > 1000, listing[:200]
        name = self.name("commit")
        self.record("commit", d.label, d.timed("commit", container, name))
        d.docker("rm", "-f", container, check=False)
        self.cleanup_image(d, name)

    def push_pull(self, d: Daemon, registry_host: str) -> None:
        for key, tag in (("rootfs", "dybench/rootfs:load"), ("img5", "dybench/img5:load")):
            remote = f"{registry_host}/dybench/{key}:v1"
            d.docker("tag", tag, remote)
            seconds = d.timed("push", remote)
            self.record(f"push {key}", d.label, self.inputs.sizes[key] / 1e6 / seconds)
            d.docker("rmi", remote)
            d.docker("rmi", "-f", tag, check=False)  # nothing of it stays: the pull fetches every layer
            seconds = d.timed("pull", remote)
            self.record(f"pull {key}", d.label, self.inputs.sizes[key] / 1e6 / seconds)
            d.docker("tag", remote, tag)
            d.docker("rmi", remote)


def start_reference_registry(root: Path):
    from tests.helpers.registry import start_docker_registry

    shutil.rmtree(root, ignore_errors=True)
    return start_docker_registry(root)


def bench_registry(work: Path, inputs: Inputs, run: Run) -> None:
    """skopeo copy into and out of each registry server, and one blob GET (sendfile path)."""
    import httpx

    from tests.helpers.registry import skopeo, start_registry

    servers = [("dockyard registry", lambda root: start_registry(root)), ("docker-registry", start_reference_registry)]
    for label, start in servers:
        root = work / f"reg-{label.split()[0]}"
        shutil.rmtree(root, ignore_errors=True)
        server = start(root)
        try:
            dest = f"docker://{server.host}/bench/img:v1"
            size = inputs.img5.stat().st_size / 1e6
            started = time.perf_counter()
            skopeo("copy", "--dest-tls-verify=false", f"docker-archive:{inputs.img5}", dest)
            run.record("registry push (skopeo)", label, size / (time.perf_counter() - started))
            out = work / f"skopeo-out-{os.getpid()}"
            shutil.rmtree(out, ignore_errors=True)
            started = time.perf_counter()
            skopeo("copy", "--src-tls-verify=false", dest, f"dir:{out}")
            run.record("registry pull (skopeo)", label, size / (time.perf_counter() - started))
            blob = max(out.iterdir(), key=lambda p: p.stat().st_size)
            with httpx.Client(timeout=300) as client:
                started = time.perf_counter()
                got = 0
                with client.stream("GET", f"{server.url}/v2/bench/img/blobs/sha256:{blob.name}") as r:
                    for chunk in r.iter_raw(1 << 20):
                        got += len(chunk)
                run.record("registry blob GET", label, got / 1e6 / (time.perf_counter() - started))
            shutil.rmtree(out, ignore_errors=True)
        finally:
            server.stop()
            shutil.rmtree(root, ignore_errors=True)


def bench_build(work: Path, run: Run, daemons: list[Daemon]) -> None:
    from bench.build_bench import make_context
    from tests.helpers.daemon import busybox_rootfs_tar

    ctx = work / "build-ctx"
    if not ctx.exists():
        make_context(work / "build-tmp", 20)
        shutil.move(str(work / "build-tmp" / "ctx"), ctx)
    busybox = work / "busybox.tar"
    busybox.write_bytes(busybox_rootfs_tar())
    for d in daemons:
        if d.docker("image", "inspect", "busybox:latest", check=False).returncode != 0:
            d.docker("import", str(busybox), "busybox:latest")
        tag = f"dybench/build:{os.getpid()}"
        run.record("build-cold", d.label, d.timed("build", "--no-cache", "-q", "-t", tag, str(ctx)))
        run.record("build-cached", d.label, d.timed("build", "-q", "-t", tag, str(ctx)))


# ---------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------


def table(results: dict[str, dict[str, list[float]]], reference: str) -> list[str]:
    rows = [("path", "daemon", "dockyard", "reference", "ratio", "target", "")]
    for path, by_label in results.items():
        base = path.split(" ")[0]
        is_time = path in TIME_PATHS or base in TIME_PATHS
        ref_label = "docker-registry" if base == "registry" else reference
        ref = by_label.get(ref_label)
        if not ref:
            continue
        unit = "s" if is_time else "MB/s"
        for label, values in by_label.items():
            if label == ref_label:
                continue
            ratios = [a / b for a, b in zip(values, ref, strict=False) if b]  # runs of either side may have failed
            ratio = statistics.median(ratios) if ratios else float("nan")
            target = TARGETS.get(path if path.startswith("build") else base, 1.0)
            met = (ratio <= target) if is_time else (ratio >= target)
            rows.append(
                (
                    path,
                    label,
                    f"{statistics.median(values):.2f} {unit}",
                    f"{statistics.median(ref):.2f} {unit}",
                    f"{ratio:.2f}",
                    ("<= " if is_time else ">= ") + f"{target:g}",
                    "ok" if met else "MISSED",
                )
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--drivers", default="vfs,overlay,btrfs")
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mb", type=int, default=200, help="size of the rootfs (the 5-layer image is a quarter)")
    parser.add_argument("--dir", default="/var/tmp")
    parser.add_argument("--keep", help="a directory to keep the generated inputs in (and reuse them)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    paths = [p for p in args.paths.split(",") if p]
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="dy-image-paths-", dir=args.dir))
    work.mkdir(parents=True, exist_ok=True)
    daemons: list[Daemon] = []
    reference = None
    try:
        print(f"generating inputs in {work} ...", file=sys.stderr)
        inputs = prepare(work, args.mb)
        load_start = os.getloadavg()
        reference = reference_daemon(work)
        daemons = [reference] + [dockyard_daemon(work, d) for d in args.drivers.split(",") if d]
        run = Run(inputs, work, daemons)
        for d in daemons:  # the images every path starts from
            for archive in (inputs.rootfs_archive, inputs.img5):
                d.docker("load", "-q", "-i", str(archive))
        for round_no in range(args.rounds):
            print(f"round {round_no + 1}/{args.rounds} (load average {os.getloadavg()[0]:.1f})", file=sys.stderr)
            for path in paths:
                if path == "registry":
                    bench_registry(work, inputs, run)
                    continue
                if path == "build":
                    bench_build(work, run, daemons)
                    continue
                shift = round_no % len(daemons)  # who goes first changes from round to round
                for d in daemons[shift:] + daemons[:shift]:
                    if path == "import":
                        run.import_(d)
                    elif path == "load":
                        run.load(d)
                    elif path == "save":
                        run.save(d)
                    elif path == "export":
                        run.export(d)
                    elif path == "commit" or (path == "diff" and "commit" not in paths):
                        run.commit_diff(d)
                    elif path == "push":
                        registry = start_reference_registry(work / "registry")  # empty: every layer is sent
                        try:
                            run.push_pull(d, registry.host)
                        finally:
                            registry.stop()
                            shutil.rmtree(work / "registry", ignore_errors=True)
        load_end = os.getloadavg()
        lines = table(run.results, "docker")
        print(
            f"\nimage data paths: {args.rounds} round(s), rootfs {inputs.sizes['rootfs'] / 1e6:.0f} MB, "
            f"5-layer image {inputs.sizes['img5'] / 1e6:.0f} MB; reference Docker "
            f"{reference.docker('version', '-f', '{{.Server.Version}}', check=False).stdout.decode().strip()} "
            f"(overlay2); load average {load_start[0]:.1f} at the start, {load_end[0]:.1f} at the end"
        )
        print(
            "ratio: dockyard / reference per round, median (times for commit, diff and build: lower is better; "
            "registry rows: dockyard's server / docker-registry)"
        )
        print("\n".join(lines))
        if args.json:
            Path(args.json).write_text(json.dumps({"results": run.results, "load": [load_start, load_end]}, indent=1))
    finally:
        for d in daemons[1:]:
            try:
                stop_dockyard(d)
            except Exception as exc:  # noqa: BLE001 - stop the others all the same
                print(f"stopping {d.label}: {exc}", file=sys.stderr)
        if reference is not None:
            for image in (
                reference.docker("images", "--format", "{{.Repository}}:{{.Tag}}", check=False).stdout.decode().split()
            ):
                if image.startswith("dybench/") or "/dybench/" in image:
                    reference.docker("rmi", "-f", image, check=False)
            for name in reference.docker("ps", "-aq", "--filter", "name=dybench-", check=False).stdout.decode().split():
                reference.docker("rm", "-f", name, check=False)
            reference.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
