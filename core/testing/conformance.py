"""Conformance suite for storage drivers (a pytest plugin, loaded on request).

Use it from a thin test module::

    pytest_plugins = ["dockyard.testing.conformance"]
    from dockyard.testing.conformance import StorageDriverSuite

    class TestMyDriver(StorageDriverSuite):
        driver_name = "mydriver"          # built from the dockyard.storage entry point

or override the ``driver_factory`` fixture to build the driver yourself; it
returns ``(driver, cleanup)`` and may use the ``storage_root`` fixture (a fresh
``<tmp>/root``; ``<tmp>/work`` is scratch space outside it).  Override
:meth:`StorageDriverSuite.reopen` if the driver is not built as
``Driver(storage_root, driver_options)``.

Command line (declared by :mod:`dockyard.testing.plugin`, which pytest loads by
itself through the ``pytest11`` entry point):

``--dockyard-storage-driver NAME``
    run every suite class against the driver with that entry-point name.
``--dockyard-require-capability NAME``
    fail instead of skipping when the driver lacks capability NAME (``all``).

Drivers declare what they can store as ``capabilities`` (a :class:`Capabilities`
or a mapping of its fields) on the driver class.  A test needing a missing
capability is skipped with a reason naming it.  Tests go through the core's
:class:`~dockyard.drivers.StorageDriver` façade with the naive-diff fallback
registered, exactly as the daemon calls drivers.  Each test gets its own
root; cleanup runs even on failure, and a failing test prints the tree.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import shutil
import signal
import stat
import tarfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import pytest

from dockyard import archive
from dockyard.drivers import StorageDriver, driver_class, make_plugin_manager
from dockyard.errors import Conflict, InvalidParameter, NotFound
from dockyard.models.capabilities import StorageCapabilities as Capabilities
from dockyard.storage_fallbacks import NaiveDiff

__all__ = ["Capabilities", "StorageDriverSuite", "make_tar", "snapshot", "write_tree"]

GiB = 1 << 30


# ---------------------------------------------------------------------------
# plugin hooks
# ---------------------------------------------------------------------------

_REPORTS = pytest.StashKey[dict]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


# ---------------------------------------------------------------------------
# helpers (public: third-party suites may use them)
# ---------------------------------------------------------------------------


def make_tar(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    """A PAX tar of ``(TarInfo, data)`` pairs, written by plain ``tarfile``."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def entry(
    name: str,
    kind: bytes = tarfile.REGTYPE,
    mode: int = 0o644,
    uid: int = 0,
    gid: int = 0,
    mtime: int = 1_600_000_000,
    linkname: str = "",
    xattrs: dict[str, bytes] | None = None,
    dev: tuple[int, int] = (0, 0),
) -> tarfile.TarInfo:
    """A tar header with numeric owners and no user/group names."""
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.mtime = kind, mode, uid, gid, mtime
    info.uname = info.gname = ""
    info.linkname = linkname
    info.devmajor, info.devminor = dev
    for key, value in (xattrs or {}).items():
        info.pax_headers["SCHILY.xattr." + key] = value.decode("utf-8", "surrogateescape")
    return info


def snapshot(root: Path, content: bool = True) -> dict[str, tuple]:
    """Everything comparable about a tree: type, mode, owner, size, mtime (ns),
    symlink target, rdev, xattrs, content digest, hard-link group."""
    result: dict[str, tuple] = {}
    groups: dict[tuple[int, int], str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            extra: Any = None
            if stat.S_ISLNK(st.st_mode):
                extra = os.readlink(path)
            elif stat.S_ISREG(st.st_mode) and content:
                extra = _digest(path)
            link = None
            if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
                link = groups.setdefault((st.st_dev, st.st_ino), rel)
            mtime = None if stat.S_ISDIR(st.st_mode) else st.st_mtime_ns
            result[rel] = (
                st.st_mode,
                st.st_uid,
                st.st_gid,
                0 if stat.S_ISDIR(st.st_mode) else st.st_size,
                mtime,
                st.st_rdev,
                extra,
                link,
                tuple(sorted(archive._xattrs(path).items())),
            )
    return result


def _digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def write_tree(root: Path, seed: int, files: int = 60, caps: Capabilities | None = None) -> None:
    """A seeded tree: nested dirs, files of varied size, symlinks, hard links,
    owners, modes, unicode names and (per ``caps``) xattrs and special files.
    Every mtime is fixed, so the same seed always gives the same tar."""
    caps = caps or Capabilities()
    rnd = random.Random(seed)
    dirs = [root]
    for i in range(max(3, files // 8)):
        d = rnd.choice(dirs) / f"d{i}-{'é' if i % 3 == 0 else 'x'}"
        d.mkdir()
        dirs.append(d)
    made: list[Path] = []
    for i in range(files):
        path = rnd.choice(dirs) / (f"f{i}" + ("-" + "n" * 120 if i % 17 == 0 else ""))
        path.write_bytes(rnd.randbytes(rnd.choice([0, 1, 100, 511, 512, 4096, 70_000])))
        os.chmod(path, rnd.choice([0o644, 0o600, 0o755, 0o4755 if caps.ownership else 0o700]))
        if caps.ownership and i % 5 == 0:
            os.chown(path, 1000 + i, 2000 + i)
        if caps.xattrs and i % 7 == 0:
            os.setxattr(path, "user.seed", f"{seed}-{i}".encode())
        made.append(path)
    for i in range(files // 6):
        link = rnd.choice(dirs) / f"s{i}"
        os.symlink(rnd.choice(["/etc/passwd", "../f0", "nowhere", str(rnd.choice(made).relative_to(root))]), link)
    if caps.hardlinks:
        for i in range(files // 10):
            os.link(rnd.choice(made), rnd.choice(dirs) / f"h{i}")
    if caps.fifos:
        os.mkfifo(root / "fifo")
    if caps.device_nodes:
        os.mknod(root / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    stamp = 1_500_000_000
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in dirnames + filenames:
            stamp += 1
            os.utime(os.path.join(dirpath, name), ns=(stamp * 10**9, stamp * 10**9), follow_symlinks=False)


def facade(driver: Any) -> StorageDriver:
    """The core façade over ``driver`` plus the naive-diff fallback, as the daemon builds it."""
    pm = make_plugin_manager()
    pm.register(driver, name="storage:under-test")
    storage = StorageDriver(pm)
    pm.register(NaiveDiff(storage), name="storage:naive-diff")
    pm.check_pending()
    return storage


@contextmanager
def mounted(storage: StorageDriver, layer_id: str) -> Iterator[Path]:
    path = storage.mount(layer_id)
    try:
        yield path
    finally:
        storage.unmount(layer_id)


def read_all(stream: Any) -> bytes:
    try:
        return stream.read()
    finally:
        stream.close()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def dump_tree(root: Path, limit: int = 300) -> str:
    lines = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            target = f" -> {os.readlink(path)}" if stat.S_ISLNK(st.st_mode) else ""
            lines.append(
                f"{stat.filemode(st.st_mode)} {st.st_uid}:{st.st_gid} {st.st_size:>10} "
                f"{os.path.relpath(path, root)}{target}"
            )
            if len(lines) >= limit:
                return "\n".join(lines + ["..."])
    return "\n".join(lines)


def layer_id(n: int | str) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


# ---------------------------------------------------------------------------
# the suite
# ---------------------------------------------------------------------------


class StorageDriverSuite:
    """Storage driver contract tests; subclass once per driver."""

    #: entry-point name in ``dockyard.storage`` (``--dockyard-storage-driver`` wins)
    driver_name: ClassVar[str | None] = None
    driver_options: ClassVar[dict] = {}

    # -- fixtures ------------------------------------------------------------

    @pytest.fixture
    def storage_root(self, tmp_path: Path) -> Path:
        (tmp_path / "work").mkdir()
        root = tmp_path / "root"
        root.mkdir()
        return root

    @pytest.fixture
    def work(self, storage_root: Path) -> Path:
        return storage_root.parent / "work"

    @pytest.fixture
    def driver_factory(self, request: pytest.FixtureRequest, storage_root: Path) -> tuple[Any, Callable[[], None]]:
        """Build the driver; override to build it another way.  Returns ``(driver, cleanup)``."""
        driver = self.open_driver(request.config, storage_root)
        return driver, lambda: driver.storage_cleanup()

    def open_driver(self, config: pytest.Config, root: Path) -> Any:
        name = config.getoption("dockyard_storage_driver", default=None) or self.driver_name
        if not name:
            pytest.fail(
                f"{type(self).__name__}: set driver_name, pass --dockyard-storage-driver "
                "or override the driver_factory fixture"
            )
        return driver_class("storage", name)(root, dict(self.driver_options))

    def reopen(self, config: pytest.Config, driver: Any, root: Path) -> Any:
        """A new driver instance on the same root, as after a daemon restart."""
        return self.open_driver(config, root)

    @pytest.fixture
    def driver(self, request: pytest.FixtureRequest, driver_factory: tuple) -> Iterator[Any]:
        instance, cleanup = driver_factory
        try:
            yield instance
        finally:
            try:
                cleanup()
            finally:
                reports = request.node.stash.get(_REPORTS, {})
                if any(r.failed for r in reports.values()):
                    root = request.getfixturevalue("storage_root")
                    print(f"\n--- tree under {root} ---\n{dump_tree(root)}")

    @pytest.fixture
    def storage(self, driver: Any) -> StorageDriver:
        return facade(driver)

    @pytest.fixture
    def caps(self, driver: Any) -> Capabilities:
        declared = getattr(driver, "capabilities", None)
        if isinstance(declared, Capabilities):
            return declared
        return Capabilities.model_validate(dict(declared or {}))

    @pytest.fixture
    def need(self, request: pytest.FixtureRequest, caps: Capabilities) -> Callable[..., None]:
        """``need("xattrs", ...)``: skip (or fail, if required) unless the driver has them."""
        required = set(request.config.getoption("dockyard_require_capability", default=[]) or [])

        def check(*names: str) -> None:
            for name in names:
                if not getattr(caps, name):
                    message = f"storage driver lacks capability {name!r}"
                    if name in required or "all" in required:
                        pytest.fail(message + " (required by --dockyard-require-capability)")
                    pytest.skip(message)
            if {"device_nodes", "ownership"} & set(names) and os.geteuid() != 0:
                pytest.skip("requires root (mknod / chown)")

        return check

    # -- helpers -------------------------------------------------------------

    @staticmethod
    def layer_from_tar(storage: StorageDriver, lid: str, data: bytes, parent: str | None = None) -> int:
        storage.create_layer(lid, parent)
        return storage.apply_diff(lid, io.BytesIO(data))

    # -- lifecycle -----------------------------------------------------------

    def test_create_exists_remove(self, storage: StorageDriver) -> None:
        base = layer_id("base")
        assert not storage.exists(base)
        storage.create_layer(base, None)
        assert storage.exists(base)
        assert base in storage.layers()
        with mounted(storage, base) as path:
            assert path.is_dir() and list(path.iterdir()) == []
        storage.remove_layer(base)
        assert not storage.exists(base)
        assert base not in storage.layers()

    def test_create_errors(self, storage: StorageDriver) -> None:
        base = layer_id("base")
        storage.create_layer(base, None)
        with pytest.raises(Conflict):
            storage.create_layer(base, None)
        with pytest.raises(NotFound):
            storage.create_layer(layer_id("orphan"), layer_id("missing"))
        assert not storage.exists(layer_id("orphan"))
        with pytest.raises(NotFound):
            storage.remove_layer(layer_id("missing"))
        with pytest.raises(NotFound):
            storage.mount(layer_id("missing"))
        assert storage.exists(layer_id("missing")) is False

    def test_remove_refuses_parent_and_mounted(self, storage: StorageDriver) -> None:
        parent, child = layer_id("p"), layer_id("c")
        storage.create_layer(parent, None)
        storage.create_layer(child, parent)
        with pytest.raises(Conflict):
            storage.remove_layer(parent)
        storage.mount(child)
        with pytest.raises(Conflict):
            storage.remove_layer(child)
        storage.unmount(child)
        storage.remove_layer(child)
        storage.remove_layer(parent)
        assert storage.layers() == []

    def test_mount_refcount(self, storage: StorageDriver) -> None:
        lid = layer_id("m")
        storage.create_layer(lid, None)
        assert storage.path(lid) is None
        first = storage.mount(lid)
        second = storage.mount(lid)
        assert first == second == storage.path(lid)
        storage.unmount(lid)
        assert storage.path(lid) == first, "still mounted once"
        (first / "kept").write_text("x")
        storage.unmount(lid)
        assert storage.path(lid) is None
        storage.unmount(lid)  # not mounted: a no-op
        with mounted(storage, lid) as path:
            assert (path / "kept").read_text() == "x"
        storage.remove_layer(lid)

    def test_cleanup_unmounts_and_keeps_layers(self, storage: StorageDriver) -> None:
        lid = layer_id("c")
        storage.create_layer(lid, None)
        storage.mount(lid)
        storage.mount(lid)
        storage.cleanup()
        storage.cleanup()
        assert storage.path(lid) is None
        assert storage.exists(lid)
        storage.remove_layer(lid)

    def test_status(self, storage: StorageDriver) -> None:
        status = storage.status()
        assert status and all(isinstance(k, str) and isinstance(v, str) for k, v in status)

    # -- layering ------------------------------------------------------------

    def test_parent_chain_25_deep(self, storage: StorageDriver) -> None:
        """Layer i adds /chain/<i> and rewrites /chain/top; each sees only its ancestors."""
        parent = None
        ids = []
        for i in range(25):
            lid = layer_id(f"chain{i}")
            data = make_tar(
                [
                    (entry("chain", tarfile.DIRTYPE, 0o755), None),
                    (entry(f"chain/{i}"), str(i).encode()),
                    (entry("chain/top", mtime=1_600_000_000 + i), str(i).encode()),
                ]
            )
            self.layer_from_tar(storage, lid, data, parent)
            ids.append(lid)
            parent = lid
        for i in (0, 12, 24):
            with mounted(storage, ids[i]) as path:
                assert sorted(os.listdir(path / "chain"), key=lambda n: (n == "top", int(n) if n != "top" else 0)) == [
                    str(k) for k in range(i + 1)
                ] + ["top"]
                assert (path / "chain/top").read_text() == str(i)
        assert {c.path for c in storage.changes(ids[24])} == {"/chain", "/chain/24", "/chain/top"}
        for lid in reversed(ids):
            storage.remove_layer(lid)

    def test_writes_stay_in_their_layer(self, storage: StorageDriver) -> None:
        """
        P: /shared (file), /dir/inner          A, B: children of P
        writing, deleting and adding in A is seen neither in P nor in B.
        """
        p, a, b = layer_id("P"), layer_id("A"), layer_id("B")
        self.layer_from_tar(
            storage,
            p,
            make_tar(
                [(entry("shared"), b"p"), (entry("dir", tarfile.DIRTYPE, 0o755), None), (entry("dir/inner"), b"inner")]
            ),
        )
        storage.create_layer(a, p)
        storage.create_layer(b, p)
        with mounted(storage, p) as pp, mounted(storage, b) as bp:
            before_p, before_b = snapshot(pp), snapshot(bp)
        with mounted(storage, a) as ap:
            (ap / "shared").write_bytes(b"changed in A")
            (ap / "dir/inner").unlink()
            (ap / "new").write_text("only in A")
            os.chmod(ap / "dir", 0o700)
        with mounted(storage, p) as pp, mounted(storage, b) as bp:
            assert snapshot(pp) == before_p
            assert snapshot(bp) == before_b
        with mounted(storage, a) as ap:
            assert (ap / "shared").read_bytes() == b"changed in A"
            assert not (ap / "dir/inner").exists()

    def test_whiteouts_and_opaque_dirs(self, storage: StorageDriver) -> None:
        """
        parent:  /a/{gone,kept}  /b/sub/deep  /c  /d/{old,x}  /e
        child:   a/.wh.gone   .wh.b   .wh.c   d/ + d/.wh..wh..opq + d/new   nowhere/.wh.x
        -> /a/kept, /d/new, /e remain; in the grandchild too.
        """
        parent, child, grand = layer_id("wp"), layer_id("wc"), layer_id("wg")
        d = lambda n: (entry(n, tarfile.DIRTYPE, 0o755), None)  # noqa: E731
        self.layer_from_tar(
            storage,
            parent,
            make_tar(
                [
                    d("a"),
                    (entry("a/gone"), b"1"),
                    (entry("a/kept"), b"2"),
                    d("b"),
                    d("b/sub"),
                    (entry("b/sub/deep"), b"3"),
                    (entry("c"), b"4"),
                    d("d"),
                    (entry("d/old"), b"5"),
                    (entry("d/x"), b"6"),
                    (entry("e"), b"7"),
                ]
            ),
        )
        self.layer_from_tar(
            storage,
            child,
            make_tar(
                [
                    d("a"),
                    (entry("a/.wh.gone"), b""),
                    (entry(".wh.b"), b""),
                    (entry(".wh.c"), b""),
                    d("d"),
                    (entry("d/.wh..wh..opq"), b""),
                    (entry("d/new"), b"8"),
                    (entry("nowhere/.wh.x"), b""),
                ]
            ),
            parent,
        )
        storage.create_layer(grand, child)
        for lid in (child, grand):
            with mounted(storage, lid) as path:
                tree = sorted(str(p.relative_to(path)) for p in path.rglob("*"))
                assert tree == ["a", "a/kept", "d", "d/new", "e"], lid
        with mounted(storage, parent) as path:
            assert (path / "b/sub/deep").exists() and (path / "d/old").exists()
        assert sorted((c.path, c.kind) for c in storage.changes(child)) == [
            ("/a", 0),
            ("/a/gone", 2),
            ("/b", 2),
            ("/c", 2),
            ("/d", 0),
            ("/d/new", 1),
            ("/d/old", 2),
            ("/d/x", 2),
        ]

    def test_opaque_after_children_keeps_this_layers_entries(self, storage: StorageDriver) -> None:
        parent, child = layer_id("op"), layer_id("oc")
        self.layer_from_tar(
            storage, parent, make_tar([(entry("d", tarfile.DIRTYPE, 0o755), None), (entry("d/lower"), b"l")])
        )
        self.layer_from_tar(
            storage,
            child,
            make_tar(
                [(entry("d", tarfile.DIRTYPE, 0o755), None), (entry("d/upper"), b"u"), (entry("d/.wh..wh..opq"), b"")]
            ),
            parent,
        )
        with mounted(storage, child) as path:
            assert os.listdir(path / "d") == ["upper"]

    def test_changes_exact(self, storage: StorageDriver) -> None:
        """A/C/D as docker diff reports them, parents of changes included as C."""
        parent, child = layer_id("cp"), layer_id("cc")
        d = lambda n: (entry(n, tarfile.DIRTYPE, 0o755), None)  # noqa: E731
        self.layer_from_tar(
            storage,
            parent,
            make_tar(
                [
                    d("etc"),
                    (entry("etc/hosts"), b"127.0.0.1"),
                    (entry("etc/passwd"), b"root"),
                    (entry("etc/same"), b"same"),
                    d("usr"),
                    d("usr/bin"),
                    (entry("usr/bin/tool", mode=0o755), b"t"),
                    d("var"),
                    d("var/log"),
                    (entry("var/log/old.log"), b"old"),
                    d("var/cache"),
                    (entry("var/cache/c"), b"c"),
                    (entry("lnk", tarfile.SYMTYPE, 0o777, linkname="etc/ab"), None),
                    d("untouched"),
                    (entry("untouched/f"), b"f"),
                ]
            ),
        )
        storage.create_layer(child, parent)
        with mounted(storage, child) as root:
            (root / "etc/hosts").write_text("127.0.0.1 localhost")
            (root / "etc/newfile").write_text("new")
            os.chmod(root / "usr/bin/tool", 0o700)
            (root / "var/log/old.log").unlink()
            (root / "new/dir").mkdir(parents=True)
            (root / "new/dir/file").write_text("x")
            for name in ("var/cache/c",):
                (root / name).unlink()
            (root / "var/cache").rmdir()
            (root / "lnk").unlink()
            os.symlink("etc/cd", root / "lnk")  # same length, new target
            os.utime(root / "lnk", ns=(1_600_000_000 * 10**9,) * 2, follow_symlinks=False)
            os.utime(root / "untouched", ns=(1, 1))  # a directory's mtime alone is no change
        expected = [
            ("/etc", 0),
            ("/etc/hosts", 0),
            ("/etc/newfile", 1),
            ("/lnk", 0),
            ("/new", 1),
            ("/new/dir", 1),
            ("/new/dir/file", 1),
            ("/usr", 0),
            ("/usr/bin", 0),
            ("/usr/bin/tool", 0),
            ("/var", 0),
            ("/var/cache", 2),
            ("/var/log", 0),
            ("/var/log/old.log", 2),
        ]
        assert sorted((c.path, c.kind) for c in storage.changes(child)) == expected
        assert storage.diff_size(child) == len("127.0.0.1 localhost") + len("new") + len("x") + len("t") + len("etc/cd")

    def test_changes_owner_and_xattr(self, storage: StorageDriver, need: Callable) -> None:
        need("ownership", "xattrs")
        parent, child = layer_id("xp"), layer_id("xc")
        self.layer_from_tar(
            storage, parent, make_tar([(entry("owned"), b"o"), (entry("tagged"), b"t"), (entry("plain"), b"p")])
        )
        storage.create_layer(child, parent)
        with mounted(storage, child) as root:
            os.chown(root / "owned", 1234, 1234)
            os.setxattr(root / "tagged", "user.tag", b"v")
        assert sorted((c.path, c.kind) for c in storage.changes(child)) == [("/owned", 0), ("/tagged", 0)]

    def test_diff_replays_changes(self, storage: StorageDriver) -> None:
        """The diff of a layer, applied to its parent, gives the same tree and the same diff."""
        parent, child, replay = layer_id("dp"), layer_id("dc"), layer_id("dr")
        self.layer_from_tar(
            storage,
            parent,
            make_tar(
                [
                    (entry("a"), b"1"),
                    (entry("b"), b"2"),
                    (entry("dir", tarfile.DIRTYPE, 0o755), None),
                    (entry("dir/x"), b"3"),
                ]
            ),
        )
        storage.create_layer(child, parent)
        with mounted(storage, child) as root:
            (root / "a").unlink()
            (root / "dir/x").write_text("changed")
            (root / "dir/y").write_text("added")
            for p in ("dir/x", "dir/y", "dir"):
                os.utime(root / p, ns=(1_700_000_000 * 10**9,) * 2)
        diff = read_all(storage.diff(child))
        self.layer_from_tar(storage, replay, diff, parent)
        with mounted(storage, child) as c, mounted(storage, replay) as r:
            assert snapshot(c) == snapshot(r)
        assert storage.changes(replay) == storage.changes(child)
        assert sha256(read_all(storage.diff(replay))) == sha256(diff)
        names = [m.name for m in tarfile.open(fileobj=io.BytesIO(diff))]
        assert names == [".wh.a", "dir", "dir/x", "dir/y"]

    def test_markers_without_parent_headers(self, storage: StorageDriver, caps: Capabilities) -> None:
        """Whiteouts, opaque markers and entries whose directories only a lower layer has.

        parent: /etc/{gone,kept}  /opq/{old,sub/x}  /a (0750, 7:8, user.dir)/b/old  /lnk -> real  /real/f
        child:  etc/.wh.gone  opq/.wh..wh..opq  opq/new  a/b/new  lnk/.wh.f  nowhere/.wh.x   (no directory headers)
        -> etc/gone, opq/old, opq/sub and real/f are gone (the symlink resolved as in a full tree), a and a/b
           keep the parent's owner, mode and xattrs, nothing appears for nowhere; in a grandchild and a replay too.
        """
        owner = {"uid": 7, "gid": 8} if caps.ownership else {}
        xattrs = {"xattrs": {"user.dir": b"d"}} if caps.xattrs else {}
        d = lambda n, **kw: (entry(n, tarfile.DIRTYPE, kw.pop("mode", 0o755), **kw), None)  # noqa: E731
        parent, child, grand, replay = (layer_id(f"mh-{n}") for n in ("p", "c", "g", "r"))
        self.layer_from_tar(
            storage,
            parent,
            make_tar(
                [
                    d("etc"),
                    (entry("etc/gone"), b"g"),
                    (entry("etc/kept"), b"k"),
                    d("opq"),
                    (entry("opq/old"), b"o"),
                    d("opq/sub"),
                    (entry("opq/sub/x"), b"x"),
                    d("a", mode=0o750, **owner, **xattrs),
                    d("a/b", mode=0o700),
                    (entry("a/b/old"), b"o"),
                    (entry("lnk", tarfile.SYMTYPE, 0o777, linkname="real"), None),
                    d("real"),
                    (entry("real/f"), b"f"),
                ]
            ),
        )
        self.layer_from_tar(
            storage,
            child,
            make_tar(
                [
                    (entry("etc/.wh.gone"), b""),
                    (entry("opq/.wh..wh..opq"), b""),
                    (entry("opq/new"), b"n"),
                    (entry("a/b/new"), b"n"),
                    (entry("lnk/.wh.f"), b""),
                    (entry("nowhere/.wh.x"), b""),
                ]
            ),
            parent,
        )
        storage.create_layer(grand, child)
        with mounted(storage, parent) as p:
            expected_a = {n: snapshot(p)[n] for n in ("a", "a/b")}
        for lid in (child, grand):
            with mounted(storage, lid) as root:
                tree = sorted(str(q.relative_to(root)) for q in root.rglob("*"))
                assert tree == ["a", "a/b", "a/b/new", "a/b/old", "etc", "etc/kept", "lnk", "opq", "opq/new", "real"], (
                    lid
                )
                assert {n: snapshot(root)[n] for n in ("a", "a/b")} == expected_a, "implied parents keep their metadata"
        assert [(c.path, c.kind) for c in storage.changes(child)] == [
            ("/a", 0),
            ("/a/b", 0),
            ("/a/b/new", 1),
            ("/etc", 0),
            ("/etc/gone", 2),
            ("/opq", 0),
            ("/opq/new", 1),
            ("/opq/old", 2),
            ("/opq/sub", 2),
            ("/real", 0),
            ("/real/f", 2),
        ]
        diff = read_all(storage.diff(child))
        self.layer_from_tar(storage, replay, diff, parent)
        with mounted(storage, child) as c, mounted(storage, replay) as r:
            assert snapshot(c) == snapshot(r)
        assert sha256(read_all(storage.diff(replay))) == sha256(diff)

    def test_native_diff_equals_naive_diff(self, storage: StorageDriver, caps: Capabilities, work: Path) -> None:
        """A container's diff gives the very changes and bytes of a walk of both mounted views.

        parent: a seeded tree plus /ren/{a,b/c}, /opq/{x,y/z}, /f2d, /d2f/inner, /lnk, /hl{1,2}
        mid:    /mid, and /f2d replaced by a directory (so the parent view of a union driver is a union)
        child:  renames a lower dir, rm -rf + mkdir, file <-> dir, chmod/chown/xattr/utime, truncate,
                unlink, a link to a lower file, new dirs: the copy-up-heavy workload of a container
        """
        src = work / "src"
        src.mkdir()
        write_tree(src, seed=21, files=150, caps=caps)
        for name in ("ren/b", "opq/y", "d2f"):
            (src / name).mkdir(parents=True)
        for name in ("ren/a", "ren/b/c", "opq/x", "opq/y/z", "f2d", "d2f/inner", "hl1"):
            (src / name).write_text(name)
        if caps.hardlinks:
            os.link(src / "hl1", src / "hl2")
        os.symlink("ren/a", src / "lnk")
        parent, mid, child = layer_id("n-parent"), layer_id("n-mid"), layer_id("n-child")
        self.layer_from_tar(storage, parent, read_all(archive.export_tree(src)))
        self.layer_from_tar(
            storage,
            mid,
            make_tar([(entry("mid"), b"m"), (entry(".wh.f2d"), b""), (entry("f2d", tarfile.DIRTYPE, 0o700), None)]),
            parent,
        )
        storage.create_layer(child, mid)
        with mounted(storage, child) as root:
            shutil.move(root / "ren", root / "renamed")  # overlayfs: EXDEV, so copy + delete
            shutil.rmtree(root / "opq")
            (root / "opq").mkdir()
            (root / "opq/y").mkdir()
            (root / "opq/y/new").write_text("n")
            shutil.rmtree(root / "f2d")
            (root / "f2d").write_text("now a file")
            shutil.rmtree(root / "d2f")
            (root / "d2f").write_text("was a dir")
            os.unlink(root / "lnk")
            os.symlink("renamed/a", root / "lnk")
            if caps.hardlinks:
                os.link(root / "hl1", root / "hl3")
                os.chmod(root / "hl2", 0o600)
            for path in sorted(q for q in root.rglob("*") if q.is_file() and not q.is_symlink())[:40:3]:
                os.truncate(path, 3)
            for path in sorted(q for q in root.rglob("f*") if q.is_file() and not q.is_symlink())[1:30:4]:
                if caps.ownership:
                    os.chown(path, 4242, 4242)
                if caps.xattrs:
                    os.setxattr(path, "user.native", b"1")
                os.utime(path, ns=(1_650_000_000 * 10**9,) * 2)
            for path in sorted(q for q in root.rglob("f*") if q.is_file() and not q.is_symlink())[2:30:5]:
                path.unlink()
            (root / "brand/new/dir").mkdir(parents=True)
            (root / "brand/new/dir/file").write_bytes(os.urandom(5000))
        with mounted(storage, child) as root, mounted(storage, mid) as lower:
            naive = archive.changes(root, lower)
            naive_tar = read_all(archive.export_changes(root, naive))
            naive_size = archive.changes_size(root, naive)
        assert [(c.path, c.kind) for c in storage.changes(child)] == [(c.path, c.kind) for c in naive]
        assert read_all(storage.diff(child)) == naive_tar
        assert storage.diff_size(child) == naive_size
        # the middle layer's own diff: a directory replacing a file, and a new file
        with tarfile.open(fileobj=io.BytesIO(read_all(storage.diff(mid)))) as tf:
            assert [(m.name, m.type) for m in tf] == [("f2d", tarfile.DIRTYPE), ("mid", tarfile.REGTYPE)]

    # -- content fidelity ----------------------------------------------------

    def test_apply_modes_and_owners(self, storage: StorageDriver, need: Callable) -> None:
        need("ownership")
        lid = layer_id("modes")
        data = make_tar(
            [
                (entry("suid", mode=0o4755, uid=0), b"s"),
                (entry("sgid", mode=0o2711, gid=50), b"g"),
                (entry("tmp", tarfile.DIRTYPE, 0o1777), None),
                (entry("user", mode=0o600, uid=1000, gid=1001), b"u"),
                (entry("ro-dir", tarfile.DIRTYPE, 0o555, uid=7, gid=8), None),
                (entry("ro-dir/inside", mode=0o444), b"i"),
            ]
        )
        self.layer_from_tar(storage, lid, data)
        storage.create_layer(layer_id("modes-child"), lid)
        for target in (lid, layer_id("modes-child")):
            with mounted(storage, target) as root:

                def mode(n: str) -> tuple[int, int, int]:
                    st = os.lstat(root / n)
                    return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid

                assert mode("suid") == (0o4755, 0, 0)
                assert mode("sgid") == (0o2711, 0, 50)
                assert mode("tmp") == (0o1777, 0, 0)
                assert mode("user") == (0o600, 1000, 1001)
                assert mode("ro-dir") == (0o555, 7, 8)
                assert (root / "ro-dir/inside").read_bytes() == b"i"

    def test_apply_symlinks(self, storage: StorageDriver) -> None:
        lid = layer_id("links")
        data = make_tar(
            [
                (entry("abs", tarfile.SYMTYPE, 0o777, linkname="/etc/passwd", mtime=1_234_567_890), None),
                (entry("rel", tarfile.SYMTYPE, 0o777, linkname="../../x"), None),
                (entry("dangling", tarfile.SYMTYPE, 0o777, linkname="nowhere"), None),
            ]
        )
        self.layer_from_tar(storage, lid, data)
        with mounted(storage, lid) as root:
            assert os.readlink(root / "abs") == "/etc/passwd"
            assert os.readlink(root / "rel") == "../../x"
            assert os.readlink(root / "dangling") == "nowhere"
            assert os.lstat(root / "abs").st_mtime == 1_234_567_890

    def test_apply_and_copy_hardlinks(self, storage: StorageDriver, need: Callable) -> None:
        need("hardlinks")
        lid, child = layer_id("hl"), layer_id("hl-child")
        data = make_tar(
            [
                (entry("a"), b"shared"),
                (entry("b", tarfile.LNKTYPE, linkname="a"), None),
                (entry("sub", tarfile.DIRTYPE, 0o755), None),
                (entry("sub/c", tarfile.LNKTYPE, linkname="a"), None),
            ]
        )
        self.layer_from_tar(storage, lid, data)
        storage.create_layer(child, lid)
        for target in (lid, child):
            with mounted(storage, target) as root:
                inodes = {os.lstat(root / n).st_ino for n in ("a", "b", "sub/c")}
                assert len(inodes) == 1 and os.lstat(root / "a").st_nlink == 3
        members = {m.name: m for m in tarfile.open(fileobj=io.BytesIO(read_all(storage.diff(lid))))}
        assert members["a"].isreg() and members["a"].size == len(b"shared")
        assert [(members[n].islnk(), members[n].linkname) for n in ("b", "sub/c")] == [(True, "a")] * 2
        with mounted(storage, child) as root:
            os.link(root / "a", root / "d")
        members = {m.name: m for m in tarfile.open(fileobj=io.BytesIO(read_all(storage.diff(child))))}
        assert members["d"].isreg() and members["d"].size == len(b"shared"), (
            "a link to a lower layer's file carries the content"
        )

    def test_apply_device_nodes(self, storage: StorageDriver, need: Callable) -> None:
        need("device_nodes")
        lid = layer_id("dev")
        self.layer_from_tar(
            storage,
            lid,
            make_tar(
                [
                    (entry("null", tarfile.CHRTYPE, 0o666, dev=(1, 3)), None),
                    (entry("loop9", tarfile.BLKTYPE, 0o660, gid=6, dev=(7, 9)), None),
                ]
            ),
        )
        storage.create_layer(layer_id("dev-child"), lid)
        with mounted(storage, layer_id("dev-child")) as root:
            null, loop = os.lstat(root / "null"), os.lstat(root / "loop9")
            assert stat.S_ISCHR(null.st_mode) and os.major(null.st_rdev) == 1 and os.minor(null.st_rdev) == 3
            assert stat.S_ISBLK(loop.st_mode) and (os.major(loop.st_rdev), os.minor(loop.st_rdev)) == (7, 9)
            assert stat.S_IMODE(null.st_mode) == 0o666

    def test_apply_fifo(self, storage: StorageDriver, need: Callable) -> None:
        need("fifos")
        lid = layer_id("fifo")
        self.layer_from_tar(storage, lid, make_tar([(entry("pipe", tarfile.FIFOTYPE, 0o620), None)]))
        storage.create_layer(layer_id("fifo-child"), lid)
        with mounted(storage, layer_id("fifo-child")) as root:
            st = os.lstat(root / "pipe")
            assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o620

    def test_apply_xattrs(self, storage: StorageDriver, need: Callable) -> None:
        need("xattrs")
        cap = bytes.fromhex("0100000200200000000000000000000000000000")  # cap_net_bind_service
        lid = layer_id("xattr")
        self.layer_from_tar(
            storage,
            lid,
            make_tar(
                [
                    (
                        entry("ping", mode=0o4755, xattrs={"security.capability": cap, "user.bin": b"\xff\x00\x01"}),
                        b"p",
                    ),
                    (entry("dir", tarfile.DIRTYPE, 0o755, xattrs={"user.dir": b"d"}), None),
                ]
            ),
        )
        storage.create_layer(layer_id("xattr-child"), lid)
        for target in (lid, layer_id("xattr-child")):
            with mounted(storage, target) as root:
                assert os.getxattr(root / "ping", "security.capability") == cap
                assert os.getxattr(root / "ping", "user.bin") == b"\xff\x00\x01"
                assert os.getxattr(root / "dir", "user.dir") == b"d"
                assert stat.S_IMODE(os.lstat(root / "ping").st_mode) == 0o4755
        diff = read_all(storage.diff(lid))
        member = next(m for m in tarfile.open(fileobj=io.BytesIO(diff)) if m.name == "ping")
        assert member.pax_headers["SCHILY.xattr.user.bin"].encode("utf-8", "surrogateescape") == b"\xff\x00\x01"

    def test_unicode_and_long_names(self, storage: StorageDriver) -> None:
        long_dir = "/".join(["d" * 60] * 5)
        names = ["ünïcødé-名前.txt", "n" * 200, f"{long_dir}/{'f' * 150}", "tab\tand space"]
        lid = layer_id("names")
        entries = [(entry("/".join(["d" * 60] * i), tarfile.DIRTYPE, 0o755), None) for i in range(1, 6)]
        entries += [(entry(n), n.encode()) for n in names]
        self.layer_from_tar(storage, lid, make_tar(entries))
        with mounted(storage, lid) as root:
            for n in names:
                assert (root / n).read_bytes() == n.encode()
        diff = read_all(storage.diff(lid))
        assert {m.name for m in tarfile.open(fileobj=io.BytesIO(diff)) if m.isfile()} == set(names)

    def test_mtimes(self, storage: StorageDriver, need: Callable) -> None:
        lid = layer_id("mtime")
        info = entry("f", mtime=1_000_000_000)
        info.pax_headers["mtime"] = "1000000000.123456789"
        self.layer_from_tar(
            storage,
            lid,
            make_tar(
                [(entry("d", tarfile.DIRTYPE, 0o755, mtime=1_111_111_111), None), (entry("d/x"), b"x"), (info, b"f")]
            ),
        )
        with mounted(storage, lid) as root:
            assert os.lstat(root / "d").st_mtime_ns == 1_111_111_111 * 10**9, "directory mtime set after its children"
            precise = os.lstat(root / "f").st_mtime_ns
        need("nanosecond_mtimes")
        assert precise == 1_000_000_000_123_456_789
        storage.create_layer(layer_id("mtime-child"), lid)
        with mounted(storage, layer_id("mtime-child")) as root:
            assert os.lstat(root / "f").st_mtime_ns == precise
        assert storage.changes(layer_id("mtime-child")) == []

    def test_child_is_exact_copy(self, storage: StorageDriver, caps: Capabilities, work: Path) -> None:
        src = work / "src"
        src.mkdir()
        write_tree(src, seed=7, caps=caps)
        parent, child = layer_id("copy-p"), layer_id("copy-c")
        self.layer_from_tar(storage, parent, read_all(archive.export_tree(src)))
        storage.create_layer(child, parent)
        with mounted(storage, parent) as p, mounted(storage, child) as c:
            assert snapshot(c) == snapshot(p)
        assert storage.changes(child) == []
        assert storage.diff_size(child) == 0

    def test_large_sparse_files(self, storage: StorageDriver, need: Callable) -> None:
        """3 GiB files with three 4 KiB extents: creation, copy, diff and apply stay sparse and fast."""
        need("sparse_files", "large_files")
        base, child, replay = layer_id("sp"), layer_id("sp-child"), layer_id("sp-replay")
        storage.create_layer(base, None)
        offsets = [0, GiB + 4096, 3 * GiB - 4096]
        with mounted(storage, base) as root:
            with open(root / "big", "wb") as f:
                for off in offsets:
                    f.seek(off)
                    f.write(b"x" * 4096)
            with open(root / "empty", "wb") as f:
                f.truncate(5 * GiB // 2)
        started = time.monotonic()
        storage.create_layer(child, base)
        diff = read_all(storage.diff(base))
        self.layer_from_tar(storage, replay, diff)
        elapsed = time.monotonic() - started
        assert len(diff) < 1 << 20, f"diff of sparse files is {len(diff)} bytes"
        for lid in (child, replay):
            with mounted(storage, lid) as root:
                for name, size in (("big", 3 * GiB), ("empty", 5 * GiB // 2)):
                    st = os.lstat(root / name)
                    assert st.st_size == size
                    assert st.st_blocks * 512 <= 1 << 20, f"{name} in {lid[:8]} lost its holes"
                with open(root / "big", "rb") as f:
                    for off in offsets:
                        f.seek(off)
                        assert f.read(4096) == b"x" * 4096
                    f.seek(GiB)
                    assert f.read(4096) == bytes(4096)
        assert sha256(read_all(storage.diff(replay))) == sha256(diff)
        assert elapsed < 20, f"sparse copy + diff + apply took {elapsed:.1f}s"

    # -- determinism ---------------------------------------------------------

    def test_same_tar_same_digest(self, storage: StorageDriver, caps: Capabilities, work: Path) -> None:
        """A canonical tar applied to a fresh layer exports to the very same bytes; twice."""
        src = work / "src"
        src.mkdir()
        write_tree(src, seed=11, files=120, caps=caps)
        tar = read_all(archive.export_tree(src))
        for n in (1, 2):
            lid = layer_id(f"digest{n}")
            written = self.layer_from_tar(storage, lid, tar)
            assert written == sum(m.size for m in tarfile.open(fileobj=io.BytesIO(tar)) if m.isreg())
            assert sha256(read_all(storage.diff(lid))) == sha256(tar)
        with mounted(storage, layer_id("digest1")) as a:
            assert snapshot(a) == snapshot(src)

    def test_same_tar_same_digest_child(self, storage: StorageDriver, caps: Capabilities, work: Path) -> None:
        """A child layer's diff is the canonical tar of its changes, whatever tar made it.

        The child is applied from the canonical tar (archive.export_changes of two plain trees) plus
        what a producer may add that changes nothing: a header for an unchanged directory, an
        unchanged file sent again, a whiteout of a name no lower layer has.  Its diff must be the
        canonical tar byte for byte (a driver exporting its layer directory verbatim would not be).
        """
        old, new = work / "old", work / "new"
        for tree in (old, new):
            tree.mkdir()
        write_tree(old, seed=13, files=80, caps=caps)
        for name in ("keep", "rmrf/sub", "d2f", "mod"):
            (old / name).mkdir(parents=True)
        for name in ("keep/same", "rmrf/a", "rmrf/sub/b", "d2f/x", "f2d", "mod/content", "mod/gone", "mod/perm"):
            (old / name).write_text(name)
        stamp = (1_400_000_000 * 10**9,) * 2
        for path in [old, *old.rglob("*")]:
            os.utime(path, ns=stamp, follow_symlinks=False)
        parent_tar = read_all(archive.export_tree(old))
        archive.apply_layer(new, io.BytesIO(parent_tar))
        shutil.rmtree(new / "rmrf")
        (new / "rmrf").mkdir()
        (new / "rmrf/n").write_text("n")
        shutil.rmtree(new / "d2f")
        (new / "d2f").write_text("file now")
        (new / "f2d").unlink()
        (new / "f2d").mkdir()
        (new / "f2d/in").write_text("in")
        (new / "mod/content").write_text("changed")
        (new / "mod/gone").unlink()
        os.chmod(new / "mod/perm", 0o600)
        (new / "added/deep").mkdir(parents=True)
        (new / "added/deep/file").write_bytes(b"x" * 10_000)
        for path in [new, *new.rglob("*")]:
            if os.lstat(path).st_mtime_ns != stamp[1]:
                os.utime(path, ns=(1_500_000_000 * 10**9,) * 2, follow_symlinks=False)
        canonical = read_all(archive.export_changes(new, archive.changes(new, old)))
        with tarfile.open(fileobj=io.BytesIO(parent_tar)) as tf:
            keep = [
                (m, tf.extractfile(m).read() if m.isreg() else None)
                for m in tf.getmembers()
                if m.name in ("keep", "keep/same")
            ]
        with tarfile.open(fileobj=io.BytesIO(canonical)) as tf:
            assert "keep" not in tf.getnames()
            end = tf.offset  # where the end-of-archive blocks begin
        padded = canonical[:end] + make_tar([*keep, (entry(".wh.ghost"), b""), (entry("keep/.wh.nothing"), b"")])
        parent = layer_id("cd-parent")
        self.layer_from_tar(storage, parent, parent_tar)
        for n, tar in enumerate((canonical, padded)):
            lid = layer_id(f"cd-child{n}")
            self.layer_from_tar(storage, lid, tar, parent)
            assert sha256(read_all(storage.diff(lid))) == sha256(canonical), f"child {n}"
            with mounted(storage, lid) as root:
                assert snapshot(root) == snapshot(new), f"child {n}"

    # -- safety --------------------------------------------------------------

    def _outside(self, work: Path) -> tuple[Path, dict]:
        outside = work / "outside"
        outside.mkdir(exist_ok=True)
        (outside / "t").write_text("target")
        return outside, snapshot(outside)

    @pytest.mark.parametrize(
        "case", ["dotdot", "dotdot-deep", "hardlink-dotdot", "hardlink-abs", "hardlink-via-symlink", "whiteout-dotdot"]
    )
    def test_escape_rejected(self, storage: StorageDriver, work: Path, case: str) -> None:
        outside, before = self._outside(work)
        tars = {
            "dotdot": [(entry("../outside/x"), b"evil")],
            "dotdot-deep": [(entry("a", tarfile.DIRTYPE, 0o755), None), (entry("a/../../outside/x"), b"evil")],
            "hardlink-dotdot": [(entry("h", tarfile.LNKTYPE, linkname="../outside/t"), None)],
            "hardlink-abs": [(entry("h", tarfile.LNKTYPE, linkname=f"{outside}/t"), None)],
            "hardlink-via-symlink": [
                (entry("l", tarfile.SYMTYPE, 0o777, linkname=str(outside)), None),
                (entry("h", tarfile.LNKTYPE, linkname="l/t"), None),
            ],
            "whiteout-dotdot": [(entry("a", tarfile.DIRTYPE, 0o755), None), (entry("a/.wh.."), b"")],
        }
        lid = layer_id(case)
        storage.create_layer(lid, None)
        with pytest.raises(InvalidParameter):
            storage.apply_diff(lid, io.BytesIO(make_tar(tars[case])))
        assert snapshot(outside) == before
        storage.remove_layer(lid)
        assert not storage.exists(lid)

    @pytest.mark.parametrize(
        "case",
        ["absolute", "symlink-abs-dir", "symlink-rel-dir", "symlink-then-file", "symlink-then-dir", "lower-symlink"],
    )
    def test_escape_contained(self, storage: StorageDriver, work: Path, case: str) -> None:
        """Hostile names that are legal land inside the layer (symlinks resolve as in a chroot)."""
        outside, before = self._outside(work)
        o = str(outside)
        tars = {
            "absolute": [(entry(f"{o}/x"), b"in")],
            "symlink-abs-dir": [(entry("l", tarfile.SYMTYPE, 0o777, linkname=o), None), (entry("l/x"), b"in")],
            "symlink-rel-dir": [
                (entry("l", tarfile.SYMTYPE, 0o777, linkname="../../../../../../../.." + o), None),
                (entry("l/x"), b"in"),
            ],
            "symlink-then-file": [(entry("f", tarfile.SYMTYPE, 0o777, linkname=f"{o}/t"), None), (entry("f"), b"in")],
            "symlink-then-dir": [
                (entry("d", tarfile.SYMTYPE, 0o777, linkname=o), None),
                (entry("d", tarfile.DIRTYPE, 0o755), None),
                (entry("d/x"), b"in"),
            ],
            "lower-symlink": [(entry("plnk/x"), b"in")],
        }
        lid = layer_id(case)
        parent = None
        if case == "lower-symlink":
            parent = layer_id("lower")
            self.layer_from_tar(storage, parent, make_tar([(entry("plnk", tarfile.SYMTYPE, 0o777, linkname=o), None)]))
        self.layer_from_tar(storage, lid, make_tar(tars[case]), parent)
        assert snapshot(outside) == before
        with mounted(storage, lid) as root:
            found = [p for p in root.rglob("*") if p.name == "x" or (p.name in ("f",) and p.is_file())]
            assert found and all(p.read_bytes() == b"in" for p in found if not p.is_symlink())

    def test_malformed_tars(self, storage: StorageDriver) -> None:
        good = make_tar([(entry("a"), b"x" * 5000), (entry("b"), b"y")])
        corrupt = bytearray(good)
        corrupt[512 * 11 + 148 : 512 * 11 + 156] = b"garbage!"  # checksum of the second header
        for n, data in enumerate([b"not a tar at all" * 100, good[: 512 + 2000], good[:700], b"", bytes(corrupt)]):
            lid = layer_id(f"bad{n}")
            storage.create_layer(lid, None)
            with pytest.raises(InvalidParameter):
                storage.apply_diff(lid, io.BytesIO(data))
            storage.remove_layer(lid)

    # -- crash safety --------------------------------------------------------

    def _in_child(self, work: Callable[[], None]) -> int:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child never returns
            code = 0
            try:
                work()
            except BaseException:
                code = 1
            os._exit(code)
        return pid

    def test_interrupted_apply_is_invisible(
        self,
        request: pytest.FixtureRequest,
        storage: StorageDriver,
        driver: Any,
        storage_root: Path,
        work: Path,
        caps: Capabilities,
    ) -> None:
        base, done, cut = layer_id("crash-base"), layer_id("crash-done"), layer_id("crash-cut")
        self.layer_from_tar(storage, base, make_tar([(entry("in-base"), b"b")]))
        src = work / "src"
        src.mkdir()
        write_tree(src, seed=3, files=400, caps=caps)
        tar = read_all(archive.export_tree(src))
        ready_r, ready_w = os.pipe()
        data_r, data_w = os.pipe()

        def child() -> None:
            os.close(data_w)
            storage.create_layer(done, base)
            storage.create_layer(cut, base)
            os.write(ready_w, b"1")
            storage.apply_diff(cut, os.fdopen(data_r, "rb"))

        pid = self._in_child(child)
        os.close(data_r)
        try:
            assert os.read(ready_r, 1) == b"1", "child failed before applying"
            os.write(data_w, tar[: len(tar) // 2])
            time.sleep(0.2)
        finally:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            for fd in (ready_r, ready_w, data_w):
                os.close(fd)
        reopened = self.reopen(request.config, driver, storage_root)
        try:
            again = facade(reopened)
            assert again.exists(done), "a layer completed before the crash must survive"
            assert not again.exists(cut)
            assert cut not in again.layers()
            self.layer_from_tar(again, cut, make_tar([(entry("retry"), b"r")]), base)
            assert again.exists(cut)
        finally:
            reopened.storage_cleanup()

    def test_interrupted_create_is_invisible_or_complete(
        self,
        request: pytest.FixtureRequest,
        storage: StorageDriver,
        driver: Any,
        storage_root: Path,
        work: Path,
        caps: Capabilities,
    ) -> None:
        base = layer_id("big-base")
        src = work / "src"
        src.mkdir()
        write_tree(src, seed=5, files=1500, caps=caps.model_copy(update={"device_nodes": False, "fifos": False}))
        self.layer_from_tar(storage, base, read_all(archive.export_tree(src)))
        with mounted(storage, base) as root:
            expected = snapshot(root)
        for n, delay in enumerate([0.0, 0.002, 0.005, 0.01, 0.02, 0.05]):
            lid = layer_id(f"interrupted{n}")
            pid = self._in_child(lambda lid=lid: storage.create_layer(lid, base))
            time.sleep(delay)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            reopened = self.reopen(request.config, driver, storage_root)
            try:
                again = facade(reopened)
                if again.exists(lid):
                    with mounted(again, lid) as root:
                        assert snapshot(root) == expected, f"layer {n} exists but is incomplete"
                else:
                    assert lid not in again.layers()
            finally:
                reopened.storage_cleanup()
