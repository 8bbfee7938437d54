"""Docker's json-file log: its record format, its writer and its rotation.

This is the one home of the on-disk format; :mod:`dockyard.logs` reads what this module writes.

Record
    one JSON object per line, ``{"log": "<text>", "stream": "stdout"|"stderr", "time": "<RFC3339Nano>"}``.
    ``log`` keeps the line's ``\\n``; a line longer than :data:`PARTIAL` bytes is cut into several
    records, only the last of which ends in ``\\n`` (Docker's partial messages).  Invalid UTF-8 becomes
    U+FFFD, as Go's encoder does.

Files and rotation (``--log-opt max-size=SIZE --log-opt max-file=N``)
    ``LOG`` is the file being written; ``LOG.1`` is the one before it, up to ``LOG.<N-1>``, the oldest.
    Before a record that would take ``LOG`` past ``max_size`` bytes, the writer unlinks the oldest,
    renames each ``LOG.i`` to ``LOG.<i+1>``, ``LOG`` to ``LOG.1``, and creates a new ``LOG``; with N = 1
    it unlinks ``LOG`` and creates a new one.  So a file never holds part of a record, and a reader that
    holds a file open keeps reading it to its end after it was renamed or unlinked, then opens the new
    ``LOG`` (it knows a rotation happened because ``LOG`` is another inode).  Nothing is lost or read
    twice; a reader that falls more than N - 1 rotations behind only loses what the writer deleted.

Stdlib only, and no package-relative imports: an exec driver's helper process (the lxc shim, started
with ``python -I -S``) loads this file as the top-level module ``jsonfile``.
"""

import os
import sys
import time

__all__ = ["PARTIAL", "JsonLogWriter", "jstr", "rfc3339", "rotated_path"]

#: Docker's json-file cuts longer lines into partial records of this size
PARTIAL = 16384


def _escapes():
    table = {i: "\\u%04x" % i for i in range(32)}
    table.update({10: "\\n", 13: "\\r", 9: "\\t", 34: '\\"', 92: "\\\\",
                  60: "\\u003c", 62: "\\u003e", 38: "\\u0026", 0x2028: "\\u2028", 0x2029: "\\u2029"})
    return table


_ESCAPES = _escapes()


def jstr(text):
    """A JSON string literal, escaped as Go's encoding/json escapes it (``<``, ``>``, ``&`` too)."""
    return '"' + text.translate(_ESCAPES) + '"'


def rfc3339(ns):
    """RFC3339Nano in UTC with trailing zeros trimmed, as Go formats it."""
    sec, frac = divmod(ns, 1000000000)
    t = time.gmtime(sec)
    base = "%04d-%02d-%02dT%02d:%02d:%02d" % (t[0], t[1], t[2], t[3], t[4], t[5])
    if frac:
        return base + "." + ("%09d" % frac).rstrip("0") + "Z"
    return base + "Z"


def rotated_path(path, index):
    """``LOG`` for index 0, else ``LOG.<index>``."""
    return path if index == 0 else "%s.%d" % (path, index)


class JsonLogWriter:
    """Appends a process's output to ``path`` as json-file records, rotating it by size.

    ``write(stream, data, now_ns)`` takes raw output of stream 1 (stdout) or 2 (stderr) in any
    pieces; complete lines are written at once (one ``write(2)`` per call), an incomplete one is
    held until its end arrives or it reaches :data:`PARTIAL` bytes.  ``flush(stream, now_ns)`` writes
    what is held (the stream ended).  ``max_size`` 0 never rotates.  Write errors (a full disk) are
    reported on stderr once per burst and the records are dropped: the process is never blocked
    by its log.
    """

    def __init__(self, path, max_size=0, max_files=1):
        if max_size < 0 or max_files < 1:
            raise ValueError("max_size must be >= 0 and max_files >= 1")
        self.path = path
        self.max_size = max_size
        self.max_files = max_files
        self.held = {1: b"", 2: b""}
        self.failing = False
        self.fd = -1
        self.size = 0
        self._open()

    def _open(self):
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self.size = os.fstat(self.fd).st_size

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    # -- records ----------------------------------------------------------------------------

    @staticmethod
    def record(stream, line, now_ns):
        return ('{"log":%s,"stream":"%s","time":"%s"}\n' % (
            jstr(line.decode("utf-8", "replace")), "stdout" if stream == 1 else "stderr",
            rfc3339(now_ns))).encode()

    def write(self, stream, data, now_ns):
        buf = self.held[stream] + data
        lines = []
        start = 0
        while True:
            i = buf.find(b"\n", start)
            if i < 0:
                break
            lines.append(buf[start:i + 1])
            start = i + 1
        rest = buf[start:]
        while len(rest) >= PARTIAL:
            lines.append(rest[:PARTIAL])
            rest = rest[PARTIAL:]
        self.held[stream] = rest
        if lines:
            self._append([self.record(stream, line, now_ns) for line in lines])

    def flush(self, stream, now_ns):
        if self.held.get(stream):
            line, self.held[stream] = self.held[stream], b""
            self._append([self.record(stream, line, now_ns)])

    # -- files ------------------------------------------------------------------------------

    def _append(self, records):
        batch = []
        size = self.size
        for rec in records:
            if self.max_size and size and size + len(rec) > self.max_size:
                self._write(b"".join(batch))
                batch = []
                self.rotate()
                size = self.size
            batch.append(rec)
            size += len(rec)
        self._write(b"".join(batch))

    def _write(self, data):
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.fd, view)
            except OSError as exc:
                if not self.failing:
                    sys.stderr.write("json-file: writing %s failed, dropping output: %s\n" % (self.path, exc))
                    sys.stderr.flush()
                self.failing = True
                return
            self.size += n
            view = view[n:]
        self.failing = False

    def rotate(self):
        """Start a new ``LOG`` (see the module docstring for the renames)."""
        os.close(self.fd)
        self.fd = -1
        try:
            last = self.max_files - 1
            if last == 0:
                os.unlink(self.path)
            else:
                try:
                    os.unlink(rotated_path(self.path, last))
                except FileNotFoundError:
                    pass
                for index in range(last - 1, -1, -1):
                    try:
                        os.rename(rotated_path(self.path, index), rotated_path(self.path, index + 1))
                    except FileNotFoundError:
                        pass
        except OSError as exc:
            sys.stderr.write("json-file: rotating %s failed: %s\n" % (self.path, exc))
            sys.stderr.flush()
        self._open()
