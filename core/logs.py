"""Reading a container's json-file log (what the exec driver writes).

Each line is ``{"log": "<text>", "stream": "stdout|stderr", "time": "<RFC3339Nano>"}``,
the format of Docker's json-file logging driver.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Callable

from dockyard.timefmt import parse_iso


@dataclass(frozen=True)
class LogEntry:
    stream: str
    time: str
    data: bytes


def _parse(line: bytes) -> LogEntry | None:
    try:
        record = json.loads(line)
        return LogEntry(record.get("stream", "stdout"), record.get("time", ""), record.get("log", "").encode())
    except (json.JSONDecodeError, AttributeError):
        return None  # a line cut short by a crash


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
            entry = _parse(line)
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
                    entry = _parse(partial)
                    partial = b""
                    if entry and _wanted(entry, stdout, stderr, since, until):
                        yield entry
                continue
            if not running():
                # one last read: the writer may have flushed after our EOF
                rest = f.read()
                for line in (partial + rest).splitlines():
                    entry = _parse(line)
                    if entry and _wanted(entry, stdout, stderr, since, until):
                        yield entry
                return
            await asyncio.sleep(poll)
