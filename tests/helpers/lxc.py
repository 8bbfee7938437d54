"""Driving the exec_lxc driver directly in tests: rootfs, ids, streams, and what runs on the host."""

from __future__ import annotations

import os
import secrets
import signal
import socket
from pathlib import Path

from dockyard.models.runtime import RuntimeSpec
from dockyard.testing.exec_conformance import build_busybox_rootfs

BUSYBOX = Path("/bin/busybox")


def build_rootfs(root: Path) -> Path:
    """The conformance suite's busybox rootfs, plus a /data directory for bind tests."""
    build_busybox_rootfs(root)
    (root / "data").mkdir(exist_ok=True)
    return root


def new_id() -> str:
    return secrets.token_hex(32)


def cleanup_driver(drv) -> None:
    """Kill and delete whatever the test left behind under the driver's root."""
    for cid in drv.exec_list():
        try:
            state = drv.exec_state(container_id=cid)
            if state is not None and state.status in ("running", "paused"):
                drv.exec_stop(container_id=cid, signal=signal.SIGKILL, timeout=0)
            drv.exec_delete(container_id=cid)
        except Exception:  # noqa: BLE001 - best effort; the assertions are in the tests
            helper = drv.root / cid / "conmon.pid"
            try:
                os.kill(int(helper.read_text()), signal.SIGKILL)
            except (OSError, ValueError):
                pass


def read_all(sock: socket.socket, timeout: float = 20.0) -> bytes:
    sock.settimeout(timeout)
    chunks = []
    while True:
        data = sock.recv(65536)
        if not data:
            break
        chunks.append(data)
    sock.close()
    return b"".join(chunks)


def demux(data: bytes) -> tuple[bytes, bytes, list[tuple[int, bytes]]]:
    """Split a Docker stdcopy stream into (stdout, stderr, frames)."""
    out, err, frames = bytearray(), bytearray(), []
    i = 0
    while i < len(data):
        assert i + 8 <= len(data), f"truncated frame header at {i}: {data[i:]!r}"
        stream = data[i]
        assert data[i + 1 : i + 4] == b"\0\0\0", f"bad frame header {data[i : i + 8]!r}"
        size = int.from_bytes(data[i + 4 : i + 8], "big")
        payload = data[i + 8 : i + 8 + size]
        assert len(payload) == size, "truncated frame payload"
        frames.append((stream, payload))
        (out if stream == 1 else err).extend(payload)
        i += 8 + size
    return bytes(out), bytes(err), frames


def run(driver, spec: RuntimeSpec, *, stdin: bytes | None = None, close_stdin: bool = True):
    """create + attach (before start) + start + wait; returns (ExitStatus, raw attach bytes)."""
    driver.exec_create(spec=spec)
    sock = driver.exec_attach(container_id=spec.container_id, stdin=stdin is not None, stdout=True, stderr=True)
    driver.exec_start(container_id=spec.container_id)
    if stdin is not None:
        sock.sendall(stdin)
        if close_stdin:
            sock.shutdown(socket.SHUT_WR)
    data = read_all(sock)
    status = driver.exec_wait(container_id=spec.container_id)
    return status, data


def container_pids(container_id: str) -> list[int]:
    """Host pids of processes in the container's cgroup (any hierarchy)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if f"dockyard/{container_id}" in (proc / "cgroup").read_text():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def helper_pids(state_dir: Path) -> list[int]:
    """Live processes whose command line names the state dir: conmon and the LXC monitor (exec ones too)."""
    out = []
    needle = str(state_dir).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        if needle in cmd and stat.rsplit(")", 1)[-1].split()[0] != "Z":
            out.append(int(proc.name))
    return out
