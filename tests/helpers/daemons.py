"""A test daemon listening on a loopback TCP port as well as its unix socket (for browsers and HTTP tools
that cannot reach a unix socket: Selenium's Chromium, schemathesis, lazydocker's tunnel-less setups)."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.integration.conftest import Daemon, _remove_all, busybox_rootfs_tar, remove_bridge, start_daemon


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TcpDaemon(Daemon):
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def tcp_daemon(root: Path, *extra: str, busybox: bool = True) -> Iterator[TcpDaemon]:
    """A daemon on ``root`` with ``-H tcp://127.0.0.1:<free port>`` (and ``extra`` flags); busybox imported."""
    port = free_port()
    started = start_daemon(root, ("-H", f"tcp://127.0.0.1:{port}", *extra))
    daemon = TcpDaemon(started.root, started.socket, started.process, started.log)
    daemon.port = port
    try:
        if busybox:
            result = daemon.dockyard("import", "-", "busybox:latest", input=busybox_rootfs_tar())
            assert result.returncode == 0, result.stderr.decode()
        yield daemon
    finally:
        _remove_all(daemon)
        daemon.stop()
        remove_bridge(root)
        shutil.rmtree(root, ignore_errors=True)
