"""Compression of image data: recognising it, undoing it, and gzip or zstd for push.

One home for the codecs every data path uses (import, load, apply, pull, push).

gzip
    ISA-L (the ``isal`` package, python-isal) when it is installed, else the standard
    library's zlib.  Measured on a 100 MB rootfs tar on this project's 2-core machine:
    level 1 compression 0.23 s of CPU with ISA-L, 0.59 s with zlib-ng, 1.5 s with zlib
    (ISA-L's output 2 % larger than zlib's); decompression 0.15, 0.13 and 0.21 s.  The
    zlib-ng bindings' threaded writer is not deterministic across thread counts, ISA-L's
    is, and a pushed layer must get the same digest every time.  Push compresses with
    :func:`gzip_writer`: 1 MiB blocks deflated on several threads, each primed with the
    last 32 KiB of the block before (pigz's scheme), into one valid gzip member whose
    bytes depend only on the input and the level.
zstd
    the ``zstandard`` package: layers of media type ``...tar+zstd`` are pulled, and
    pushed when asked (``compression=zstd`` in the distribution driver's options).
bzip2, xz
    the standard library, for ``docker import`` and ``docker load`` of such tarballs.
"""

from __future__ import annotations

import bz2
import lzma
import os
import zlib
from typing import Any, BinaryIO, Callable

try:  # ISA-L: several times zlib's speed, same format
    from isal import igzip_threaded as _igzip_threaded
    from isal import isal_zlib as _gzip_zlib
except ImportError:  # pragma: no cover - the stdlib fallback
    _igzip_threaded = None  # type: ignore[assignment]
    _gzip_zlib = zlib  # type: ignore[misc]  # the same interface, another module

__all__ = [
    "CHUNK",
    "CodecError",
    "Decompressor",
    "GZIP",
    "ZSTD",
    "decompressing_reader",
    "gzip_backend",
    "gzip_writer",
    "sniff",
    "zstd_writer",
]

CHUNK = 1 << 20
GZIP, ZSTD, BZIP2, XZ = "gzip", "zstd", "bzip2", "xz"
_MAGIC = [(b"\x1f\x8b", GZIP), (b"\x28\xb5\x2f\xfd", ZSTD), (b"BZh", BZIP2), (b"\xfd7zXZ\x00", XZ)]
#: bytes :func:`sniff` needs to tell every format apart
SNIFF_BYTES = 6


class CodecError(ValueError):
    """Compressed data that does not decompress (corrupt, truncated, or a codec not installed)."""


def gzip_backend() -> str:
    """Which gzip implementation is in use (``isal`` or ``zlib``), for ``docker info`` and benchmarks."""
    return "isal" if _igzip_threaded is not None else "zlib"


def sniff(head: bytes) -> str:
    """The compression a stream starting with ``head`` uses: gzip, zstd, bzip2, xz, or "" (none)."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return ""


class Decompressor:
    """Incremental gzip, bzip2 or xz decompression: :meth:`feed` compressed bytes, get plain bytes.

    gzip streams of several members (concatenated files, some builders' output) are
    read whole.  Output per call is bounded by ``limit`` (input not used yet waits
    until :meth:`more` is called), so a small input cannot expand into unbounded memory.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._pending = b""  # gzip input held back by the output limit
        self._z: Any  # zlib's (or isal's), bz2's or lzma's decompressor: alike, not one type
        if kind == GZIP:
            self._z = _gzip_zlib.decompressobj(31)
        elif kind == BZIP2:
            self._z = bz2.BZ2Decompressor()
        elif kind == XZ:
            self._z = lzma.LZMADecompressor()
        else:
            raise CodecError(f"no incremental decompressor for {kind!r}")

    def feed(self, data: bytes, limit: int = CHUNK) -> bytes:
        """Decompress ``data`` (after what is held back); at most ``limit`` bytes out."""
        try:
            if self.kind != GZIP:
                return self._z.decompress(data, limit)
            if self._pending:
                data, self._pending = self._pending + data, b""
            if self._z.eof:  # after a member: zero padding (as gzip(1) allows), or the next member
                data = data.lstrip(b"\0")
                if not data:
                    return b""
                self._z = _gzip_zlib.decompressobj(31)
            out = self._z.decompress(data, limit)
            self._pending = self._z.unconsumed_tail or self._z.unused_data
            return out
        except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError) as exc:
            raise CodecError(f"invalid {self.kind} data: {exc}") from None
        except Exception as exc:  # isal's own error class
            raise CodecError(f"invalid {self.kind} data: {exc}") from None

    def more(self, limit: int = CHUNK) -> bytes:
        """Output held back by the limit (``b""`` when there is none)."""
        if self.kind == GZIP:
            return self.feed(b"", limit) if self._pending else b""
        if self._z.eof or self._z.needs_input:
            return b""
        return self.feed(b"", limit)

    def finish(self) -> None:
        """Check that the input ended where the compressed stream ends."""
        if not self._z.eof:
            raise CodecError(f"invalid {self.kind} data: unexpected end of stream")


def decompressing_reader(read: Callable[[int], bytes], head: bytes = b"") -> Callable[[int], bytes]:
    """A ``read(n)`` of the plain bytes of a stream whose own ``read`` is given.

    The compression is recognised from the first bytes (``head``: bytes already read
    from the stream, handed back first).  The returned function may give fewer bytes
    than asked, and at most about 1 MiB; ``b""`` only at the end.  A corrupt stream, or
    a truncated gzip, bzip2 or xz stream, raises :class:`CodecError` (a zstd stream cut
    at a frame boundary cannot be told from a complete one: digests catch that).
    """
    while len(head) < SNIFF_BYTES:
        data = read(CHUNK)
        if not data:
            break
        head += data
    kind = sniff(head)
    state: dict[str, Any] = {"head": head, "ended": False}

    def raw(n: int) -> bytes:
        if state["head"]:
            data, state["head"] = state["head"], b""
            return data
        return read(n)

    if not kind:
        return raw
    if kind == ZSTD:
        try:
            import zstandard
        except ImportError:
            raise CodecError("zstd-compressed data needs the 'zstandard' package") from None
        reader = zstandard.ZstdDecompressor().stream_reader(
            _ReadAdapter(raw),  # type: ignore[arg-type]
            read_across_frames=True,
        )  # reads like a file

        def unzstd(n: int) -> bytes:
            try:
                return reader.read(min(n, CHUNK))
            except zstandard.ZstdError as exc:
                raise CodecError(f"invalid zstd data: {exc}") from None

        return unzstd
    d = Decompressor(kind)

    def decompressed(n: int) -> bytes:
        while True:
            out = d.more()
            if out:
                return out
            if state["ended"]:
                return b""
            data = raw(CHUNK)
            if not data:
                state["ended"] = True
                d.finish()
                return b""
            out = d.feed(data)
            if out:
                return out

    return decompressed


class _ReadAdapter:
    def __init__(self, read: Callable[[int], bytes]) -> None:
        self.read = read


def gzip_writer(out: BinaryIO, level: int = 1, threads: int | None = None) -> BinaryIO:
    """A file object compressing what is written to it into ``out`` as gzip (no name, mtime 0).

    With ISA-L, 1 MiB blocks are compressed on ``threads`` threads (default: the
    processors there are, at most 4) into one gzip member; write whole 1 MiB blocks
    (the last one shorter) for output that depends on the content only.  ``level`` is
    ISA-L's 0-3 (zlib's 1-9 are mapped: 1-2 -> 1, 3-5 -> 2, 6-9 -> 3).  Closing it
    flushes the trailer; ``out`` stays open.
    """
    if _igzip_threaded is not None:
        isal_level = 0 if level <= 0 else 1 if level <= 2 else 2 if level <= 5 else 3
        count = threads if threads is not None else max(1, min(4, os.cpu_count() or 1))
        return _igzip_threaded.open(out, "wb", compresslevel=isal_level, threads=count, block_size=CHUNK)
    import gzip

    return gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=max(1, min(9, level)), mtime=0)


def zstd_writer(out: BinaryIO, level: int = 3, threads: int | None = None) -> BinaryIO:
    """A file object compressing into ``out`` as one zstd frame (deterministic for a given
    level whatever the thread count); closing it ends the frame, ``out`` stays open."""
    try:
        import zstandard
    except ImportError:
        raise CodecError("zstd compression needs the 'zstandard' package") from None
    count = threads if threads is not None else max(1, min(4, os.cpu_count() or 1))
    # always zstd's multi-threaded mode (one worker at least): its output is the same for any number of
    # workers, and differs from the single-threaded mode's
    compressor = zstandard.ZstdCompressor(level=level, threads=max(1, count), write_checksum=True)
    return compressor.stream_writer(out, closefd=False)
