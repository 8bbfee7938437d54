"""The driver's side of the shim protocol: one connection to a shim's ``attach.sock`` per request.

The protocol itself is written down once, in :mod:`shim`'s docstring (the shim is
the server, and runs on the standard library alone, so it cannot import this).
Functions here take a shim's state directory (``<root>/<id>`` for a container,
``<root>/<id>/exec/<exec id>`` for a ``docker exec`` process) and answer
``None`` when no shim serves it any more (the socket is gone, refused, or closed
without an answer): the caller then reads the files the shim left behind.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from dockyard.errors import System

__all__ = ["ask_wait", "attach", "command", "connect", "open_exec", "readline"]

#: a unix socket path longer than this is reached through /proc/self/fd/<dir fd>/attach.sock
_MAX_PATH = 100


def connect(d: Path, timeout: float | None = 10.0) -> socket.socket:
    """A connection to the shim of state directory ``d``; raises OSError (FileNotFoundError,
    ConnectionRefusedError: no shim serves it)."""
    path = str(d / "attach.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        if len(path.encode()) < _MAX_PATH:
            sock.connect(path)
        else:
            dfd = os.open(d, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                sock.connect(f"/proc/self/fd/{dfd}/attach.sock")
            finally:
                os.close(dfd)
    except BaseException:
        sock.close()
        raise
    return sock


def readline(sock: socket.socket) -> bytes:
    """One answer line (b"" when the shim closed without one)."""
    buf = bytearray()
    while not buf.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def _line_before_stream(sock: socket.socket, limit: int = 65536) -> bytes:
    """One line, without consuming a byte past it (a stream follows at once); b"" at EOF."""
    buf = b""
    while len(buf) < limit:
        data = sock.recv(limit - len(buf), socket.MSG_PEEK)
        if not data:
            return b""
        i = data.find(b"\n")
        if i >= 0:
            return buf + sock.recv(i + 1)
        buf += sock.recv(len(data))  # no newline in what is there: take it, wait for more
    raise System("the exec shim sent an overlong line")


def command(d: Path, request: dict[str, Any], timeout: float | None = 10.0) -> dict[str, Any] | None:
    """Send one command (``start``, ``resize``, ``shutdown``, ``ping``) and return the shim's answer."""
    try:
        sock = connect(d, timeout)
    except (FileNotFoundError, ConnectionRefusedError, ConnectionResetError):
        return None
    except OSError as exc:
        raise System(f"cannot reach the shim of {d.name}: {exc}") from None
    with sock:
        try:
            sock.sendall(json.dumps(request).encode() + b"\n")
            line = readline(sock)
        except (BrokenPipeError, ConnectionResetError):
            return None
    if not line:
        return None
    try:
        answer = json.loads(line)
    except ValueError:
        raise System(f"bad answer from the shim of {d.name}: {line!r}") from None
    return answer if isinstance(answer, dict) else None


def ask_wait(d: Path, timeout: float | None) -> dict[str, Any] | None:
    """The shim's answer to ``wait`` (sent once the process has exited: ``exit_code``,
    ``oom_killed``, ``finished_ns``), or None when no shim answers.  Raises TimeoutError
    after ``timeout`` seconds (None: no limit)."""
    try:
        sock = connect(d, 10.0)
    except OSError:
        return None
    with sock:
        try:
            sock.sendall(b'{"cmd":"wait"}\n')
            sock.settimeout(timeout)
            line = readline(sock)
        except TimeoutError:
            raise
        except OSError:
            return None
    try:
        answer = json.loads(line) if line else None
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


def attach(d: Path, stdin: bool, stdout: bool, stderr: bool) -> socket.socket | None:
    """An attach connection carrying the chosen streams, or None when the shim turned it down
    (the process is finished).  Raises OSError when no shim serves ``d``."""
    sock = connect(d, 10.0)
    try:
        sock.sendall(json.dumps({"stdin": bool(stdin), "stdout": bool(stdout), "stderr": bool(stderr)}).encode()
                     + b"\n")
        ack = sock.recv(1)
    except BaseException:
        sock.close()
        raise
    if ack != b"+":
        sock.close()
        return None
    sock.settimeout(None)
    return sock


def open_exec(d: Path, request: dict[str, Any]) -> tuple[socket.socket, dict[str, Any] | None]:
    """Ask the container's shim to fork an exec shim (``{"cmd":"exec", ...}``); returns the
    connection (on success the exec's stream) and the answer line (None: closed without one).
    Raises OSError when no shim serves ``d``, ValueError for an unreadable answer."""
    sock = connect(d, 30.0)
    try:
        sock.sendall(json.dumps(request).encode() + b"\n")
        line = _line_before_stream(sock)
        answer = json.loads(line) if line else None
    except BaseException:
        sock.close()
        raise
    return sock, answer if isinstance(answer, dict) else None
