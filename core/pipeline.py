"""Stream plumbing for the image data paths: hashing beside the work, and kernel copies.

* :class:`ThreadedHash` hashes in a thread of its own: ``hashlib`` releases the GIL
  on large buffers, so a SHA-256 of layer content costs the thread that parses and
  writes it nothing but a queue hand-off.  Chunks are immutable ``bytes``; at most
  :data:`QUEUE_CHUNKS` wait (bounded memory: a slow hasher slows the reader down).
* :class:`HashingReader` is a file-like ``read`` that feeds every chunk it returns to
  a :class:`ThreadedHash` (and optionally to a file), for a storage driver that is
  handed a stream to apply.
* :func:`copy_range` copies part of one file into another in the kernel
  (``copy_file_range``: a reflink on btrfs and XFS, no user-space copy elsewhere);
  :func:`send_range` does the same into a pipe or socket (``sendfile``).
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from typing import BinaryIO, Callable

__all__ = ["CHUNK", "HashingReader", "ThreadedHash", "copy_range", "region_reader", "send_range"]

CHUNK = 1 << 20
#: chunks waiting for a hashing thread at most (4 MiB)
QUEUE_CHUNKS = 4
_SMALL = 64 << 10  # below this a hand-off costs more than hashing in place


class ThreadedHash:
    """A SHA-256 (or another ``hashlib`` algorithm) computed in a thread of its own.

    :meth:`update` hands a chunk over (blocking while :data:`QUEUE_CHUNKS` wait);
    :meth:`hexdigest` waits for the thread and returns the digest.  Small inputs are
    hashed in the caller's thread, in order.  Use as a context manager (or call
    :meth:`close`) so that the thread ends on errors too.
    """

    def __init__(self, algorithm: str = "sha256") -> None:
        self._hash = hashlib.new(algorithm)
        self._queue: queue.Queue[bytes | None] = queue.Queue(QUEUE_CHUNKS)
        self._thread: threading.Thread | None = None
        self._digest: str | None = None
        self.size = 0

    def _run(self) -> None:
        update = self._hash.update
        while (chunk := self._queue.get()) is not None:
            update(chunk)

    def update(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self._thread is None:
            if len(chunk) < _SMALL:
                self._hash.update(chunk)
                return
            self._thread = threading.Thread(target=self._run, name="hash", daemon=True)
            self._thread.start()
        self._queue.put(bytes(chunk) if not isinstance(chunk, bytes) else chunk)

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def hexdigest(self) -> str:
        if self._digest is None:
            self.close()
            self._digest = self._hash.hexdigest()
        return self._digest

    def __enter__(self) -> "ThreadedHash":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class HashingReader:
    """``read(n)`` from ``read`` (a file's read, a decompressor's), hashing what passes.

    ``copy_to``: a file that gets every byte too.  Not seekable; ``readinto`` is
    provided for ``io.BufferedReader`` and ``shutil.copyfileobj``.
    """

    def __init__(self, read: Callable[[int], bytes], hasher: ThreadedHash, copy_to: BinaryIO | None = None) -> None:
        self._read = read
        self.hasher = hasher
        self._copy = copy_to

    def read(self, n: int = CHUNK) -> bytes:
        data = self._read(CHUNK if n is None or n < 0 else n)
        if data:
            self.hasher.update(data)
            if self._copy is not None:
                self._copy.write(data)
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


def region_reader(f: BinaryIO, offset: int, size: int) -> Callable[[int], bytes]:
    """A ``read(n)`` of ``size`` bytes of file ``f`` from ``offset`` (``pread``: ``f``'s position is left alone)."""
    fd = f.fileno()
    state = [offset, offset + size]

    def read(n: int) -> bytes:
        pos, end = state
        if pos >= end:
            return b""
        data = os.pread(fd, min(n, end - pos), pos)
        if not data:
            raise EOFError(f"unexpected end of file at offset {pos}")
        state[0] = pos + len(data)
        return data

    return read


def copy_range(src: int, dst: int, offset: int, size: int) -> None:
    """Copy ``size`` bytes of fd ``src`` from ``offset`` to fd ``dst`` at its position, in the kernel."""
    while size > 0:
        try:
            n = os.copy_file_range(src, dst, min(size, 1 << 30), offset)
        except OSError:  # another file system, or one without it: sendfile, then plain reads
            send_range(src, dst, offset, size)
            return
        if n == 0:
            raise EOFError(f"unexpected end of file at offset {offset}")
        offset += n
        size -= n


def send_range(src: int, dst: int, offset: int, size: int) -> None:
    """``sendfile`` ``size`` bytes of fd ``src`` from ``offset`` into ``dst`` (a file, pipe or socket)."""
    while size > 0:
        try:
            n = os.sendfile(dst, src, offset, min(size, 1 << 30))
        except OSError:
            data = os.pread(src, min(size, CHUNK), offset)
            if not data:
                raise EOFError(f"unexpected end of file at offset {offset}") from None
            view = memoryview(data)
            while view:
                view = view[os.write(dst, view) :]
            n = len(data)
        if n == 0:
            raise EOFError(f"unexpected end of file at offset {offset}")
        offset += n
        size -= n
