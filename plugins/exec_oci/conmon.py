"""Starting conmon, the per-container monitor, and talking to it.

conmon (``--api-version 1``) forks itself away from its caller, runs ``runtime
create`` (or ``runtime exec``) as its child and stays as the container's parent
(a subreaper): it owns the stdio (pipes, or the pty the runtime hands it), writes
the log, serves the attach socket and the ``ctl`` fifo (resize), records OOM
kills and, when the process exits, writes its exit code, then exits itself.  The
daemon can die and come back at any point: nothing of a container lives in it.

Its parent-facing protocol is a few inherited pipes, named in the environment:

``_OCI_SYNCPIPE``
    conmon writes JSON lines ``{"data": N, "message": "..."}``: first the pid of
    the process (``N < 0`` with the runtime's error when create or exec failed),
    and, for an exec, its exit status when it ends;
``_OCI_ATTACHPIPE`` / ``_OCI_STARTPIPE`` (exec only)
    conmon says when its attach socket is listening, then waits for a byte on the
    start pipe before it runs ``runtime exec``: an attach made in between sees
    every byte of output.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from dockyard.errors import System

SYNC_TIMEOUT = 60.0


@dataclass
class Monitor:
    """What the driver needs to start one conmon: everything but the process-specific flags."""

    conmon: str
    runtime_path: str
    runtime_args: list[str] = field(default_factory=list)
    log_level: str = "error"


def _line(fd: int, timeout: float | None) -> dict | None:
    """One JSON line from a sync pipe (None at EOF or after ``timeout`` seconds; None waits forever)."""
    buf = b""
    deadline = None if timeout is None else time.monotonic() + timeout
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while not buf.endswith(b"\n"):
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return None
        if not poller.poll(None if remaining is None else remaining * 1000):
            return None
        chunk = os.read(fd, 1)      # byte by byte: the next message must stay in the pipe
        if not chunk:
            break
        buf += chunk
    try:
        value = json.loads(buf) if buf.strip() else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class SyncPipe:
    """The read end of ``_OCI_SYNCPIPE``."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def read(self, timeout: float | None = SYNC_TIMEOUT) -> tuple[int | None, str]:
        """(data, message) of the next message; (None, "") at EOF or timeout."""
        msg = _line(self.fd, timeout)
        if msg is None:
            return None, ""
        try:
            return int(msg.get("data")), str(msg.get("message") or "").strip()
        except (TypeError, ValueError):
            return None, ""

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _spawn(argv: list[str], cwd: Path, pipes: dict[str, int], stderr_path: Path) -> None:
    """Run conmon's first process: it forks the real monitor and exits at once."""
    env = {"PATH": os.environ.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")}
    env.update({name: str(fd) for name, fd in pipes.items()})
    try:
        with open(stderr_path, "ab") as err:
            proc = subprocess.Popen(argv, cwd=str(cwd), env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=err, pass_fds=tuple(pipes.values()),
                                    start_new_session=True)
    except OSError as exc:
        raise System(f"cannot run conmon: {exc}") from None
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise System("conmon did not detach") from None
    if proc.returncode != 0:
        try:
            detail = stderr_path.read_text(errors="replace").strip()[-1000:]
        except OSError:
            detail = ""
        raise System(f"conmon failed ({proc.returncode}): {detail or 'no output'}")


def _common(m: Monitor, *, cid: str, cuuid: str, bundle: Path, tty: bool, stdin: bool) -> list[str]:
    argv = [m.conmon, "--api-version", "1", "-c", cid, "-u", cuuid, "-n", cid, "-r", m.runtime_path,
            "-b", str(bundle), "-p", str(bundle / "pidfile"), "-P", str(bundle / "conmon.pid"),
            "--persist-dir", str(bundle), "--full-attach", "--socket-dir-path", str(bundle),
            "--log-level", m.log_level, "--no-sync-log"]
    for arg in m.runtime_args:
        argv += ["--runtime-arg", arg]
    if tty:
        argv.append("-t")
    if stdin:
        argv.append("-i")
    return argv


def create(m: Monitor, *, cid: str, bundle: Path, log_path: Path, tty: bool, stdin: bool,
           leave_stdin_open: bool) -> SyncPipe:
    """Start conmon for a container (``runtime create``); returns the sync pipe whose
    first message says whether the container was created (its pid) or why not."""
    argv = _common(m, cid=cid, cuuid=cid, bundle=bundle, tty=tty, stdin=stdin)
    argv += ["-l", f"k8s-file:{log_path}"]
    if leave_stdin_open:
        argv.append("--leave-stdin-open")
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        _spawn(argv, bundle, {"_OCI_SYNCPIPE": w}, bundle / "conmon.err")
    except BaseException:
        os.close(r)
        raise
    finally:
        os.close(w)
    return SyncPipe(r)


@dataclass
class ExecSession:
    """The daemon's end of one ``docker exec`` under conmon."""

    sync: SyncPipe
    start_fd: int
    attach_fd: int

    def wait_attachable(self, timeout: float = SYNC_TIMEOUT) -> bool:
        ok = _line(self.attach_fd, timeout) is not None
        os.close(self.attach_fd)
        self.attach_fd = -1
        return ok

    def go(self) -> None:
        """Let conmon run ``runtime exec`` (after the caller attached)."""
        try:
            os.write(self.start_fd, b"0")
        finally:
            os.close(self.start_fd)
            self.start_fd = -1

    def close(self) -> None:
        for name in ("start_fd", "attach_fd"):
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)
        self.sync.close()


def exec_(m: Monitor, *, cid: str, exec_id: str, bundle: Path, process_json: Path, tty: bool,
          stdin: bool) -> ExecSession:
    """Start conmon for an exec session in ``bundle`` (its own directory)."""
    argv = _common(m, cid=cid, cuuid=exec_id, bundle=bundle, tty=tty, stdin=stdin)
    argv += ["-e", "--exec-attach", "--exec-process-spec", str(process_json), "-l", "none"]
    fds: list[int] = []
    try:
        sync_r, sync_w = os.pipe2(os.O_CLOEXEC)
        fds += [sync_r, sync_w]
        attach_r, attach_w = os.pipe2(os.O_CLOEXEC)
        fds += [attach_r, attach_w]
        start_r, start_w = os.pipe2(os.O_CLOEXEC)
        fds += [start_r, start_w]
        # conmon reads the start pipe twice: once on start-up (a caller could move it to a
        # cgroup first), once before ``runtime exec``.  The first byte goes now.
        os.write(start_w, b"0")
        _spawn(argv, bundle, {"_OCI_SYNCPIPE": sync_w, "_OCI_ATTACHPIPE": attach_w, "_OCI_STARTPIPE": start_r},
               bundle / "conmon.err")
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    for fd in (sync_w, attach_w, start_r):
        os.close(fd)
    return ExecSession(SyncPipe(sync_r), start_w, attach_r)
