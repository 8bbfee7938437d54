"""Turning conmon's attach socket into the stream the core expects.

conmon serves ``attach`` as a ``SOCK_SEQPACKET`` socket: each packet it sends is one
read of the container's output prefixed by a byte naming the pipe (2 stdout, 3
stderr); each packet it receives is stdin; the client's EOF is stdin's EOF (unless
conmon was told ``--leave-stdin-open``).  The exec hooks promise a stream socket
carrying Docker stdcopy frames (raw bytes with a tty) whose half-close is stdin EOF.
A relay thread per attach translates between the two; it lives in the daemon, as the
client's connection does, so nothing of the container depends on it.
"""

from __future__ import annotations

import os
import select
import socket
import threading
from collections.abc import Callable

STDOUT_PIPE = 2
STDERR_PIPE = 3
#: conmon reads stdin packets into a 32 KiB buffer: never send larger ones
STDIN_PACKET = 32 * 1024
PACKET_MAX = 8192 + 1       # conmon's STDIO_BUF_SIZE plus the pipe byte
POLLRDHUP = getattr(select, "POLLRDHUP", 0x2000)


def connect_seqpacket(path: str) -> socket.socket:
    """Connect to a unix seqpacket socket, also when ``path`` is too long for sun_path."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        if len(path.encode()) < 100:
            sock.connect(path)
        else:
            dfd = os.open(os.path.dirname(path), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                sock.connect(f"/proc/self/fd/{dfd}/{os.path.basename(path)}")
            finally:
                os.close(dfd)
    except BaseException:
        sock.close()
        raise
    return sock


def frame(stream: int, data: bytes) -> bytes:
    return bytes((stream, 0, 0, 0)) + len(data).to_bytes(4, "big") + data


class Relay:
    """Pumps one conmon attach connection to one caller socket until the output ends.

    ``before_close`` runs after conmon closed the output and before the caller's
    socket is closed: an exec's relay records the exit code there, so a client that
    asks for it as soon as its stream ends finds it.
    """

    def __init__(self, conmon: socket.socket, *, tty: bool, stdin: bool, stdout: bool, stderr: bool,
                 before_close: Callable[[], None] | None = None, prefix: bytes = b"") -> None:
        self.conmon = conmon
        self.tty = tty
        self.stdin = stdin
        self.want = {STDOUT_PIPE: stdout or (tty and stderr), STDERR_PIPE: stderr and not tty}
        self.before_close = before_close
        self.caller, self.ours = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.prefix = prefix

    def start(self, name: str) -> socket.socket:
        """Start pumping in a thread; returns the caller's end."""
        threading.Thread(target=self._run, name=name, daemon=True).start()
        return self.caller

    def _run(self) -> None:
        ours, conmon = self.ours, self.conmon
        try:
            if self.prefix:
                ours.sendall(self.prefix)
            poller = select.poll()
            poller.register(conmon, select.POLLIN)
            poller.register(ours, select.POLLIN | POLLRDHUP)
            while True:
                events = dict(poller.poll())
                caller = events.get(ours.fileno(), 0)
                if caller & (select.POLLHUP | select.POLLERR):
                    return              # the caller went away entirely: drop the attach
                if caller & (select.POLLIN | POLLRDHUP):
                    data = self._caller_data()
                    if not data:        # half-close: stdin EOF; the output keeps flowing
                        poller.unregister(ours)
                        if self.stdin:
                            try:
                                conmon.shutdown(socket.SHUT_WR)
                            except OSError:
                                pass
                if events.get(conmon.fileno(), 0):
                    packet = conmon.recv(PACKET_MAX)
                    if not packet:
                        break
                    if not self._output(packet):
                        return
            if self.before_close is not None:
                self.before_close()
            ours.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            ours.close()
            conmon.close()

    def _output(self, packet: bytes) -> bool:
        """Forward one packet; False once the caller cannot take it any more."""
        pipe, data = packet[0], packet[1:]
        if not data or not self.want.get(pipe):
            return True
        try:
            self.ours.sendall(data if self.tty else frame(1 if pipe == STDOUT_PIPE else 2, data))
        except OSError:
            return False
        return True

    def _caller_data(self) -> bytes:
        """Forward what the caller wrote as stdin; b"" at its half-close."""
        try:
            data = self.ours.recv(STDIN_PACKET)
        except OSError:
            return b""
        if data and self.stdin:
            try:
                self.conmon.sendall(data)
            except OSError:
                pass
        return data
