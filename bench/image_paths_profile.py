#!/usr/bin/env python3
"""Where the CPU goes on each image data path: py-spy (native frames) on a 200 MB case.

    sudo python -m bench.image_paths_profile [--paths import,load,...] [--driver vfs] [--dir /var/tmp]
                                             [--mb 200] [--keep]

Each path runs in a child process against an engine of its own (the services the
daemon's routes call, without HTTP): the set-up first (unprofiled), then py-spy is
attached to the child for the path alone.  Samples are classified by the innermost
frame that says what the CPU was doing, and printed as shares per path:

decompress / compress / hash
    zlib, ISA-L, zlib-ng, zstd and OpenSSL's SHA-256 (C, outside the GIL when called on
    large buffers);
tar read / tar write
    parsing and building tar headers (``tarfile`` or dockyard's reader and writer);
per-file syscalls
    open, mkdir, lstat, chown, chmod, utime, xattrs, link, unlink ... (what an applier or a
    tree walk pays per entry);
bulk I/O
    read, write, sendfile, copy_file_range, splice of content;
copies
    memcpy and the Python objects that wrap it (bytes joins, bytearray growth, slices);
network / event loop
    sockets, HTTP parsing, asyncio;
python
    everything else, with the functions that weigh most.

Paths: import (a plain rootfs tar), load (a docker-archive of it), save, export (a
container's tree), commit (a container layer holding the 200 MB tree), diff (its
changes), push and pull (through ``dockyard registry`` on loopback).  Wall time is
printed too, but the machine is shared: the shares are CPU samples and comparable
between runs, the seconds are not.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PATHS = ("import", "load", "save", "export", "commit", "diff", "push", "pull")
PY_SPY = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")

#: (category, substrings of a frame) in the order they are tried, innermost frame first
CATEGORIES = [
    ("decompress", ("inflate", "decompress", "ZSTD_decompress", "ZSTD_DCtx", "HUF_decompress", "_read_gzip")),
    (
        "compress",
        (
            "deflate",
            "ZSTD_compress",
            "isal_deflate",
            "compressobj",
            "HUF_compress",
            "_write_gzip",
            "_ParallelCompress",
            "igzip_threaded",
        ),
    ),
    ("hash", ("SHA256", "sha256", "SHA512", "EVP_hash", "EVP_Digest", "_hashlib", "sha256_block")),
    (
        "copies",
        (
            "memcpy",
            "memmove",
            "bytes_concat",
            "_PyBytes_Join",
            "bytearray_",
            "PyByteArray",
            "bytes_subscript",
            "memory_subscript",
            "_PyBytes_Resize",
            "stringlib_bytes_join",
        ),
    ),
    (
        "bulk I/O",
        (
            "os_write",
            "os_read",
            "os_pread",
            "os_pwrite",
            "os_sendfile",
            "os_copy_file_range",
            "os_splice",
            "_io_FileIO_read",
            "_io_FileIO_write",
            "_bufferedreader_raw_read",
            "_bufferedwriter_raw_write",
            "_io__Buffered_read",
            "_io__Buffered_write",
            "fileio_",
            "_io_FileIO_readinto",
            "copyfileobj",
        ),
    ),
    (
        "per-file syscalls",
        (
            "os_open",
            "os_mkdir",
            "os_lstat",
            "os_stat",
            "posix_do_stat",
            "os_chown",
            "os_fchown",
            "os_lchown",
            "os_chmod",
            "os_fchmod",
            "os_utime",
            "os_setxattr",
            "os_getxattr",
            "os_listxattr",
            "os_symlink",
            "os_link",
            "os_unlink",
            "os_rename",
            "os_replace",
            "os_readlink",
            "os_close",
            "os_ftruncate",
            "os_lseek",
            "os_mknod",
            "os_scandir",
            "ScandirIterator",
            "DirEntry_",
            "os_fstat",
            "os_rmdir",
            "os_posix_fadvise",
            "os_fsync",
            "os_fdatasync",
            "os_futimes",
            "os_mkfifo",
        ),
    ),
    (
        "network / event loop",
        ("sock_", "socket", "selector", "asyncio", "h11", "httpx", "httpcore", "aiohttp", "ssl", "epoll"),
    ),
]
#: frames of a thread that waits, not works
IDLE = (
    "time.sleep",
    "sleep (",
    "Condition.wait",
    "Queue.get",
    "_wait_for_tstate_lock",
    "Event.wait",
    "pthread_cond_wait",
    "sem_wait",
    "do_futex_wait",
    "__futex_abstimed_wait",
)
#: libc entry points (what py-spy names of libc) by category
LIBC = {
    "bulk I/O": (
        "write",
        "read",
        "pread64",
        "pwrite64",
        "__libc_pread",
        "__libc_write",
        "__libc_read",
        "sendfile",
        "sendfile64",
        "copy_file_range",
        "splice",
        "__GI___libc_write",
        "__GI___libc_read",
    ),
    "per-file syscalls": (
        "open64",
        "__open64",
        "openat",
        "openat64",
        "__libc_open64",
        "mkdir",
        "lstat64",
        "__lstat64",
        "fstatat64",
        "__fstatat64",
        "stat64",
        "fstat64",
        "chown",
        "fchown",
        "lchown",
        "chmod",
        "fchmod",
        "utimensat",
        "futimens",
        "close",
        "__close",
        "__libc_close",
        "symlink",
        "link",
        "linkat",
        "unlink",
        "rename",
        "fsetxattr",
        "lsetxattr",
        "setxattr",
        "llistxattr",
        "listxattr",
        "lgetxattr",
        "flistxattr",
        "fgetxattr",
        "ftruncate64",
        "ftruncate",
        "lseek64",
        "lseek",
        "__getdents64",
        "getdents64",
        "fdopendir",
        "opendir",
        "readdir64",
        "closedir",
        "readlink",
        "mknod",
        "__xmknod",
        "mknodat",
        "mkfifo",
        "rmdir",
        "statx",
        "posix_fadvise",
    ),
    "copies": (
        "malloc",
        "free",
        "realloc",
        "cfree",
        "__memmove_avx_unaligned_erms",
        "__memcpy_avx_unaligned_erms",
        "memcpy",
        "memmove",
        "_int_malloc",
        "_int_free",
    ),
}
_LIBC = {f"{name} (libc.so.6)": category for category, names in LIBC.items() for name in names}
#: Python frames (function, file) that are tar work, by the file or the function
TAR_WRITE = (
    "tobuf",
    "_create_header",
    "_create_pax_generic_header",
    "create_pax_header",
    "itn",
    "stn",
    "_create_payload",
    "addfile",
    "_TarWriter",
    "ustar_header",
    "pax_header",
    "gettarinfo",
)
TAR_READ_FILES = ("tarfile.py", "tarstream.py")


# ---------------------------------------------------------------------------
# the child: set up, then run one path under py-spy
# ---------------------------------------------------------------------------


def child(path: str, driver: str, work: Path, out: Path) -> None:
    from dockyard import archive, docker_archive
    from dockyard.engine import Engine
    from dockyard.models.container import ContainerConfig

    data = work / f"data-{path}"
    shutil.rmtree(data, ignore_errors=True)
    engine = Engine.open(
        data, storage=driver, network="none", options={"distribution": {"insecure-registries": "127.0.0.1"}}
    )
    images = engine.images
    rootfs = work / "rootfs.tar"
    registry = (work / "registry.host").read_text().strip() if (work / "registry.host").exists() else ""
    name = f"{registry}/bench/img:v1" if registry else "bench/img:v1"

    def imported() -> str:
        with open(rootfs, "rb") as f:
            return images.import_tarball(f, "bench/img", "v1")

    def container_layer(image_id: str, fill: bool) -> str:
        layer = "c" * 64
        engine.storage.create_layer(layer, images.top_layer(image_id))
        if fill:
            root = engine.storage.mount(layer)
            try:
                (root / "new").mkdir()
                with open(rootfs, "rb") as f:
                    archive.apply_layer(root / "new", f)
            finally:
                engine.storage.unmount(layer)
        return layer

    run = None
    if path == "import":
        run = imported
    elif path == "load":
        source = work / "image.tar"
        run = lambda: docker_archive.load(images, open(source, "rb"))  # noqa: E731
    elif path == "save":
        imported()
        run = lambda: docker_archive.save(images, ["bench/img:v1"], open(os.devnull, "wb"))  # noqa: E731
    elif path == "export":
        layer = container_layer(imported(), fill=False)

        def run() -> None:
            root = engine.storage.mount(layer)
            try:
                with archive.export_tree(root) as stream:
                    while stream.read(1 << 20):
                        pass
            finally:
                engine.storage.unmount(layer)
    elif path in ("commit", "diff"):
        base = imported()
        layer = container_layer(base, fill=True)
        if path == "commit":
            run = lambda: images.commit(layer, base, ContainerConfig(), "bench", "bench/commit", "v1")  # noqa: E731
        else:
            run = lambda: engine.storage.changes(layer)  # noqa: E731
    elif path == "push":
        imported()
        images.tag("bench/img:v1", name.rsplit(":", 1)[0], "v1")
        from dockyard.transfer import push_image

        run = lambda: push_image(engine, name.rsplit(":", 1)[0], ["v1"], {}, lambda m: None)  # noqa: E731
    elif path == "pull":
        from dockyard.transfer import pull_image

        run = lambda: pull_image(engine, name, {}, lambda m: None)  # noqa: E731
    spy = subprocess.Popen(
        [PY_SPY, "record", "--native", "-r", "150", "-f", "raw", "-o", str(out), "--pid", str(os.getpid())],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # py-spy attaches
    start, cpu = time.perf_counter(), time.process_time()
    try:
        run()
    finally:
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        spy.send_signal(signal.SIGINT)
        spy.wait(60)
        engine.close()
        shutil.rmtree(data, ignore_errors=True)
    print(json.dumps({"wall": wall, "cpu": cpu}))


# ---------------------------------------------------------------------------
# the parent: inputs, registry, children, report
# ---------------------------------------------------------------------------


def classify(stack: list[str]) -> tuple[str, str]:
    """(category, the innermost Python frame) of one sample, stack outermost first."""
    python = next((f for f in reversed(stack) if ".py:" in f), "?")
    for frame in reversed(stack):
        if ".py:" in frame:  # the innermost Python frame: nothing native below it said what it was
            name = frame.split(" (")[0]
            if name in ("copyfileobj", "_Stream.write", "_Stream.__write", "_Stream.read", "_Stream.__read"):
                return "bulk I/O", python  # tarfile moving content
            if any(mark in frame for mark in TAR_WRITE):
                return "tar write", python
            if any(f"/{f}:" in frame or f"({f}:" in frame for f in TAR_READ_FILES):
                return ("tar write" if name in TAR_WRITE else "tar read"), python
            return "python", python
        if frame in _LIBC:
            return _LIBC[frame], python
        for category, marks in CATEGORIES:
            if any(m in frame for m in marks):
                return category, python
    return "python", python


def report(raw: Path) -> tuple[dict[str, float], list[tuple[str, float]]]:
    shares: collections.Counter = collections.Counter()
    pyframes: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack_text, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        stack = stack_text.split(";")
        if any(idle in f for f in stack[-4:] for idle in IDLE):
            continue  # a thread waiting (py-spy samples threads blocked on a lock as running)
        category, frame = classify(stack)
        shares[category] += n
        if category == "python":
            pyframes[frame.split(" (")[0] + " (" + frame.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1] + ")"] += n
        total += n
    total = total or 1
    return {k: 100 * v / total for k, v in shares.most_common()}, [
        (k, 100 * v / total) for k, v in pyframes.most_common(4)
    ]


def prepare(work: Path, mb: int) -> None:
    from bench.storage_drivers import make_tree
    from dockyard import archive

    rootfs = work / "rootfs.tar"
    if not rootfs.exists():
        tree = work / "tree"
        shutil.rmtree(tree, ignore_errors=True)
        tree.mkdir()
        print(f"generating a {mb} MB tree ...", file=sys.stderr)
        make_tree(tree, mb)
        with open(rootfs, "wb") as out, archive.export_tree(tree) as stream:
            shutil.copyfileobj(stream, out, 1 << 20)
        shutil.rmtree(tree)
    image = work / "image.tar"
    if not image.exists():
        from bench.image_paths import docker_archive_file

        docker_archive_file([rootfs], image, "bench/load:v1")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--driver", default="vfs")
    parser.add_argument("--dir", default="/var/tmp")
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--keep", help="a work directory to keep (and reuse) the generated inputs in")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.driver, Path(args.dir), Path(args.out))
        return 0
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="dy-profile-", dir=args.dir))
    work.mkdir(parents=True, exist_ok=True)
    registry = None
    try:
        prepare(work, args.mb)
        paths = [p for p in args.paths.split(",") if p]
        if "push" in paths or "pull" in paths:
            from tests.helpers.registry import start_registry

            shutil.rmtree(work / "registry", ignore_errors=True)
            registry = start_registry(work / "registry")
            (work / "registry.host").write_text(registry.host)
        print(
            f"load average {os.getloadavg()[0]:.1f}; driver {args.driver}; "
            f"input {(work / 'rootfs.tar').stat().st_size / 1e6:.0f} MB",
            file=sys.stderr,
        )
        for path in paths:
            out = work / f"{path}.raw"
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.image_paths_profile",
                    "--child",
                    path,
                    "--driver",
                    args.driver,
                    "--dir",
                    str(work),
                    "--out",
                    str(out),
                ],
                cwd=REPO,
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                print(f"{path}: failed\n{done.stderr[-3000:]}", file=sys.stderr)
                continue
            times = json.loads(done.stdout.strip().splitlines()[-1])
            shares, frames = report(out)
            text = ", ".join(f"{k} {v:.0f}%" for k, v in shares.items() if v >= 0.5)
            top = "; ".join(f"{k} {v:.0f}%" for k, v in frames)
            print(f"{path:7s} wall {times['wall']:6.1f}s cpu {times['cpu']:6.1f}s | {text}")
            if top:
                print(f"        python: {top}")
    finally:
        if registry is not None:
            registry.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
