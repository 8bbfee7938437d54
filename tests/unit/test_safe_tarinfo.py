"""archive.SafeTarInfo reads pax headers as tarfile does, in linear time (issue 13, item 8: CVE-2024-6232)."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from dockyard.archive import SafeTarInfo


def members(data: bytes, tarinfo=tarfile.TarInfo) -> list[tuple]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|*", tarinfo=tarinfo) as tar:
        return [
            (
                m.name,
                m.type,
                m.size,
                m.mode,
                m.uid,
                m.gid,
                m.mtime,
                m.linkname,
                m.uname,
                m.gname,
                dict(m.pax_headers),
                m.sparse,
                m.offset_data,
            )
            for m in tar
        ]


def python_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, extra in (
            ("d/" + "long" * 80 + "/f", {}),
            ("é-ü/ä", {"SCHILY.xattr.user.k": "v" * 300}),
            ("big", {"size": "20", "comment": "a=b=c"}),
        ):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.pax_headers = 20, 1700000000.25, extra
            tar.addfile(info, io.BytesIO(b"x" * 20))
        link = tarfile.TarInfo("l")
        link.type, link.linkname = tarfile.SYMTYPE, "target/" + "t" * 200
        tar.addfile(link)
    return buf.getvalue()


def gnu_sparse_tars(tmp_path: Path) -> list[bytes]:
    sparse = tmp_path / "src" / "sparse"
    sparse.parent.mkdir()
    with open(sparse, "wb") as f:
        for offset in (0, 1 << 20, 3 << 20):
            f.seek(offset)
            f.write(b"data" * 1024)
        f.truncate(4 << 20)
    out = []
    for version in ("0.0", "0.1", "1.0"):
        done = subprocess.run(
            [
                "tar",
                "-C",
                str(sparse.parent),
                "--format=posix",
                "--sparse",
                f"--sparse-version={version}",
                "-cf",
                "-",
                "sparse",
            ],
            capture_output=True,
            check=True,
        )
        out.append(done.stdout)
    return out


def test_same_members_as_tarfile(tmp_path):
    for data in [python_tar(), *gnu_sparse_tars(tmp_path)]:
        assert members(data, SafeTarInfo) == members(data)


def test_sparse_contents_survive(tmp_path):
    for data in gnu_sparse_tars(tmp_path):
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:", tarinfo=SafeTarInfo) as tar:
            member = tar.getmember("sparse")
            content = tar.extractfile(member).read()
        assert len(content) == 4 << 20 and content[1 << 20 : (1 << 20) + 8] == b"datadata"
        assert content[:4] == b"data" and content[(1 << 20) - 8 : 1 << 20] == bytes(8)


def pax_tar(record_area: bytes) -> bytes:
    """A tar whose first member has a hand-made pax extended header."""
    info = tarfile.TarInfo("././@PaxHeader")
    info.type, info.size = tarfile.XHDTYPE, len(record_area)
    header = info.tobuf(tarfile.USTAR_FORMAT)
    body = record_area + bytes(-len(record_area) % 512)
    member = tarfile.TarInfo("file").tobuf(tarfile.USTAR_FORMAT)
    return header + body + member + bytes(1024)


def test_quadratic_headers_are_read_in_one_pass():
    """The CVE-2024-6232 shapes: long digit runs (the hdrcharset search and the sparse 0.0
    offsets backtrack over them in CPython < 3.11.10).  SafeTarInfo reads each in one pass;
    the stdlib's TarInfo is not tried here, it would hold the test for hours."""
    shapes = {
        b"1" * (4 << 20): ["file"],  # no record: ignored, as tarfile does
        b"9" * (4 << 20) + b" hdrcharset=BINARY\n": ["file"],
        b"1 " * (2 << 20): "refused",  # a record whose length is wrong
        b"21 GNU.sparse.size=1\n" + b"1" * (4 << 20): ["file"],
        b"21 GNU.sparse.size=1\n" + b"9 " * (2 << 20): "refused",
    }
    for area, expected in shapes.items():
        try:
            found = [m[0] for m in members(pax_tar(area), SafeTarInfo)]
        except tarfile.ReadError:
            found = "refused"
        assert found == expected, area[:40]


@pytest.mark.parametrize("area", [b"30 path=short\n", b"0 path=x\n", b"12 pathxx\nxx\n", b"5 =x\n\n"])
def test_malformed_records_are_refused(area):
    with pytest.raises(tarfile.ReadError):
        members(pax_tar(area), SafeTarInfo)


def test_records_apply():
    record = b"path=renamed/by/pax\n"
    found = members(pax_tar(f"{len(record) + 3} ".encode() + record), SafeTarInfo)
    assert found[0][0] == "renamed/by/pax" and found[0][10] == {"path": "renamed/by/pax"}
