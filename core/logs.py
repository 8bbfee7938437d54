"""Reading a container's log (what the exec driver writes), in either of two line formats.

* Docker's json-file: ``{"log": "<text>", "stream": "stdout|stderr", "time": "<RFC3339Nano>"}``
  (logs written before exec drivers ran containers under conmon; third-party drivers);
* the CRI's (conmon's ``k8s-file``): ``<RFC3339Nano with offset> <stdout|stderr> <F|P> <text>``,
  ``F`` for a full line (its newline was dropped), ``P`` for a part of a longer one
  (conmon writes it, under both exec drivers).

Both become the same :class:`LogEntry`, times in UTC with a ``Z`` as Docker prints them.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Callable

from dockyard.timefmt import parse_iso, to_utc


@dataclass(frozen=True)
class LogEntry:
    stream: str
    time: str
    data: bytes


def parse_line(line: bytes) -> LogEntry | None:
    """One log line of either format; None for a line cut short by a crash."""
    if line.startswith(b"{"):
        try:
            record = json.loads(line)
            return LogEntry(record.get("stream", "stdout"), record.get("time", ""), record.get("log", "").encode())
        except (json.JSONDecodeError, AttributeError):
            return None
    return _parse_cri(line)


def _parse_cri(line: bytes) -> LogEntry | None:
    if line.endswith(b"\n"):
        line = line[:-1]
    parts = line.split(b" ", 3)
    if len(parts) < 3 or parts[1] not in (b"stdout", b"stderr") or parts[2] not in (b"F", b"P"):
        return None
    try:
        stamp = to_utc(parts[0].decode("ascii", "replace"))
    except ValueError:
        return None
    text = parts[3] if len(parts) > 3 else b""
    return LogEntry(parts[1].decode(), stamp, text + b"\n" if parts[2] == b"F" else text)


def _wanted(entry: LogEntry, stdout: bool, stderr: bool, since: float, until: float) -> bool:
    if entry.stream == "stdout" and not stdout or entry.stream == "stderr" and not stderr:
        return False
    if since or until:
        t = parse_iso(entry.time)
        if since and t < since or until and t > until:
            return False
    return True


async def read_log(path: Path, *, stdout: bool, stderr: bool, tail: int = -1, since: float = 0,
                   until: float = 0, follow: bool = False, running: Callable[[], bool] = lambda: False,
                   poll: float = 0.05) -> AsyncIterator[LogEntry]:
    """Yield log entries; with ``follow``, keep yielding new ones until the
    container stops running and the file is drained."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        if not follow:
            return
        while not path.exists():
            if not running():
                return
            await asyncio.sleep(poll)
        f = open(path, "rb")
    with f:
        entries: deque[LogEntry] | list[LogEntry] = deque(maxlen=tail) if tail >= 0 else []
        partial = b""
        for line in f:
            if not line.endswith(b"\n"):
                partial = line
                break
            entry = parse_line(line)
            if entry and _wanted(entry, stdout, stderr, since, until):
                entries.append(entry)
        for entry in entries:
            yield entry
        if not follow:
            return
        while True:
            chunk = f.readline()
            if chunk:
                partial += chunk
                if partial.endswith(b"\n"):
                    entry = parse_line(partial)
                    partial = b""
                    if entry and _wanted(entry, stdout, stderr, since, until):
                        yield entry
                continue
            if not running():
                # one last read: the writer may have flushed after our EOF
                rest = f.read()
                for line in (partial + rest).splitlines():
                    entry = parse_line(line)
                    if entry and _wanted(entry, stdout, stderr, since, until):
                        yield entry
                return
            await asyncio.sleep(poll)
