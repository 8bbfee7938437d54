"""Looking at a running daemon from outside: its CPU time, memory, open files and reads (from
/proc), how fast it answers ``/_ping``, and clients that leave in the middle of a stream."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path


TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def bytes_read(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError(f"no rchar for {pid}")


def ignores(pid: int, sig: int) -> bool:
    """Whether ``sig`` is ignored by ``pid`` (the SigIgn mask in /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    raise AssertionError(f"no SigIgn for {pid}")


def ignores_sigpipe(pid: int) -> bool:
    return ignores(pid, signal.SIGPIPE)


def ping(socket_path: Path, timeout: float = 10.0) -> float:
    """Seconds a fresh connection takes to get ``GET /_ping`` answered."""
    start = time.monotonic()
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(str(socket_path))
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
        data = b""
        while not data.endswith(b"OK"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 200"), data
    return time.monotonic() - start


def open_stream(
    socket_path: Path, method: str, path: str, body: bytes = b"", headers: str = "", read: int = 1
) -> socket.socket:
    """Send a request and read until ``read`` bytes of the answer arrived; the caller closes it."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(str(socket_path))
    head = f"{method} {path} HTTP/1.1\r\nHost: d\r\n{headers}"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    s.sendall(head.encode() + b"\r\n" + body)
    got = 0
    while got < read:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += len(chunk)
    return s


def leave_mid_stream(socket_path: Path, path: str, read: int = 1024) -> None:
    """A client that asks for a stream, reads a little and goes away (``docker save x | head``)."""
    open_stream(socket_path, "GET", path, read=read).close()


def settles(pid: int, within: float = 1.0, window: float = 0.5, busy: float = 0.1) -> bool:
    """Whether the daemon stops working (uses under ``busy`` of a CPU over ``window`` seconds)
    at some point within ``within`` seconds from now."""
    deadline = time.monotonic() + within
    while True:
        start, t0 = cpu_seconds(pid), time.monotonic()
        time.sleep(window)
        if (cpu_seconds(pid) - start) / (time.monotonic() - t0) < busy:
            return True
        if time.monotonic() > deadline:
            return False


__all__ = [
    "bytes_read",
    "cpu_seconds",
    "ignores_sigpipe",
    "leave_mid_stream",
    "open_fds",
    "open_stream",
    "ping",
    "rss_bytes",
    "settles",
]
