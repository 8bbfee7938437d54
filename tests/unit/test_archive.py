"""dockyard.archive: applying, diffing and writing layer tars."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

from dockyard import archive
from dockyard.errors import InvalidParameter
from dockyard.testing.conformance import Capabilities, entry, make_tar, snapshot, write_tree

D = tarfile.DIRTYPE


def dir_(name: str, **kw) -> tuple[tarfile.TarInfo, None]:
    return entry(name, D, kw.pop("mode", 0o755), **kw), None


def apply(root: Path, entries, handler=archive.PLAIN) -> int:
    return archive.apply_layer(root, io.BytesIO(make_tar(entries)), handler)


def tar_of(directory: Path, handler=archive.PLAIN) -> bytes:
    stream = archive.export_tree(directory, handler)
    try:
        return stream.read()
    finally:
        stream.close()


def kinds(found) -> list[tuple[str, int]]:
    return [(c.path, c.kind) for c in found]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "root").mkdir()
    return tmp_path / "root"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside/t").write_text("target")
    return tmp_path / "outside"


# -- apply ------------------------------------------------------------------


def test_apply_metadata_and_count(root: Path) -> None:
    cap = bytes.fromhex("0100000200200000000000000000000000000000")
    n = apply(
        root,
        [
            dir_("bin", mtime=1_000),
            (entry("bin/su", mode=0o4755, uid=0, gid=0, xattrs={"security.capability": cap}), b"su!"),
            (entry("bin/own", mode=0o640, uid=1000, gid=42), b"1234"),
            (entry("bin/sh", tarfile.SYMTYPE, 0o777, linkname="su", mtime=77), None),
            (entry("bin/su2", tarfile.LNKTYPE, linkname="bin/su"), None),
            (entry("null", tarfile.CHRTYPE, 0o666, dev=(1, 3)), None),
            (entry("fifo", tarfile.FIFOTYPE, 0o600), None),
        ],
    )
    assert n == 7
    su = os.lstat(root / "bin/su")
    assert stat.S_IMODE(su.st_mode) == 0o4755 and os.getxattr(root / "bin/su", "security.capability") == cap
    own = os.lstat(root / "bin/own")
    assert (own.st_uid, own.st_gid, stat.S_IMODE(own.st_mode)) == (1000, 42, 0o640)
    assert os.readlink(root / "bin/sh") == "su" and os.lstat(root / "bin/sh").st_mtime == 77
    assert os.lstat(root / "bin/su2").st_ino == su.st_ino
    assert os.lstat(root / "null").st_rdev == os.makedev(1, 3)
    assert stat.S_ISFIFO(os.lstat(root / "fifo").st_mode)
    assert os.lstat(root / "bin").st_mtime == 1_000


def test_pax_fractional_mtime_is_exact(root: Path) -> None:
    info = entry("f")
    info.pax_headers["mtime"] = "1700000000.000000001"
    apply(root, [(info, b"x")])
    assert os.lstat(root / "f").st_mtime_ns == 1_700_000_000_000_000_001


def test_existing_dir_kept_other_types_replaced(root: Path) -> None:
    apply(root, [dir_("d"), (entry("d/lower"), b"l"), (entry("f"), b"file"), dir_("g"), (entry("g/x"), b"x")])
    apply(
        root,
        [dir_("d", mode=0o700), (entry("f", tarfile.SYMTYPE, 0o777, linkname="d"), None), (entry("g"), b"now a file")],
    )
    assert (root / "d/lower").exists() and stat.S_IMODE(os.lstat(root / "d").st_mode) == 0o700
    assert os.readlink(root / "f") == "d"
    assert (root / "g").read_bytes() == b"now a file"


def test_plain_whiteouts(root: Path) -> None:
    apply(
        root,
        [
            dir_("a"),
            (entry("a/x"), b""),
            (entry("a/y"), b""),
            dir_("b"),
            dir_("b/c"),
            (entry("b/c/z"), b""),
            dir_("o"),
            (entry("o/old"), b""),
            dir_("o/sub"),
            (entry("o/sub/old"), b""),
        ],
    )
    apply(
        root,
        [
            (entry("a/.wh.x"), b""),
            (entry(".wh.b"), b""),
            (entry("missing/.wh.q"), b""),
            (entry(".wh..wh.plnk"), b""),
            dir_("o"),
            dir_("o/sub"),
            (entry("o/sub/new"), b"n"),
            (entry("o/.wh..wh..opq"), b""),
        ],
    )
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == ["a", "a/y", "o", "o/sub", "o/sub/new"]


def test_overlay_whiteouts_both_ways(root: Path, tmp_path: Path) -> None:
    handler = archive.OverlayWhiteouts()
    apply(
        root,
        [
            dir_("d"),
            (entry("d/.wh..wh..opq"), b""),
            (entry("d/keep", xattrs={"user.a": b"1"}), b"k"),
            (entry(".wh.gone"), b""),
        ],
        handler,
    )
    gone = os.lstat(root / "gone")
    assert stat.S_ISCHR(gone.st_mode) and gone.st_rdev == 0
    assert os.getxattr(root / "d", "trusted.overlay.opaque") == b"y"
    names = [m.name for m in tarfile.open(fileobj=io.BytesIO(tar_of(root, handler)))]
    assert names == ["d", "d/.wh..wh..opq", "d/keep", ".wh.gone"]
    members = list(tarfile.open(fileobj=io.BytesIO(tar_of(root, handler))))
    assert not any(k.startswith("SCHILY.xattr.trusted.overlay") for m in members for k in m.pax_headers)


def test_lower_view_copy_up(root: Path, tmp_path: Path) -> None:
    """
    lower: etc/{gone,kept}  opq/old  a (0750 7:8 user.a, mtime 1000)/b/old  lnk -> real  real/f  file
    tar:   etc/.wh.gone  opq/.wh..wh..opq  a/b/new  lnk/.wh.f  file/.wh.x  nowhere/.wh.y  (no directory headers)
    -> the directories are copied up from the lower view with their metadata, the markers land in them,
       a lower symlink is copied and followed, and nothing is made for what the lower view lacks.
    """
    lower = tmp_path / "lower"
    lower.mkdir()
    apply(
        lower,
        [
            dir_("etc"),
            (entry("etc/gone"), b"g"),
            (entry("etc/kept"), b"k"),
            dir_("opq"),
            (entry("opq/old"), b"o"),
            dir_("a", mode=0o750, uid=7, gid=8, mtime=1000, xattrs={"user.a": b"1"}),
            dir_("a/b", mode=0o700, mtime=2000),
            (entry("a/b/old"), b"o"),
            (entry("lnk", tarfile.SYMTYPE, 0o777, linkname="real", uid=5, mtime=3000), None),
            dir_("real"),
            (entry("real/f"), b"f"),
            (entry("file"), b""),
        ],
    )
    handler = archive.OverlayWhiteouts(lower=str(lower))
    apply(
        root,
        [
            (entry("etc/.wh.gone"), b""),
            (entry("opq/.wh..wh..opq"), b""),
            (entry("a/b/new"), b"n"),
            (entry("lnk/.wh.f"), b""),
            (entry("file/.wh.x"), b""),
            (entry("nowhere/.wh.y"), b""),
        ],
        handler,
    )
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == [
        "a",
        "a/b",
        "a/b/new",
        "etc",
        "etc/gone",
        "lnk",
        "opq",
        "real",
        "real/f",
    ]
    assert stat.S_ISCHR(os.lstat(root / "etc/gone").st_mode) and stat.S_ISCHR(os.lstat(root / "real/f").st_mode)
    assert os.getxattr(root / "opq", "trusted.overlay.opaque") == b"y"
    for name in ("a", "a/b", "lnk"):
        up, low = os.lstat(root / name), os.lstat(lower / name)
        assert (up.st_mode, up.st_uid, up.st_gid, up.st_mtime_ns) == (
            low.st_mode,
            low.st_uid,
            low.st_gid,
            low.st_mtime_ns,
        ), name
    assert os.getxattr(root / "a", "user.a") == b"1" and os.readlink(root / "lnk") == "real"
    assert not archive.differs(str(lower / "a"), os.lstat(lower / "a"), str(root / "a"), os.lstat(root / "a"))


def test_no_copy_up_below_an_opaque_directory_or_for_link_targets(root: Path, tmp_path: Path) -> None:
    lower = tmp_path / "lower"
    lower.mkdir()
    apply(
        lower,
        [dir_("d"), dir_("d/sub", mode=0o700, uid=9), (entry("d/sub/x"), b"x"), dir_("t"), (entry("t/file"), b"t")],
    )
    handler = archive.OverlayWhiteouts(lower=str(lower))
    apply(root, [dir_("d"), (entry("d/.wh..wh..opq"), b""), (entry("d/sub/new"), b"n")], handler)
    sub = os.lstat(root / "d/sub")
    assert (stat.S_IMODE(sub.st_mode), sub.st_uid) == (0o755, 0), "hidden lower content is not copied up"
    with pytest.raises(InvalidParameter, match="no such file in the layer"):
        apply(root, [(entry("h", tarfile.LNKTYPE, linkname="t/file"), None)], handler)
    assert not (root / "t").exists()


def test_headerless_directories_keep_their_mtime(root: Path) -> None:
    apply(root, [dir_("d", mtime=1234), (entry("d/gone"), b"g"), dir_("e", mtime=5678)])
    apply(root, [(entry("d/.wh.gone"), b""), (entry("e/new"), b"n")])
    assert os.lstat(root / "d").st_mtime == 1234 and os.lstat(root / "e").st_mtime == 5678


def test_differs_and_export_changes_leave_bookkeeping_xattrs_out(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    for base in (old, new):
        base.mkdir()
        (base / "f").write_text("f")
        os.utime(base / "f", ns=(10**18, 10**18))
    os.setxattr(new / "f", "trusted.overlay.origin", b"x")
    a, b = os.lstat(old / "f"), os.lstat(new / "f")
    overlay = archive.OverlayWhiteouts()
    assert archive.differs(str(old / "f"), a, str(new / "f"), b)
    assert not archive.differs(str(old / "f"), a, str(new / "f"), b, keep_xattr=overlay.keep_xattr)
    found = archive.changes(new, None)
    plain = list(tarfile.open(fileobj=io.BytesIO(archive.export_changes(new, found).read())))
    filtered = list(tarfile.open(fileobj=io.BytesIO(archive.export_changes(new, found, whiteout=overlay).read())))
    assert "SCHILY.xattr.trusted.overlay.origin" in plain[0].pax_headers
    assert not filtered[0].pax_headers


@pytest.mark.parametrize(
    "entries",
    [
        [(entry("../x"), b"evil")],
        [dir_("a"), (entry("a/../../x"), b"evil")],
        [(entry("h", tarfile.LNKTYPE, linkname="../outside/t"), None)],
        [(entry("h", tarfile.LNKTYPE, linkname="nonexistent"), None)],
        [(entry(".wh.."), b"")],
        [(entry("l", tarfile.SYMTYPE, 0o777, linkname="l"), None), (entry("l/x"), b"loop")],
    ],
    ids=["dotdot", "dotdot-deep", "hardlink-out", "hardlink-missing", "whiteout-dotdot", "symlink-loop"],
)
def test_hostile_rejected(root: Path, outside: Path, entries) -> None:
    before = snapshot(outside)
    with pytest.raises(InvalidParameter):
        apply(root, entries)
    assert snapshot(outside) == before


def test_symlinks_resolve_inside_root(root: Path, outside: Path) -> None:
    before = snapshot(outside)
    apply(
        root,
        [
            (entry("abs", tarfile.SYMTYPE, 0o777, linkname=str(outside)), None),
            (entry("abs/x"), b"1"),
            (entry("rel", tarfile.SYMTYPE, 0o777, linkname="../../../.."), None),
            (entry("rel/y"), b"2"),
            (entry("f", tarfile.SYMTYPE, 0o777, linkname=f"{outside}/t"), None),
            (entry("f"), b"3"),
            (entry("h", tarfile.LNKTYPE, linkname="abs/x"), None),
        ],
    )
    assert snapshot(outside) == before
    inside = root / str(outside).lstrip("/")
    assert (inside / "x").read_bytes() == b"1" and (root / "y").read_bytes() == b"2"
    assert (root / "f").read_bytes() == b"3" and os.lstat(root / "h").st_ino == os.lstat(inside / "x").st_ino


def test_malformed(root: Path) -> None:
    good = make_tar([(entry("a"), b"x" * 2000), (entry("b"), b"y")])
    bad_header = bytearray(good)
    bad_header[512 * 5 + 148] ^= 0xFF
    for data in (b"", b"garbage" * 200, good[:1000], good[: 512 * 5 + 100], bytes(bad_header)):
        with pytest.raises(InvalidParameter, match="invalid layer tar"):
            archive.apply_layer(root, io.BytesIO(data))


def test_gzip_and_trailing_data_drained(root: Path) -> None:
    stream = io.BytesIO(make_tar([(entry("a"), b"x")]) + bytes(50_000))
    archive.apply_layer(root, stream)
    assert stream.read() == b""
    archive.apply_layer(root, io.BytesIO(gzip.compress(make_tar([(entry("b"), b"y")]))))
    assert (root / "b").read_bytes() == b"y"


def test_zero_runs_become_holes(root: Path) -> None:
    apply(root, [(entry("z"), bytes(4 << 20) + b"end")])
    st = os.lstat(root / "z")
    assert st.st_size == (4 << 20) + 3 and st.st_blocks * 512 < 1 << 20


# -- changes ----------------------------------------------------------------


def test_changes_follow_docker_rules(tmp_path: Path) -> None:
    """
    old: same/ dir2file/ file2dir gone/sub/f kids/k lnk->aaaa sec
    new: same/ (mtime only)  dir2file (file)  file2dir/child  kids/k (+xattr)  lnk->bbbb  sec (same second)
    """
    old, new = tmp_path / "old", tmp_path / "new"
    for base in (old, new):
        for d in ("same", "kids"):
            (base / d).mkdir(parents=True, exist_ok=True)
        (base / "kids/k").write_text("k")
        os.symlink("aaaa", base / "lnk")
        (base / "sec").write_text("s")
    (old / "dir2file").mkdir()
    (old / "file2dir").write_text("")
    (old / "gone/sub").mkdir(parents=True)
    (old / "gone/sub/f").write_text("x")
    os.utime(old / "sec", ns=(5 * 10**9, 5 * 10**9))
    (new / "dir2file").write_text("f")
    (new / "file2dir").mkdir()
    (new / "file2dir/child").write_text("c")
    os.unlink(new / "lnk")
    os.symlink("bbbb", new / "lnk")
    os.utime(new / "lnk", ns=(os.lstat(old / "lnk").st_mtime_ns,) * 2, follow_symlinks=False)
    os.utime(new / "sec", ns=(5 * 10**9 + 123, 5 * 10**9 + 123))  # same second vs. whole second: unchanged
    os.utime(new / "same", ns=(1, 1))  # a directory's mtime alone: unchanged
    os.setxattr(new / "kids/k", "user.x", b"1")
    assert kinds(archive.changes(new, old)) == [
        ("/dir2file", 0),
        ("/file2dir", 0),
        ("/file2dir/child", 1),
        ("/gone", 2),
        ("/kids", 0),
        ("/kids/k", 0),
        ("/lnk", 0),
    ]
    assert kinds(archive.changes(old, None)) == [
        ("/dir2file", 1),
        ("/file2dir", 1),
        ("/gone", 1),
        ("/gone/sub", 1),
        ("/gone/sub/f", 1),
        ("/kids", 1),
        ("/kids/k", 1),
        ("/lnk", 1),
        ("/same", 1),
        ("/sec", 1),
    ]


def test_changes_size_counts_hardlinks_once(tmp_path: Path) -> None:
    new = tmp_path / "n"
    new.mkdir()
    (new / "a").write_bytes(b"x" * 100)
    os.link(new / "a", new / "b")
    (new / "d").mkdir()
    assert archive.changes_size(new, archive.changes(new, None)) == 100


# -- export -----------------------------------------------------------------


def test_export_is_deterministic_and_round_trips(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    write_tree(src, seed=1, files=150, caps=Capabilities())
    first = tar_of(src)
    assert tar_of(src) == first
    archive.apply_layer(dst, io.BytesIO(first))
    assert hashlib.sha256(tar_of(dst)).digest() == hashlib.sha256(first).digest()
    assert snapshot(dst) == snapshot(src)
    assert archive.changes(dst, src) == []
    stream = archive.export_changes(src, archive.changes(src, None))
    assert stream.read() == first
    stream.close()


def test_export_headers_are_normalised(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d/f").write_text("f")
    os.link(src / "d/f", src / "d/g")
    os.utime(src / "d/f", ns=(1_700_000_000_999_999_999,) * 2)
    members = list(tarfile.open(fileobj=io.BytesIO(tar_of(src))))
    assert [(m.name, m.type) for m in members] == [("d", D), ("d/f", tarfile.REGTYPE), ("d/g", tarfile.LNKTYPE)]
    assert all(m.uname == m.gname == "" and isinstance(m.mtime, int) for m in members)
    assert members[1].mtime == 1_700_000_000 and members[2].linkname == "d/f"


def test_export_changes_whiteouts(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    for base in (old, new):
        (base / "d").mkdir(parents=True)
        (base / "d/x").write_text("x")
    (new / "d/x").unlink()
    stream = archive.export_changes(new, archive.changes(new, old))
    members = list(tarfile.open(fileobj=io.BytesIO(stream.read())))
    assert [(m.name, m.size, m.mode, m.mtime) for m in members][1:] == [("d/.wh.x", 0, 0, 0)]


def test_export_diff_is_tree_or_changes_and_releases_on_error(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    for base in (old, new):
        (base / "d").mkdir(parents=True)
        (base / "d/x").write_text("x")
    (new / "d/x").unlink()
    calls: list[int] = []
    stream = archive.export_diff(new, old, on_close=lambda: calls.append(1))
    assert [m.name for m in tarfile.open(fileobj=io.BytesIO(stream.read()))] == ["d", "d/.wh.x"]
    stream.close()
    assert archive.export_diff(new, None).read() == tar_of(new)
    with pytest.raises(FileNotFoundError):
        archive.export_diff(tmp_path / "missing", old, on_close=lambda: calls.append(2))
    assert calls == [1, 2]


def test_sparse_export_is_canonical_and_gnu_compatible(tmp_path: Path) -> None:
    sparse, dense = tmp_path / "sparse", tmp_path / "dense"
    for d in (sparse, dense):
        d.mkdir()
    with open(sparse / "f", "wb") as f:
        f.truncate(8 << 20)
        f.seek(3 << 20)
        f.write(b"data" * 1000)
    content = (sparse / "f").read_bytes()
    (dense / "f").write_bytes(content)
    for p in (sparse / "f", dense / "f"):
        os.utime(p, ns=(10**18, 10**18))
    data = tar_of(sparse)
    assert data == tar_of(dense), "holes come from content, not allocation"
    assert len(data) < 64 << 10
    out = tmp_path / "gnu"
    out.mkdir()
    subprocess.run(["tar", "-x", "-C", str(out)], input=data, check=True)
    assert (out / "f").read_bytes() == content
    member = next(iter(tarfile.open(fileobj=io.BytesIO(data))))
    assert member.name == "f" and member.size == 8 << 20 and member.sparse


def test_export_closes_once(tmp_path: Path) -> None:
    calls = []
    stream = archive.export_tree(tmp_path, on_close=lambda: calls.append(1))
    stream.close()
    stream.close()
    assert calls == [1]


def test_non_utf8_names_round_trip(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    name = os.fsdecode(b"caf\xe9-latin1")
    (src / name).write_text("x")
    archive.apply_layer(dst, io.BytesIO(tar_of(src)))
    assert os.listdir(os.fsencode(dst)) == [b"caf\xe9-latin1"]


def test_pool_and_sequential_apply_agree_on_reused_names(tmp_path: Path) -> None:
    """An empty target is written by a pool of threads: names a tar reuses (a file again, a
    directory or a parent where a file was, a hard link to a file still being written, a
    whiteout of one) must end as when every entry is applied in order."""
    entries = [(entry(f"many/f{i}"), bytes([i % 251]) * (i * 37 % 5000)) for i in range(300)]
    entries += [
        (entry("dup"), b"first"),
        (entry("dup"), b"second"),
        (entry("was-file"), b"x"),
        dir_("was-file"),
        (entry("parent"), b"y"),
        (entry("parent/child"), b"z"),
        (entry("target"), b"linked"),
        (entry("hard", tarfile.LNKTYPE, linkname="target"), None),
        (entry("gone"), b"soon"),
        (entry(".wh.gone"), b""),
        (entry("many/f7"), b"rewritten"),
    ]
    pooled, sequential = tmp_path / "pooled", tmp_path / "sequential"
    pooled.mkdir()
    sequential.mkdir()
    (sequential / "keep").write_bytes(b"")  # not empty: applied entry by entry
    apply(pooled, entries)
    apply(sequential, entries)
    os.unlink(sequential / "keep")
    assert snapshot(pooled) == snapshot(sequential)
    assert (pooled / "dup").read_bytes() == b"second" and (pooled / "parent/child").read_bytes() == b"z"
    assert os.lstat(pooled / "hard").st_ino == os.lstat(pooled / "target").st_ino
    assert not (pooled / "gone").exists() and (pooled / "many/f7").read_bytes() == b"rewritten"


def _tarfile_export(src: Path) -> bytes:
    """The same tree written by ``tarfile`` (PAX) from the normalised headers: the reference
    :class:`archive.TarStream`'s own header writer must reproduce byte for byte."""
    out = io.BytesIO()
    firsts: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for path in sorted(src.rglob("*"), key=lambda p: p.relative_to(src).parts):
            name, st = str(path.relative_to(src)), os.lstat(path)
            info = tarfile.TarInfo(name)
            info.mode, info.uid, info.gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
            info.mtime, info.uname, info.gname = st.st_mtime_ns // 10**9, "", ""
            info.pax_headers = {
                f"SCHILY.xattr.{k}": os.getxattr(path, k, follow_symlinks=False).decode()
                for k in sorted(os.listxattr(path, follow_symlinks=False))
            }
            content = None
            first = firsts.setdefault((st.st_dev, st.st_ino), name) if st.st_nlink > 1 else name
            if not stat.S_ISDIR(st.st_mode) and first != name:
                info.type, info.linkname = tarfile.LNKTYPE, first
            elif stat.S_ISREG(st.st_mode):
                info.size, content = st.st_size, io.BytesIO(path.read_bytes())
            elif stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
            elif stat.S_ISLNK(st.st_mode):
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
            elif stat.S_ISFIFO(st.st_mode):
                info.type = tarfile.FIFOTYPE
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
                info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            tf.addfile(info, content)
    return out.getvalue()


def test_export_writer_matches_tarfile_and_every_way_out_agrees(tmp_path: Path) -> None:
    """Export headers are built by hand (not by ``tarfile``) and file content goes out as spans
    (``sendfile`` in ``write_to``, ``preadv`` in ``readinto``): the bytes must be tarfile's,
    whichever way the stream is consumed, and mixing the ways mid-stream must not lose a byte."""
    src = tmp_path / "src"
    src.mkdir()
    write_tree(src, seed=5, files=60, caps=Capabilities(hardlinks=True, fifos=True))
    (src / ("long-" * 30)).write_bytes(b"long name")  # > 100 characters: a pax path record
    os.symlink("t" * 150, src / "long-link")  # a pax linkpath record
    (src / "big").write_bytes(os.urandom(3 << 20))  # several spans' worth, no zero block
    try:
        os.setxattr(src / "big", "user.k", b"v")
    except OSError:
        pass  # no user xattrs on this filesystem: records are checked by the conformance suite
    os.utime(src / "big", ns=(1_700_000_000_500_000_000,) * 2)
    expected = _tarfile_export(src)

    assert tar_of(src) == expected
    stream = archive.export_tree(src)
    assert io.BufferedReader(stream, 1 << 16).read() == expected  # readinto
    stream.close()
    sink = tmp_path / "sink"
    with open(sink, "wb") as out:
        stream = archive.export_tree(src)
        head = stream.read(700)  # part of a header and part of a file, then the rest sent
        assert stream.write_to(out.fileno()) == len(expected) - len(head)
        stream.close()
    assert head + sink.read_bytes() == expected
    read_fd, write_fd = os.pipe()  # a pipe too (the daemon's response stream): sendfile into it
    with os.fdopen(read_fd, "rb") as reader:
        got: list[bytes] = []
        drain = threading.Thread(target=lambda: got.append(reader.read()))
        drain.start()
        stream = archive.export_tree(src)
        stream.write_to(write_fd)
        stream.close()
        os.close(write_fd)
        drain.join()
    assert got == [expected]
