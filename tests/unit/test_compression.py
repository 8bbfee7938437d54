"""dockyard.compression and dockyard.pipeline: codecs by magic, bounded output, deterministic
writers, hashing beside the work, kernel copies."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import zlib

import pytest
import zstandard

from dockyard import compression
from dockyard.compression import CodecError, decompressing_reader, gzip_writer, sniff, zstd_writer
from dockyard.pipeline import HashingReader, ThreadedHash, copy_range, region_reader, send_range

DATA = os.urandom(300_000) + b"repetitive text\n" * 200_000


def read_all(read) -> bytes:
    parts = []
    while chunk := read(1 << 20):
        assert len(chunk) <= (1 << 20) + 64 * 1024
        parts.append(chunk)
    return b"".join(parts)


@pytest.mark.parametrize(
    "kind, compress",
    [
        ("", lambda d: d),
        ("gzip", lambda d: gzip.compress(d, mtime=0)),
        ("gzip", lambda d: gzip.compress(d[:1000]) + gzip.compress(d[1000:]) + bytes(100)),  # two members, padding
        ("zstd", lambda d: zstandard.ZstdCompressor().compress(d)),
        ("bzip2", bz2.compress),
        ("xz", lzma.compress),
    ],
)
def test_every_codec_is_recognised_and_undone(kind, compress) -> None:
    blob = compress(DATA)
    assert sniff(blob[:6]) == kind
    source = io.BytesIO(blob)
    assert read_all(decompressing_reader(lambda n: source.read(min(n, 7777)))) == DATA


def test_output_is_bounded_and_truncation_refused() -> None:
    bomb = gzip.compress(bytes(64 << 20))  # 64 MiB of zeros in ~64 KiB
    assert read_all(decompressing_reader(io.BytesIO(bomb).read)) == bytes(64 << 20)
    for blob in (
        gzip.compress(DATA)[:-10],
        bz2.compress(DATA)[:-10],
        lzma.compress(DATA)[:-10],
        gzip.compress(DATA)[:100] + b"\x00junk" * 50,
    ):
        with pytest.raises(CodecError):
            read_all(decompressing_reader(io.BytesIO(blob).read))


def test_writers_are_deterministic_whatever_the_thread_count() -> None:
    data = DATA * 4
    outputs = []
    for threads in (1, 2, 3):
        out = io.BytesIO()
        with gzip_writer(out, level=1, threads=threads) as w:
            for i in range(0, len(data), compression.CHUNK):
                w.write(data[i : i + compression.CHUNK])
        assert not out.closed
        outputs.append(out.getvalue())
    assert outputs[0] == outputs[1] == outputs[2]
    assert zlib.decompress(outputs[0], 31) == data  # one valid gzip member
    assert outputs[0][4:8] == bytes(4)  # no timestamp
    zstd_outputs = []
    for threads in (1, 2):
        out = io.BytesIO()
        with zstd_writer(out, threads=threads) as w:
            w.write(data)
        zstd_outputs.append(out.getvalue())
    assert zstd_outputs[0] == zstd_outputs[1]
    assert zstandard.ZstdDecompressor().decompressobj().decompress(zstd_outputs[0]) == data


def test_threaded_hash_and_hashing_reader(tmp_path) -> None:
    pieces = [b"small", os.urandom(200_000), b"", os.urandom(3 << 20), b"tail"]
    with ThreadedHash() as h:
        for piece in pieces:
            h.update(piece)
        assert h.hexdigest() == hashlib.sha256(b"".join(pieces)).hexdigest()
    copy = io.BytesIO()
    with ThreadedHash("sha512") as h:
        reader = HashingReader(io.BytesIO(DATA).read, h, copy_to=copy)
        first = reader.read(1000)
        reader.drain()
        assert first == DATA[:1000] and copy.getvalue() == DATA
        assert h.hexdigest() == hashlib.sha512(DATA).hexdigest()


def test_kernel_copies(tmp_path) -> None:
    src = tmp_path / "src"
    src.write_bytes(DATA)
    with open(src, "rb") as f, open(tmp_path / "dst", "wb") as out:
        out.write(b"head:")
        out.flush()
        copy_range(f.fileno(), out.fileno(), 1000, 50_000)
        assert read_all(region_reader(f, 7, 100)) == DATA[7:107]
    assert (tmp_path / "dst").read_bytes() == b"head:" + DATA[1000:51_000]
    r, w = os.pipe()
    with open(src, "rb") as f:
        send_range(f.fileno(), w, 5, 4000)
    os.close(w)
    with os.fdopen(r, "rb") as pipe:
        assert pipe.read() == DATA[5:4005]
