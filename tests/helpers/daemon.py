"""A real dockyard daemon for end-to-end tests: its own data root, socket and bridge.

Clients: the ``dockyard`` CLI, the real ``docker`` CLI and docker-py, all pointed
at the temporary socket (``Daemon.env()``).
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.waiting import wait_for

DOCKER = shutil.which("docker", path="/usr/local/bin:/usr/bin")
#: the console script installed beside this interpreter (pip puts it in the venv's bin/)
DOCKYARD = Path(sys.executable).with_name("dockyard")
#: every end-to-end test runs on this storage driver (CI runs the suite once per driver)
STORAGE_DRIVER = os.environ.get("DOCKYARD_TEST_STORAGE_DRIVER", "vfs")
#: ... and on this exec driver ("lxc", "oci"), with this runtime for oci ("runc", "crun"); "" = the default
EXEC_DRIVER = os.environ.get("DOCKYARD_TEST_EXEC_DRIVER", "")
RUNTIME = os.environ.get("DOCKYARD_TEST_RUNTIME", "")


def exec_driver_flags() -> tuple[str, ...]:
    return (("--exec-driver", EXEC_DRIVER) if EXEC_DRIVER else ()) + (("--runtime", RUNTIME) if RUNTIME else ())


def busybox_rootfs_tar() -> bytes:
    """A busybox root file system built from the host's busybox-static."""
    busybox = shutil.which("busybox")
    assert busybox, "busybox-static must be installed"
    applets = subprocess.run([busybox, "--list-full"], capture_output=True, text=True, check=True).stdout.split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def add_dir(name: str, mode: int = 0o755) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, 1700000000
            tar.addfile(info)

        for d in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "root", "home", "var", "dev", "proc", "sys"):
            add_dir(d)
        add_dir("tmp", 0o1777)
        data = Path(busybox).read_bytes()
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode, info.mtime = len(data), 0o755, 1700000000
        tar.addfile(info, io.BytesIO(data))
        for applet in applets:
            if applet == "bin/busybox":
                continue
            info = tarfile.TarInfo(applet)
            info.type, info.linkname, info.mtime = tarfile.SYMTYPE, "/bin/busybox", 1700000000
            tar.addfile(info)
        passwd = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"
        for name, text in (("etc/passwd", passwd), ("etc/group", "root:x:0:\nnogroup:x:65534:\n")):
            raw = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(raw), 0o644, 1700000000
            tar.addfile(info, io.BytesIO(raw))
    return buf.getvalue()


@dataclass
class Daemon:
    root: Path
    socket: Path
    process: subprocess.Popen
    log: Path

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(DOCKYARD_HOST=self.host, DOCKER_HOST=self.host, DOCKER_CONFIG=str(self.root / "docker-config"))
        return env

    def dockyard(self, *args: str, input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "dockyard.cli", *args],
            input=input,
            capture_output=True,
            env=self.env(),
            timeout=timeout,
        )

    def docker(self, *args: str, input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        assert DOCKER, "the docker CLI is needed"
        return subprocess.run([DOCKER, *args], input=input, capture_output=True, env=self.env(), timeout=timeout)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                return self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                return self.process.wait()
        return self.process.returncode


#: data roots of every daemon started, so their bridges go at the end of the session
STARTED_ROOTS: set[Path] = set()


def start_daemon(
    root: Path, extra: tuple[str, ...] = (), env: dict[str, str] | None = None, command: tuple[str, ...] | None = None
) -> Daemon:
    """A daemon on ``root`` with a bridge of its own (named after the root, so a
    restarted daemon adopts it and parallel test daemons never share one).
    ``env``: variables added to the daemon's environment.  ``command`` is how the daemon is
    started: by default as a user starts it, the console script's ``dockyard daemon`` (so whatever
    that entry point does to the process, signal dispositions, logging, is what the tests see);
    the start-up tests pass ``python -m dockyard.daemon`` or a unit file's ``ExecStart``."""
    assert DOCKYARD.exists(), f"the dockyard console script is not installed beside {sys.executable}"
    STARTED_ROOTS.add(root)
    socket_path = root / "dockyard.sock"
    socket_path.unlink(missing_ok=True)  # left by a daemon killed with SIGKILL
    log = root / "daemon.stderr"
    with open(log, "ab") as stderr:
        process = subprocess.Popen(
            [
                *(command or (str(DOCKYARD), "daemon")),
                "-H",
                f"unix://{socket_path}",
                "--data-root",
                str(root / "data"),
                "--storage-driver",
                STORAGE_DRIVER,
                *exec_driver_flags(),
                "--network-opt",
                f"bridge={bridge_name(root)}",
                *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    return wait_until_up(Daemon(root, socket_path, process, log))


def wait_until_up(daemon: Daemon, timeout: float = 30) -> Daemon:
    """``daemon`` once its socket answers; an AssertionError with its log if it exits or stays silent
    (``daemon.process`` may be any object with ``poll``, ``kill`` and ``returncode``: an adopted pid)."""
    process = daemon.process
    if not wait_for(lambda: _answers(daemon.socket) or process.poll() is not None, timeout=timeout):
        process.kill()
        raise AssertionError(f"daemon did not come up:\n{daemon.log.read_text()}")
    if process.poll() is not None:
        raise AssertionError(f"daemon exited with {process.returncode}:\n{daemon.log.read_text()}")
    return daemon


def bridge_name(root: Path) -> str:
    return "dyt" + hashlib.sha256(str(root).encode()).hexdigest()[:8]


def remove_all_bridges() -> None:
    for root in list(STARTED_ROOTS):
        remove_bridge(root)
    STARTED_ROOTS.clear()


def remove_bridge(root: Path) -> None:
    """Delete a test daemon's bridge and nftables table (a real daemon keeps them, like docker0)."""
    name = bridge_name(root)
    subprocess.run(["ip", "link", "del", name], capture_output=True)
    subprocess.run(["nft", "delete", "table", "ip", f"dockyard_{name}"], capture_output=True)


def _answers(socket_path: Path) -> bool:
    if not socket_path.exists():
        return False
    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.connect(str(socket_path))
            s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
            return s.recv(64).split(b" ")[1:2] == [b"200"]
        except OSError:
            return False


def out(result: subprocess.CompletedProcess) -> str:
    """The stdout of a client command that must succeed."""
    assert result.returncode == 0, (result.returncode, result.stdout.decode(), result.stderr.decode())
    return result.stdout.decode()


def remove_all_containers(d: Daemon) -> None:
    """Force-remove every container so no process outlives the test module."""
    import docker as dockerpy

    if d.process.poll() is not None:
        return
    client = dockerpy.DockerClient(base_url=d.host, timeout=30)
    try:
        for c in client.containers.list(all=True):
            try:
                c.remove(force=True)
            except dockerpy.errors.APIError:
                pass
    finally:
        client.close()


def ask(host: str, port: int, timeout: float = 5.0) -> bytes:
    """Send ``ping`` to a TCP server (a container's, published) and return its first answer,
    waiting for it to listen."""

    def answer() -> bytes:
        try:
            with socket.create_connection((host, port), timeout=2) as s:
                s.sendall(b"ping\n")
                return s.recv(64)
        except OSError:
            return b""

    data = wait_for(answer, timeout=timeout, interval=0.1)
    assert data, f"nothing answered on {host}:{port}"
    return data


def free_port() -> int:
    """A loopback TCP port nothing listens on (the kernel's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class TcpDaemon(Daemon):
    """A daemon that also listens on a loopback TCP port: for browsers and HTTP tools that cannot
    reach a unix socket (Selenium's Chromium, schemathesis, docker-compose, lazydocker)."""

    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def busybox_daemon(root: Path, extra: tuple[str, ...] = ()) -> Iterator[Daemon]:
    """A daemon on ``root`` (with ``extra`` flags) and busybox:latest imported; afterwards its containers,
    bridge and root are removed."""
    with _cleaned_up(start_daemon(root, extra)) as daemon:
        out(daemon.dockyard("import", "-", "busybox:latest", input=busybox_rootfs_tar()))
        yield daemon


@contextmanager
def _cleaned_up(daemon: Daemon) -> Iterator[Daemon]:
    try:
        yield daemon
    finally:
        remove_all_containers(daemon)
        daemon.stop()
        remove_bridge(daemon.root)
        shutil.rmtree(daemon.root, ignore_errors=True)


@contextmanager
def tcp_daemon(root: Path, *extra: str, busybox: bool = True) -> Iterator[TcpDaemon]:
    """A daemon on ``root`` with ``-H tcp://127.0.0.1:<free port>`` (and ``extra`` flags), busybox
    imported unless not ``busybox``; its containers, bridge and root are removed afterwards."""
    port = free_port()
    started = start_daemon(root, ("-H", f"tcp://127.0.0.1:{port}", *extra))
    with _cleaned_up(TcpDaemon(started.root, started.socket, started.process, started.log, port)) as daemon:
        if busybox:
            out(daemon.dockyard("import", "-", "busybox:latest", input=busybox_rootfs_tar()))
        yield daemon
