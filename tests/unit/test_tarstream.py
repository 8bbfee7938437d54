"""dockyard.tarstream: the reader against GNU tar's formats, its refusals, and the header writer."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from dockyard import archive, tarstream
from dockyard.tarstream import TarFormatError, TarReader
from dockyard.testing.conformance import entry, make_tar, snapshot

GNU_TAR = "tar"


def read_all(data: bytes) -> list[tuple[tarstream.Entry, bytes]]:
    reader = TarReader(io.BytesIO(data).read, chunk=4096)  # small chunks: headers and content cross them
    out = []
    while (e := reader.next()) is not None:
        out.append((e, b"".join(bytes(v) for v in reader.segments()) if e.type == tarstream.REG else b""))
    return out


def make_source(root: Path) -> None:
    """A tree holding what each tar format encodes differently."""
    (root / "d" / ("long-directory-name-" * 6)).mkdir(parents=True)
    (root / "d" / ("long-directory-name-" * 6) / ("file-" * 25)).write_bytes(b"deep\n")
    (root / "naïve-ünïcode").write_bytes(b"utf-8 name\n")
    os.symlink("t" * 150, root / "long-link")
    (root / "plain").write_bytes(os.urandom(70_000))
    os.link(root / "plain", root / "hard")
    os.mkfifo(root / "fifo")
    with open(root / "sparse", "wb") as f:  # data, a 3 MiB hole, data, a trailing hole
        f.write(b"a" * 5000)
        f.seek(3 << 20)
        f.write(b"b" * 7000)
        f.truncate(8 << 20)
    os.chown(root / "plain", 3_000_000, 3_000_001)  # beyond 7 octal digits: base-256 or pax
    os.chmod(root / "d", 0o2750)
    os.setxattr(root / "plain", "user.note", b"\xffbinary\x00")
    for path in root.rglob("*"):
        os.utime(path, (1_600_000_000, 1_600_000_000), follow_symlinks=False)


@pytest.mark.parametrize(
    "options",
    [
        ["--format=gnu"],
        ["--format=gnu", "--sparse"],
        ["--format=pax", "--xattrs"],
        ["--format=pax", "--sparse", "--sparse-version=0.0"],
        ["--format=pax", "--sparse", "--sparse-version=0.1"],
        ["--format=pax", "--sparse", "--sparse-version=1.0", "--xattrs"],
    ],
    ids=["gnu", "gnu-sparse", "pax", "pax-sparse-0.0", "pax-sparse-0.1", "pax-sparse-1.0"],
)
def test_gnu_tar_formats_apply_as_gnu_tar_extracts(tmp_path: Path, options: list[str]) -> None:
    source = tmp_path / "source"
    source.mkdir()
    make_source(source)
    tar = tmp_path / "t.tar"
    subprocess.run([GNU_TAR, "-C", str(source), "--numeric-owner", *options, "-cf", str(tar), "."], check=True)
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.mkdir()
    theirs.mkdir()
    subprocess.run(
        [
            GNU_TAR,
            "-C",
            str(theirs),
            "--numeric-owner",
            "--same-owner",
            "-p",
            "--xattrs",
            "--xattrs-include=user.*",
            "-xf",
            str(tar),
        ],
        check=True,
    )
    with open(tar, "rb") as f:
        archive.apply_layer(ours, f)
    assert snapshot(ours) == snapshot(theirs)
    if "--sparse" in options:
        assert os.lstat(ours / "sparse").st_blocks * 512 < 1 << 20  # the holes stay holes


def test_header_writer_matches_tarfile() -> None:
    cases = [
        dict(name=b"etc/passwd", mode=0o644, uid=0, gid=0, size=123, mtime=1_600_000_000, kind=b"0"),
        dict(name=b"bin/", mode=0o4755, uid=1000, gid=100, size=0, mtime=0, kind=b"5"),
        dict(name=b"dev/null", mode=0o666, uid=0, gid=0, size=0, mtime=7, kind=b"3", devmajor=1, devminor=3),
        dict(name=b"lib/x", mode=0o777, uid=0, gid=0, size=0, mtime=9, kind=b"2", linkname=b"../y"),
    ]
    for case in cases:
        info = tarfile.TarInfo(case["name"].decode())
        info.mode, info.uid, info.gid, info.size, info.mtime = (
            case["mode"],
            case["uid"],
            case["gid"],
            case["size"],
            case["mtime"],
        )
        info.type, info.linkname = case["kind"], case.get("linkname", b"").decode()
        info.devmajor, info.devminor = case.get("devmajor", 0), case.get("devminor", 0)
        info.uname = info.gname = ""
        assert tarstream.ustar_header(**case) == info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    info = tarfile.TarInfo("x" * 150)
    info.pax_headers = {"SCHILY.xattr.user.a": "\udcff\x01"}
    info.uname = info.gname = ""
    expected = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    records = [("SCHILY.xattr.user.a", "\udcff\x01"), ("path", "x" * 150)]
    assert tarstream.pax_header(records) + tarstream.ustar_header(b"x" * 100, 0o644, 0, 0, 0, 0, b"0") == expected


def test_reader_fields_and_global_headers() -> None:
    out = io.BytesIO()
    with tarfile.open(
        fileobj=out,
        mode="w",
        format=tarfile.PAX_FORMAT,
        pax_headers={"comment": "global, ignored as Docker ignores it"},
    ) as tf:
        info = entry("f", mtime=1_600_000_000, xattrs={"user.k": b"v"})
        info.pax_headers["mtime"] = "1600000000.123456789"
        info.size = 3
        tf.addfile(info, io.BytesIO(b"abc"))
        tf.addfile(entry("dev", tarfile.CHRTYPE, dev=(1, 5)))
        tf.addfile(entry("old-dir/", tarfile.AREGTYPE))
    (f, content), (dev, _), (old, _) = read_all(out.getvalue())
    assert (f.name, f.type, f.size, f.mtime_ns, f.xattrs, content) == (
        "f",
        "0",
        3,
        1_600_000_000_123_456_789,
        [("user.k", b"v")],
        b"abc",
    )
    assert (dev.type, dev.devmajor, dev.devminor) == ("3", 1, 5)
    assert old.type == "5"  # a v7 directory: a regular type and a trailing slash


def _with_checksum(block: bytearray) -> bytes:
    block[148:156] = b"        "
    block[148:155] = b"%06o\0" % sum(block)
    return bytes(block)


def test_reader_refuses_malformed() -> None:
    good = make_tar([(entry("a"), b"x" * 600), (entry("b"), b"y")])  # headers at 0 and 1536
    bad_number = bytearray(good[:512])
    bad_number[124:136] = b"0000000+001\0"
    bad_checksum = bytearray(good)
    bad_checksum[1536] ^= 0x20  # the name changes, the stored checksum does not
    cases = {
        "not a valid tar archive": b"garbage" * 100,
        "empty file": b"",
        "unexpected end of data": good[:700],
        "truncated header": good[: 1536 + 100],
        "invalid number": _with_checksum(bad_number) + good[512:],
        "bad checksum": bytes(bad_checksum),
    }
    for message, data in cases.items():
        with pytest.raises(TarFormatError, match=message):
            read_all(data)


def test_reader_refuses_hostile_extended_headers() -> None:
    def pax(records: bytes) -> bytes:
        head = tarstream.ustar_header(b"././@PaxHeader", 0, 0, 0, len(records), 0, b"x")
        return head + records + bytes(-len(records) % 512) + tarstream.ustar_header(b"f", 0o644, 0, 0, 0, 0, b"0")

    assert read_all(pax(b"11 path=ok\n") + bytes(1024))[0][0].name == "ok"
    for records in (
        b"99 path=short\n",
        b"12 path=long\n",
        b"x path=y\n",
        b"10 =empty\n",
        b"11 uid=abc\n",
        b"%d comment=%s\n" % (len(b"9999999 comment=\n") + (2 << 20), b"z" * (2 << 20)),
    ):
        with pytest.raises(TarFormatError):
            read_all(pax(records) + bytes(1024))
    bad_map = pax(b"22 GNU.sparse.major=1\n22 GNU.sparse.minor=0\n30 GNU.sparse.realsize=1000\n")
    with pytest.raises(TarFormatError):  # the map says more than the content holds
        read_all(
            bad_map[:-512]
            + tarstream.ustar_header(b"f", 0o644, 0, 0, 512, 0, b"0")
            + b"1\n0\n4000\n".ljust(512, b"\0")
            + bytes(1024)
        )


def test_seek_skips_content_and_offsets_point_at_it() -> None:
    data = make_tar([(entry("a"), b"A" * 5000), (entry("b"), b"B" * 70_000), (entry("c"), b"C")])
    f = io.BytesIO(data)
    reads: list[int] = []

    def read(n: int) -> bytes:
        reads.append(n)
        return f.read(n)

    reader = TarReader(read, chunk=512, seek=lambda n: f.seek(n, os.SEEK_CUR))
    found = {}
    while (e := reader.next()) is not None:
        found[e.name] = (reader.offset, e.size)
    for name, (offset, size) in found.items():
        assert data[offset : offset + size] == name.upper().encode() * size
    assert sum(reads) < 10 * 512  # headers only
