"""docker run -it as a person uses it: a real terminal, detach with ctrl-p ctrl-q,
re-attach, exit."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time

import pytest

from tests.helpers.daemon import DOCKER

pytestmark = [
    pytest.mark.requires_root,
    pytest.mark.requires_lxc,
    pytest.mark.integration,
    pytest.mark.requires_docker_cli,
]


class Terminal:
    """A client process on a pseudo-terminal of its own."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
        os.close(slave)
        self.seen = b""

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def expect(self, needle: bytes, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{needle!r} never appeared; the terminal shows {self.seen[-400:]!r}")
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    self.seen += os.read(self.master, 4096)
                except OSError:  # the client exited and closed the terminal
                    break
        assert needle in self.seen, self.seen[-400:]

    def close(self) -> int:
        try:
            return self.process.wait(timeout=15)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            os.close(self.master)


def test_run_it_detach_and_reattach(daemon):
    session = Terminal([DOCKER, "run", "-it", "--name", "tty-sh", "busybox", "sh"], daemon.env())
    try:
        session.expect(b"# ")
        session.type(b"stty size; tty; echo marker-$((6*7))\r")
        session.expect(b"marker-42")
        assert b"/dev/pts/" in session.seen
        session.type(b"\x10\x11")  # ctrl-p ctrl-q
        assert session.close() == 0
    finally:
        session.process.kill()
    state = json.loads(daemon.docker("inspect", "tty-sh").stdout)[0]["State"]
    assert state["Running"] is True  # detaching leaves the shell running
    again = Terminal([DOCKER, "attach", "tty-sh"], daemon.env())
    try:
        again.type(b"echo back-$((2+3))\r")
        again.expect(b"back-5")
        again.type(b"exit 3\r")
        assert again.close() == 3
    finally:
        again.process.kill()
    daemon.docker("rm", "-f", "tty-sh")
