"""Container logs: the log configuration (``--log-driver``, ``--log-opt``) and reading the logs.

The exec driver writes the log in one of two line formats, both read here into the same
:class:`LogEntry` (times in UTC with a ``Z``, as Docker prints them):

* the CRI's (conmon's ``k8s-file``, under both built-in exec drivers):
  ``<RFC3339Nano with offset> <stdout|stderr> <F|P> <text>``, ``F`` for a full line (its newline
  was dropped), ``P`` for a part of a longer one;
* Docker's json-file: ``{"log": "<text>", "stream": "stdout|stderr", "time": "<RFC3339Nano>"}``
  (logs written before conmon; third-party drivers).

The daemon rotates them (:mod:`dockyard.log_rotation`: ``LOG``, ``LOG.1``, ...).  This module reads
them without ever holding a log in memory or blocking the event loop:

* ``tail N`` scans backwards from the end of ``LOG`` (then ``LOG.1``, ...) for the start of the last
  N records and reads forward from there; the rest of the file is never read;
* everything streams: batches of at most :data:`BATCH` bytes are read, parsed, filtered and rendered
  in a worker thread, the event loop only writes bytes, and a slow client holds up the reading (one
  batch in memory per stream);
* parsing is the daemon's most CPU-hungry work and holds the interpreter lock (the JSON decoder
  never releases it), so at most :data:`PARSERS` batches are parsed at a time: many clients
  following chatty logs share that throughput instead of starving the event loop of the lock;
* a plain read stops at the size ``LOG`` had when it began (a container writing faster than the
  client reads cannot make it endless); ``follow`` polls at the end of ``LOG`` and notices a
  rotation (``LOG`` is another inode): it reads the old file to its end, then the new ``LOG``.

Like Docker, ``tail`` counts records before the stream, ``since`` and ``until`` filters apply.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, AsyncGenerator, Callable, Literal, NamedTuple

from dockyard.errors import InvalidParameter
from dockyard.log_rotation import rotated_path
from dockyard.models.container import LogConfig
from dockyard.timefmt import parse_iso, to_utc

log = logging.getLogger(__name__)

#: bytes of log read (and rendered) per step of a stream: about a millisecond of decoding, the longest
#: the event loop may wait for the interpreter lock because of one batch
BATCH = 64 * 1024
#: batches parsed at once, whatever the number of streams
PARSERS = 2
_parsing = threading.BoundedSemaphore(PARSERS)
#: backwards-scan block for tail
BLOCK = 64 * 1024
#: a "line" longer than this without a newline is not a record (json-file records are < 128 KiB)
MAX_RECORD = 1 << 20


# -- configuration -------------------------------------------------------------------------------

#: the log drivers dockyard implements; Docker's others (syslog, journald, local, ...) are refused
DRIVERS = ("json-file", "none")
#: json-file options Docker accepts that dockyard does not implement: refused when set
_UNSUPPORTED_JSON_FILE = ("labels", "labels-regex", "env", "env-regex", "tag")


@dataclass(frozen=True)
class LogSettings:
    """A validated log configuration, as the exec driver needs it."""

    driver: str = "json-file"
    #: bytes before the log is rotated; 0: never
    max_size: int = 0
    max_files: int = 1

    @property
    def readable(self) -> bool:
        return self.driver == "json-file"


def merge_config(requested: LogConfig, default: LogConfig) -> LogConfig:
    """``HostConfig.LogConfig`` completed with the daemon's defaults, as Docker does at create: an
    empty type is the default driver, whose default options fill in the keys not given."""
    driver = requested.type or default.type or "json-file"
    options = dict(requested.config or {})
    if driver == (default.type or "json-file"):
        options = {**(default.config or {}), **options}
    return LogConfig(type=driver, config=options)


def settings(config: LogConfig) -> LogSettings:
    """Validate a log configuration (Docker's rules and messages); raises ``InvalidParameter``."""
    driver = config.type or "json-file"
    options = dict(config.config or {})
    if driver not in DRIVERS:
        raise InvalidParameter(f"logger: no log driver named '{driver}' is registered")
    mode = options.pop("mode", "blocking")
    if mode not in ("blocking", "non-blocking", ""):
        raise InvalidParameter(f"logger: logging mode not supported: {mode}")
    if mode == "non-blocking" or "max-buffer-size" in options:
        raise InvalidParameter(
            "log opt 'mode=non-blocking' is not supported by dockyard (output is never "
            "dropped to keep a container writing)"
        )
    if driver == "none":
        return LogSettings("none")
    for key in options:
        if key in _UNSUPPORTED_JSON_FILE:
            raise InvalidParameter(f"log opt '{key}' of the json-file log driver is not supported by dockyard")
        if key not in ("max-size", "max-file", "compress"):
            raise InvalidParameter(f"unknown log opt '{key}' for json-file log driver")
    max_size = 0
    if "max-size" in options:
        max_size = parse_size(options["max-size"])
        if max_size <= 0:
            raise InvalidParameter("max-size must be a positive number")
    max_files = 1
    if "max-file" in options:
        try:
            max_files = int(options["max-file"])
        except ValueError:
            raise InvalidParameter(f'strconv.Atoi: parsing "{options["max-file"]}": invalid syntax') from None
        if max_files < 1:
            raise InvalidParameter("max-file cannot be less than 1")
    if options.get("compress", "false").lower() not in ("false", "0", "f"):
        raise InvalidParameter("log opt 'compress' of the json-file log driver is not supported by dockyard")
    return LogSettings("json-file", max_size, max_files)


_SIZE_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}


def parse_size(text: str) -> int:
    """A size such as ``10m``, ``1.5GB`` or ``512k`` in bytes, with SI units as Docker's json-file
    (go-units ``FromHumanSize``) reads them."""
    import re

    match = re.fullmatch(r"(\d+(?:\.\d+)?) ?([kKmMgGtTpP])?[iI]?[bB]?", text.strip())
    if not match:
        raise InvalidParameter(f"invalid size: '{text}'")
    return int(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "").lower()])


# -- reading -------------------------------------------------------------------------------------


class LogEntry(NamedTuple):  # (a tuple: millions are made while a big log streams)
    stream: str
    time: str
    data: bytes


@dataclass(frozen=True)
class LogQuery:
    """What ``GET /containers/{id}/logs`` asks for."""

    stdout: bool = True
    stderr: bool = True
    #: the last N records only; -1: all
    tail: int = -1
    since: float = 0
    until: float = 0

    def wants(self, entry: LogEntry) -> bool:
        if not (self.stdout if entry.stream == "stdout" else self.stderr if entry.stream == "stderr" else True):
            return False
        if self.since or self.until:
            t = parse_iso(entry.time)
            if self.since and t < self.since or self.until and t > self.until:
                return False
        return True


Render = Callable[[LogEntry], bytes]
Step = Literal["more", "end", "done"]


def parse_line(line: bytes) -> LogEntry | None:
    """One log line of either format; None for a line cut short by a crash."""
    if line.startswith(b"{"):
        try:
            record = json.loads(line)
            return LogEntry(record.get("stream", "stdout"), record.get("time", ""), record.get("log", "").encode())
        except (ValueError, AttributeError):
            return None
    return _parse_cri(line)


_last_stamp = ("", "")  # (conmon's stamp, in UTC): one tuple, so threads see a matching pair


def _utc(stamp: str) -> str:
    """conmon's timestamp in UTC.  It stamps every line of one read alike, and a host in UTC writes
    ``+00:00``: both are common enough to spare the full conversion."""
    global _last_stamp
    last = _last_stamp
    if stamp == last[0]:
        return last[1]
    utc = stamp[:-6] + "Z" if stamp.endswith("+00:00") else to_utc(stamp)
    _last_stamp = (stamp, utc)
    return utc


def _parse_cri(line: bytes) -> LogEntry | None:
    if line.endswith(b"\n"):
        line = line[:-1]
    parts = line.split(b" ", 3)
    if len(parts) < 3 or parts[1] not in (b"stdout", b"stderr") or parts[2] not in (b"F", b"P"):
        return None
    try:
        stamp = _utc(parts[0].decode("ascii", "replace"))
    except ValueError:
        return None
    text = parts[3] if len(parts) > 3 else b""
    return LogEntry(parts[1].decode(), stamp, text + b"\n" if parts[2] == b"F" else text)


def _parse_all(lines: list[bytes]) -> list[LogEntry]:
    """Parse a batch of lines: json-file ones in one call to the C decoder (a line at a time only when
    the batch holds a bad one), CRI ones by splitting."""
    if not lines:
        return []
    if lines[0].startswith(b"{"):
        try:
            records = json.loads(b"[" + b",".join(lines) + b"]")
            return [LogEntry(r.get("stream", "stdout"), r.get("time", ""), r.get("log", "").encode()) for r in records]
        except (ValueError, AttributeError):
            pass
    return [entry for entry in map(parse_line, lines) if entry is not None]


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def _fidentity(f: IO[bytes]) -> tuple[int, int]:
    st = os.fstat(f.fileno())
    return st.st_dev, st.st_ino


def _open_files(path: str, after: tuple[int, int] | None = None) -> list[IO[bytes]]:
    """Open the log's files, oldest first: ``LOG.<n>`` ... ``LOG.1``, ``LOG``; with ``after`` (a
    file's identity), only those the writer started after that file (all of them if it is gone).

    Open files keep their content when the writer rotates, so the set is checked against a
    rotation racing with us: every file must still be at the name it was opened under, or we
    start again."""
    for _ in range(100):
        names: list[str] = []  # newest first
        index = 0
        while True:
            name = rotated_path(path, index)
            ident = _identity(name)
            if ident is not None and ident == after:
                break
            if ident is None and index > 0:  # (a missing LOG: the writer is between rename and create)
                break
            if ident is not None:
                names.append(name)
            index += 1
        names.reverse()
        files: list[IO[bytes]] = []
        try:
            for name in names:
                files.append(open(name, "rb"))
        except FileNotFoundError:
            pass
        else:
            # a file that vanished meanwhile leaves fewer files than names
            stable = all(_identity(n) == _fidentity(f) for n, f in zip(names, files, strict=False))
            if stable and (not names or names[-1] == path or _identity(path) is None):
                return files
        for f in files:
            f.close()
    raise InvalidParameter(f"the log {path} rotates too fast to be read")


def _start_of_last_lines(f: IO[bytes], end: int, want: int) -> tuple[int, int]:
    """Scan backwards from ``end`` (just after a newline, or 0) for the start of the last ``want``
    lines; returns (offset, how many lines were found, at most ``want``)."""
    found = 0
    pos = end
    while pos > 0:
        low = max(0, pos - BLOCK)
        f.seek(low)
        block = f.read(pos - low)
        i = len(block)
        while True:
            j = block.rfind(b"\n", 0, i)
            if j < 0:
                break
            i = j
            if low + j == end - 1:
                continue  # the newline ending the last line
            found += 1  # the line starting after this newline
            if found == want:
                return low + j + 1, found
        pos = low
    return 0, found + (1 if end > 0 else 0)


def _end_of_last_line(f: IO[bytes], size: int) -> int:
    """The offset just after the last newline before ``size`` (a record being written is not one)."""
    pos = size
    while pos > 0:
        low = max(0, pos - BLOCK)
        f.seek(low)
        j = f.read(pos - low).rfind(b"\n")
        if j >= 0:
            return low + j + 1
        pos = low
    return 0


class LogCursor:
    """A forward position in a log's files.  Blocking: every method runs in a worker thread."""

    def __init__(self, path: Path, tail: int = -1, follow: bool = False) -> None:
        self.path = str(path)
        self.follow = follow
        self.files: list[IO[bytes] | None] = list(_open_files(self.path))
        self.index = 0
        self.partial = b""
        #: a plain read ends where LOG ended when it began
        self.stop: int | None = None
        if self.files and not follow:
            last = self.files[-1]
            assert last is not None
            self.stop = os.fstat(last.fileno()).st_size
        if tail >= 0:
            self._seek_tail(tail)
        elif self.files:
            self.files[0].seek(0)  # type: ignore[union-attr]

    def _seek_tail(self, tail: int) -> None:
        if not self.files:
            return
        last = self.files[-1]
        assert last is not None
        size = self.stop if self.stop is not None else os.fstat(last.fileno()).st_size
        remaining = tail
        for index in range(len(self.files) - 1, -1, -1):
            f = self.files[index]
            assert f is not None
            end = _end_of_last_line(f, size) if index == len(self.files) - 1 else os.fstat(f.fileno()).st_size
            if remaining == 0:
                start = end
            else:
                start, found = _start_of_last_lines(f, end, remaining)
                remaining -= found
            if remaining == 0 or index == 0:
                f.seek(start)
                self._drop_before(index)
                for newer in self.files[index + 1 :]:  # the scan moved them
                    assert newer is not None
                    newer.seek(0)
                return

    def _drop_before(self, index: int) -> None:
        for i in range(index):
            f = self.files[i]
            if f is not None:
                f.close()
                self.files[i] = None
        self.index = index

    def close(self) -> None:
        for f in self.files:
            if f is not None:
                f.close()
        self.files = []

    def _rotated(self) -> bool:
        """Following at the end of the last file: has the writer started a new ``LOG``?  Then
        the new one is appended, and the old one is read to its end before it."""
        now = _identity(self.path)
        if now is None:
            return False
        last = self.files[-1] if self.files else None
        mine = _fidentity(last) if last is not None else None
        if mine == now:
            return False
        newer = _open_files(self.path, mine)  # more than one if we fell several rotations behind
        self.files.extend(newer)
        return bool(newer)

    def lines(self, limit: int) -> tuple[list[bytes], bool]:
        """Complete lines, about ``limit`` bytes of them; and whether the end was reached."""
        lines: list[bytes] = []
        size = 0
        while size < limit:
            if self.index >= len(self.files):
                if self.follow and self._rotated():
                    continue
                return lines, True
            f = self.files[self.index]
            assert f is not None
            last = self.index == len(self.files) - 1
            want = limit - size
            if last and self.stop is not None:
                want = min(want, self.stop - f.tell())
            chunk = f.read(want) if want > 0 else b""
            if chunk:
                size += len(chunk)
                parts = (self.partial + chunk).split(b"\n")
                self.partial = parts.pop()
                if len(self.partial) > MAX_RECORD:
                    log.warning("%s: dropping %d bytes without a newline", self.path, len(self.partial))
                    self.partial = b""
                lines.extend(parts)
                continue
            if not last:
                f.close()  # an older file is complete: a record never spans two files
                self.files[self.index] = None
                self.index += 1
                self.partial = b""
                continue
            if self.follow and self._rotated():
                continue
            return lines, True
        return lines, False

    def step(self, query: LogQuery, render: Render, limit: int = BATCH) -> tuple[bytes, Step]:
        """The next batch, parsed, filtered and rendered; "end" at the end of the log for now,
        "done" past ``until`` (nothing more will be wanted)."""
        lines, at_end = self.lines(limit)
        with _parsing:
            entries = _parse_all(lines)
            if query.stdout and query.stderr and not query.since and not query.until:
                return b"".join(map(render, entries)), "end" if at_end else "more"
            out: list[bytes] = []
            for entry in entries:
                if query.until and entry.time and parse_iso(entry.time) > query.until:
                    return b"".join(out), "done"
                if query.wants(entry):
                    out.append(render(entry))
            return b"".join(out), "end" if at_end else "more"


async def stream_log(
    path: Path,
    query: LogQuery,
    render: Render,
    *,
    follow: bool = False,
    running: Callable[[], bool] = lambda: False,
    poll: float = 0.05,
) -> AsyncGenerator[bytes, None]:
    """The rendered log, batch by batch; with ``follow``, until the container stops (and the log is
    drained) or ``until`` passes.  Use it under ``contextlib.aclosing`` so the files are closed as
    soon as the consumer stops."""
    cursor = await asyncio.to_thread(LogCursor, path, query.tail, follow)
    try:
        while True:
            data, step = await asyncio.to_thread(cursor.step, query, render)
            if data:
                yield data
            if step == "more":
                continue
            if step == "done" or not follow or query.until and time.time() > query.until:
                return
            if not running():
                # a last pass to the end: the writer may have flushed after we saw it
                while True:
                    data, step = await asyncio.to_thread(cursor.step, query, render)
                    if data:
                        yield data
                    if step != "more":
                        return
            await asyncio.sleep(poll)
    finally:
        # never on the loop: a read still running in a worker holds the file's lock
        asyncio.get_running_loop().run_in_executor(None, cursor.close)
