"""A real daemon per test module: its own data root, socket and busybox image.

The daemon is started exactly as a user starts it: by the ``dockyard`` console
script (the entry point ``dockyard.cli.main:main`` that contrib/ and the README
use), so whatever that entry point does to the process (signal dispositions,
logging) is what the tests see.  Clients: the ``dockyard`` CLI, the real
``docker`` CLI and docker-py, all pointed at the temporary socket.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = [pytest.mark.requires_root, pytest.mark.requires_lxc]

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
        for name, text in (("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"),
                           ("etc/group", "root:x:0:\nnogroup:x:65534:\n")):
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
        return subprocess.run([sys.executable, "-m", "dockyard.cli", *args], input=input, capture_output=True,
                              env=self.env(), timeout=timeout)

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


def start_daemon(root: Path, extra: tuple[str, ...] = (), command: tuple[str, ...] | None = None,
                 env: dict[str, str] | None = None) -> Daemon:
    """A daemon on ``root`` with a bridge of its own (named after the root, so a
    restarted daemon adopts it and parallel test daemons never share one).

    ``command`` is how the daemon is started: by default the console script's
    ``dockyard daemon``; the start-up tests pass ``python -m dockyard.daemon`` or
    a unit file's ``ExecStart``."""
    assert DOCKYARD.exists(), f"the dockyard console script is not installed beside {sys.executable}"
    STARTED_ROOTS.add(root)
    socket_path = root / "dockyard.sock"
    socket_path.unlink(missing_ok=True)  # left by a daemon killed with SIGKILL
    log = root / "daemon.stderr"
    process = subprocess.Popen(
        [*(command or (str(DOCKYARD), "daemon")), "-H", f"unix://{socket_path}", "--data-root", str(root / "data"),
         "--storage-driver", STORAGE_DRIVER, *exec_driver_flags(), "--network-opt", f"bridge={bridge_name(root)}",
         *extra],
        stdout=subprocess.DEVNULL, stderr=open(log, "ab"), start_new_session=True, env=env)
    return wait_until_up(Daemon(root, socket_path, process, log))


def wait_until_up(daemon: Daemon) -> Daemon:
    socket_path, process, log = daemon.socket, daemon.process, daemon.log
    deadline = time.monotonic() + 30
    while not _answers(socket_path):
        if process.poll() is not None:
            raise AssertionError(f"daemon exited with {process.returncode}:\n{log.read_text()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"daemon did not come up:\n{log.read_text()}")
        time.sleep(0.05)
    return daemon


def bridge_name(root: Path) -> str:
    import hashlib

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
    import socket

    if not socket_path.exists():
        return False
    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.connect(str(socket_path))
            s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
            return s.recv(64).split(b" ")[1:2] == [b"200"]
        except OSError:
            return False


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    root = tmp_path_factory.mktemp("dockyard")
    d = start_daemon(root)
    try:
        result = d.dockyard("import", "-", "busybox:latest", input=busybox_rootfs_tar())
        assert result.returncode == 0, result.stderr.decode()
        yield d
    finally:
        _remove_all(d)
        d.stop()
        remove_bridge(root)
        shutil.rmtree(root, ignore_errors=True)


def _remove_all(d: Daemon) -> None:
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


@pytest.fixture(scope="module")
def dockerpy(daemon):
    import docker as dockerpy

    client = dockerpy.DockerClient(base_url=daemon.host, timeout=60)
    yield client
    client.close()
