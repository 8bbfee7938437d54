"""Docker's stdcopy multiplexing, decoded incrementally.

Without a TTY the daemon multiplexes stdout and stderr onto one byte stream as
frames ``[stream, 0, 0, 0, uint32 big-endian length] + payload`` where stream is
0 stdin, 1 stdout, 2 stderr, 3 "system error" (moby ``pkg/stdcopy``).  Attach
streams and ``/logs`` both use it.  Frames may be split across reads at any
byte, so the decoder buffers until a frame is complete.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import BinaryIO

__all__ = ["STDIN", "STDOUT", "STDERR", "SYSTEMERR", "FrameDecoder", "demux_to", "encode_frame"]

STDIN, STDOUT, STDERR, SYSTEMERR = 0, 1, 2, 3
HEADER = struct.Struct(">BxxxL")


def encode_frame(stream: int, payload: bytes) -> bytes:
    """Build one frame (used by tests and fakes)."""
    return HEADER.pack(stream, len(payload)) + payload


class FrameDecoder:
    """Feed bytes in, get ``(stream, payload)`` pairs out."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buffer += data
        frames: list[tuple[int, bytes]] = []
        while len(self._buffer) >= HEADER.size:
            stream, length = HEADER.unpack_from(self._buffer)
            end = HEADER.size + length
            if len(self._buffer) < end:
                break
            frames.append((stream, bytes(self._buffer[HEADER.size : end])))
            del self._buffer[:end]
        return frames

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame still buffered (non-zero at EOF = truncated stream)."""
        return len(self._buffer)


def demux(chunks: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    decoder = FrameDecoder()
    for chunk in chunks:
        yield from decoder.feed(chunk)


def demux_to(chunks: Iterable[bytes], stdout: BinaryIO, stderr: BinaryIO, *, tty: bool) -> None:
    """Copy a (multiplexed unless ``tty``) stream to the two outputs, flushing as it goes."""
    if tty:
        for chunk in chunks:
            stdout.write(chunk)
            stdout.flush()
        return
    for stream, payload in demux(chunks):
        target = stderr if stream in (STDERR, SYSTEMERR) else stdout
        target.write(payload)
        target.flush()
