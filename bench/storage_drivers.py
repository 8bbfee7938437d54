#!/usr/bin/env python3
"""Storage drivers side by side, through the core's façade (as the daemon calls them).

    sudo /opt/dy-venv/bin/python bench/storage_drivers.py [--drivers vfs,overlay,btrfs] [--runs 3]
                                                         [--size-mb 200] [--dir /var/tmp]

Per driver (median of ``--runs``, drivers interleaved so they share the machine's mood):

import MB/s
    a generated ~200 MB rootfs layer tar (files 64 B - 64 KiB log-uniform, half random and
    half text, directories, symlinks, hard links) applied to a new base layer; tar bytes / s,
    page cache not flushed (Docker's figure has no sync either).
commit 50 MB ms
    a container layer on the image, 50 MB written into it (one 40 MB and ten 1 MB files),
    then ``diff()`` read to the end: the tar ``docker commit`` stores.
export MB/s
    ``docker export`` of that container: the whole merged tree as a tar (tar bytes / s).
diff 1000 ms
    ``changes()`` (``docker diff``) of a fresh container in which 1000 files were appended to.
create+mount ms
    a container layer created on the image and mounted (median of up to 20 pairs; at least
    3, and no more once 5 s are spent: a vfs pair copies the whole image).

Everything lives in a temporary directory under ``--dir`` (btrfs makes its loopback image
there), removed at the end with every mount.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from dockyard import archive
from dockyard.drivers import StorageDriver, available, load_drivers

DOCKER_OVERLAY2 = {"import": "44", "commit": "384", "export": "174", "diff": "30", "create": "-"}
WORDS = [
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
    "et",
    "dolore",
    "magna",
    "aliqua",
    "usr",
    "lib",
    "bin",
    "share",
    "include",
    "local",
    "etc",
    "config",
]


def make_tree(root: Path, size_mb: int, seed: int = 1) -> list[str]:
    """A rootfs-like tree of about ``size_mb`` MB; returns its regular files' relative paths."""
    rnd = random.Random(seed)
    text = " ".join(rnd.choice(WORDS) for _ in range(40_000)).encode()
    lo, hi = math.log(64), math.log(64 << 10)
    mean = ((64 << 10) - 64) / (hi - lo)
    count = int(size_mb * 1e6 / mean)
    dirs = [Path("")]
    for i in range(max(50, count // 20)):
        d = rnd.choice(dirs) / f"d{i}"
        (root / d).mkdir()
        dirs.append(d)
    files: list[str] = []
    for i in range(count):
        rel = rnd.choice(dirs) / f"f{i}{'.txt' if i % 2 else '.bin'}"
        size = int(math.exp(rnd.uniform(lo, hi)))
        if i % 2:
            start = rnd.randrange(len(text) - size) if size < len(text) else 0
            data = text[start : start + size]
        else:
            data = os.urandom(size)
        (root / rel).write_bytes(data)
        if i % 97 == 0:
            os.chmod(root / rel, 0o755)
        files.append(str(rel))
    for i in range(count // 70):
        os.link(root / rnd.choice(files), root / rnd.choice(dirs) / f"h{i}")
    for i in range(count // 40):
        os.symlink(rnd.choice(["/etc/passwd", "../lib", f"/{rnd.choice(files)}"]), root / rnd.choice(dirs) / f"s{i}")
    return files


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def drain(stream) -> int:
    total = 0
    try:
        while chunk := stream.read(1 << 20):
            total += len(chunk)
    finally:
        stream.close()
    return total


class Bench:
    def __init__(self, name: str, data_root: Path, tar: Path, files: list[str]) -> None:
        self.name = name
        self.loaded = load_drivers(data_root, {"storage": name})
        self.storage = StorageDriver(self.loaded.pm)
        self.tar, self.files = tar, files
        self.n = 0
        self.results: dict[str, list[float]] = {k: [] for k in ("import", "commit", "export", "diff", "create")}

    def lid(self, tag: str) -> str:
        import hashlib

        self.n += 1
        return hashlib.sha256(f"{self.name}-{tag}-{self.n}".encode()).hexdigest()

    def run_once(self) -> None:
        s = self.storage
        image = self.lid("image")
        s.create_layer(image, None)
        size = self.tar.stat().st_size
        with open(self.tar, "rb") as f:
            self.results["import"].append(size / 1e6 / timed(lambda: s.apply_diff(image, f)))

        box = self.lid("commit")
        s.create_layer(box, image)
        root = s.mount(box)
        try:
            (root / "big").write_bytes(os.urandom(40 << 20))
            for i in range(10):
                (root / f"d0/w{i}").write_bytes(os.urandom(1 << 20))
            self.results["commit"].append(1000 * timed(lambda: drain(s.diff(box))))
            exported = 0

            def export() -> None:
                nonlocal exported
                exported = drain(archive.export_tree(root))

            seconds = timed(export)
            self.results["export"].append(exported / 1e6 / seconds)
        finally:
            s.unmount(box)

        touched = self.lid("diff")
        s.create_layer(touched, image)
        with_mount = s.mount(touched)
        try:
            for rel in random.Random(self.n).sample(self.files, 1000):
                with open(with_mount / rel, "ab") as f:
                    f.write(b"x")
        finally:
            s.unmount(touched)
        found: list = []
        self.results["diff"].append(1000 * timed(lambda: found.extend(s.changes(touched))))
        assert sum(1 for c in found if c.kind == 0) >= 1000, f"{self.name}: only {len(found)} changes"

        pairs: list[float] = []
        spent = time.monotonic()
        while len(pairs) < 20 and (len(pairs) < 3 or time.monotonic() - spent < 5):  # vfs copies 200 MB a pair
            c = self.lid("c")
            pairs.append(1000 * timed(lambda c=c: (s.create_layer(c, image), s.mount(c))))
            s.unmount(c)
            s.remove_layer(c)
        self.results["create"].append(statistics.median(pairs))
        for layer in (touched, box, image):
            s.remove_layer(layer)

    def close(self) -> None:
        self.storage.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--drivers", default="vfs,overlay,btrfs")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--dir", default="/var/tmp")
    args = parser.parse_args()
    # SIGTERM (and SIGINT, which a shell's background job ignores) still unmount and clean up
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    usable = available("storage")
    names = [n for n in args.drivers.split(",") if n]
    for n in names:
        if usable.get(n, "not installed") is not None:
            print(f"skipping {n}: {usable.get(n, 'not installed')}", file=sys.stderr)
    names = [n for n in names if usable.get(n, "x") is None]
    top = Path(tempfile.mkdtemp(prefix="dy-storage-bench-", dir=args.dir))
    benches: list[Bench] = []
    try:
        tree = top / "tree"
        tree.mkdir()
        print(f"generating a {args.size_mb} MB tree in {top} ...", file=sys.stderr)
        files = make_tree(tree, args.size_mb)
        tar = top / "rootfs.tar"
        with open(tar, "wb") as out:
            stream = archive.export_tree(tree)
            try:
                shutil.copyfileobj(stream, out, 1 << 20)
            finally:
                stream.close()
        shutil.rmtree(tree)
        print(f"layer tar: {tar.stat().st_size / 1e6:.1f} MB, {len(files)} files", file=sys.stderr)
        benches = [Bench(n, top / f"data-{n}", tar, files) for n in names]
        for run in range(args.runs):
            for b in benches:
                print(f"run {run + 1}/{args.runs}: {b.name}", file=sys.stderr)
                b.run_once()
        header = ("driver", "import MB/s", "commit 50MB ms", "export MB/s", "diff 1000 ms", "create+mount ms")
        rows = [
            [b.name]
            + [
                f"{statistics.median(b.results[k]):.{0 if k in ('import', 'export', 'commit') else 1}f}"
                for k in ("import", "commit", "export", "diff", "create")
            ]
            for b in benches
        ]
        rows.append(
            ["docker overlay2 (issue 3)"]
            + [DOCKER_OVERLAY2[k] for k in ("import", "commit", "export", "diff", "create")]
        )
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
        print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
        for r in rows:
            print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))
        print(f"(median of {args.runs} runs; create+mount: median of 3-20 per run; peak RSS {_max_rss_mb():.0f} MB)")
    finally:
        for b in benches:
            try:
                b.close()
            except Exception as exc:  # noqa: BLE001 - still remove the rest
                print(f"cleanup of {b.name}: {exc}", file=sys.stderr)
        shutil.rmtree(top, ignore_errors=True)
    return 0


def _max_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    sys.exit(main())
