"""Containers under conmon: what the exec drivers that use it share.

conmon (``--api-version 1``) is a small C monitor, one per container: it forks
itself away from its caller, runs ``runtime create`` (or ``runtime exec``) as its
child and stays as the process's parent (a subreaper).  It owns the stdio (pipes,
or the pty the runtime hands it), writes the log, serves the attach socket and the
``ctl`` fifo (resize), records OOM kills and, when the process exits, writes its
exit code, then exits itself.  The daemon can die and come back at any point:
nothing of a container lives in it.  exec_oci runs runc or crun under it; exec_lxc
a small liblxc program that speaks the two runtime commands conmon uses.

Its parent-facing protocol is a few inherited pipes, named in the environment:

``_OCI_SYNCPIPE``
    conmon writes JSON lines ``{"data": N, "message": "..."}``: first the pid of
    the process (``N < 0`` with the runtime's error when create or exec failed),
    and, for an exec, its exit status when it ends;
``_OCI_ATTACHPIPE`` / ``_OCI_STARTPIPE`` (exec only)
    conmon says when its attach socket is listening, then waits for a byte on the
    start pipe before it runs ``runtime exec``: an attach made in between sees
    every byte of output.

Its attach socket (``<bundle>/attach``) is ``SOCK_SEQPACKET``: each packet it sends
is one read of the output prefixed by a byte naming the pipe (2 stdout, 3 stderr);
each packet it receives is stdin; the client's EOF is stdin's EOF (unless
``--leave-stdin-open``).  :class:`Relay` turns it into the stream the exec hooks
promise (Docker stdcopy frames, or raw bytes with a tty; half-close = stdin EOF).

:class:`Supervisor` is the state a driver keeps per container directory (the
*bundle*) and the hooks that are the same whatever the runtime: state, wait,
attach, resize, signals, ``docker exec``.  The driver writes the runtime's
configuration, starts and deletes (those differ between runtimes).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal as _signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from dockyard import hookimpl
from dockyard.cgroups import Cgroups, cgroup_dir
from dockyard.errors import Conflict, InvalidParameter, NotFound, NotModified, System
from dockyard.models.runtime import ExitStatus, ProcessState, Resources

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
        chunk = os.read(fd, 1)  # byte by byte: the next message must stay in the pipe
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
        with open(os.open(stderr_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600), "ab") as err:
            proc = subprocess.Popen(
                argv,
                cwd=str(cwd),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                pass_fds=tuple(pipes.values()),
                start_new_session=True,
            )
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
    argv = [
        m.conmon,
        "--api-version",
        "1",
        "-c",
        cid,
        "-u",
        cuuid,
        "-n",
        cid,
        "-r",
        m.runtime_path,
        "-b",
        str(bundle),
        "-p",
        str(bundle / "pidfile"),
        "-P",
        str(bundle / "conmon.pid"),
        "--persist-dir",
        str(bundle),
        "--full-attach",
        "--socket-dir-path",
        str(bundle),
        "--log-level",
        m.log_level,
        "--no-sync-log",
    ]
    for arg in m.runtime_args:
        argv += ["--runtime-arg", arg]
    if tty:
        argv.append("-t")
    if stdin:
        argv.append("-i")
    return argv


def spawn_create(
    m: Monitor, *, cid: str, bundle: Path, log_path: Path | None, tty: bool, stdin: bool, leave_stdin_open: bool
) -> SyncPipe:
    """Start conmon for a container (``runtime create``); returns the sync pipe whose
    first message says whether the container was created (its pid) or why not.  No
    ``log_path``: conmon's ``none`` log driver (``--log-driver none``)."""
    argv = _common(m, cid=cid, cuuid=cid, bundle=bundle, tty=tty, stdin=stdin)
    # (no --log-size-max: conmon would start the file over, losing it; dockyard.log_rotation keeps files)
    argv += ["-l", f"k8s-file:{log_path}" if log_path is not None else "none:/dev/null"]
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


def spawn_exec(
    m: Monitor, *, cid: str, exec_id: str, bundle: Path, process_file: Path, tty: bool, stdin: bool
) -> ExecSession:
    """Start conmon for an exec session in ``bundle`` (its own directory)."""
    argv = _common(m, cid=cid, cuuid=exec_id, bundle=bundle, tty=tty, stdin=stdin)
    argv += ["-e", "--exec-attach", "--exec-process-spec", str(process_file), "-l", "none"]
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
        _spawn(
            argv,
            bundle,
            {"_OCI_SYNCPIPE": sync_w, "_OCI_ATTACHPIPE": attach_w, "_OCI_STARTPIPE": start_r},
            bundle / "conmon.err",
        )
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    for fd in (sync_w, attach_w, start_r):
        os.close(fd)
    return ExecSession(SyncPipe(sync_r), start_w, attach_r)


# ----------------------------------------------------------------------------------------------------
# the attach relay
# ----------------------------------------------------------------------------------------------------

STDOUT_PIPE = 2
STDERR_PIPE = 3
#: conmon reads stdin packets into a 32 KiB buffer: never send larger ones
STDIN_PACKET = 32 * 1024
PACKET_MAX = 8192 + 1  # conmon's STDIO_BUF_SIZE plus the pipe byte
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

    def __init__(
        self,
        conmon: socket.socket,
        *,
        tty: bool,
        stdin: bool,
        stdout: bool,
        stderr: bool,
        before_close: Callable[[], None] | None = None,
    ) -> None:
        self.conmon = conmon
        self.tty = tty
        self.stdin = stdin
        self.want = {STDOUT_PIPE: stdout or (tty and stderr), STDERR_PIPE: stderr and not tty}
        self.before_close = before_close
        self.caller, self.ours = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)

    def start(self, name: str) -> socket.socket:
        """Start pumping in a thread; returns the caller's end."""
        threading.Thread(target=self._run, name=name, daemon=True).start()
        return self.caller

    def _run(self) -> None:
        ours, conmon = self.ours, self.conmon
        try:
            poller = select.poll()
            poller.register(conmon, select.POLLIN)
            poller.register(ours, select.POLLIN | POLLRDHUP)
            while True:
                events = dict(poller.poll())
                caller = events.get(ours.fileno(), 0)
                if caller & (select.POLLHUP | select.POLLERR):
                    return  # the caller went away entirely: drop the attach
                if caller & (select.POLLIN | POLLRDHUP):
                    data = self._caller_data()
                    if not data:  # half-close: stdin EOF; the output keeps flowing
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


# ----------------------------------------------------------------------------------------------------
# the per-container state a driver keeps, and the hooks that do not depend on the runtime
# ----------------------------------------------------------------------------------------------------

UNKNOWN_EXIT = 255


def ns_to_dt(ns: int | None) -> datetime | None:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc) if ns else None


def read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def write_private(path: Path, text: str | bytes, mode: int = 0o600) -> None:
    """Create ``path`` with ``mode`` (never readable by other users, not even for a moment): bundles
    hold the container's environment and command, secrets often."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(text.encode() if isinstance(text, str) else text)
    os.chmod(path, mode)


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return False
    return data[data.rindex(b")") + 2 :][:1] not in (b"Z", b"X")


def wait_pid_gone(pid: int, timeout: float | None) -> bool:
    """Wait until ``pid`` (any process, not only a child) is gone; True if it is."""
    if not alive(pid):
        return True
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return not alive(pid)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if poller.poll(None if remaining is None else remaining * 1000) or not alive(pid):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
    finally:
        os.close(fd)


def eof_socket() -> socket.socket:
    """A connected socket whose peer is already closed: an empty, finished stream."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    b.close()
    return a


def exec_failure_code(message: str) -> int:
    """Docker's exit code for a process the runtime could not start (moby ``daemon/exec.go``)."""
    low = message.lower()
    return 127 if "executable file not found" in low or "no such file or directory" in low else 126


def _wait_for_size(pid: int, height: int, width: int, timeout: float = 1.0) -> None:
    """Wait (bounded) until the terminal on ``pid``'s stdin is ``height`` x ``width``."""
    import fcntl
    import struct
    import termios

    try:
        fd = os.open(f"/proc/{pid}/fd/0", os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return
    try:
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while time.monotonic() < deadline:
            try:
                rows, cols = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, bytes(8)))[:2]
            except OSError:
                return  # not a terminal (any more)
            if (rows, cols) == (height, width):
                return
            time.sleep(delay)
            delay = min(delay * 2, 0.02)
    finally:
        os.close(fd)


class _Exec:
    """One docker exec: its conmon's sync pipe, and its exit code once known."""

    def __init__(self, session: ExecSession, directory: Path) -> None:
        self.session = session
        self.dir = directory
        self.code: int | None = None
        self.done = threading.Event()
        self.lock = threading.Lock()

    def collect(self, timeout: float | None = None) -> int:
        """The exit status conmon sends down the sync pipe when the process ends."""
        with self.lock:
            if self.code is None:
                data, _ = self.session.sync.read(timeout=timeout)
                if data is None:
                    data = read_int(self.dir / "exit")
                self.code = UNKNOWN_EXIT if data is None else data
                self.session.close()
                self.done.set()
            return self.code

    def failed(self, code: int) -> None:
        with self.lock:
            self.code = code
            self.session.close()
            self.done.set()


class Supervisor:
    """Containers under conmon, one directory (bundle) each under ``root``:

    ``meta.json``   the driver's notes (tty, stdin, stop signal...); marks a container
    ``conmon.pid``  conmon's pid (conmon writes it); ``pidfile`` the process's (the runtime)
    ``started``     JSON: pid and start time (:meth:`mark_started`)
    ``exit``        the exit code (conmon, at the end)
    ``attach``      conmon's attach socket; ``ctl`` and ``winsz`` its control fifos
    ``conmon.err``  conmon's own error output
    ``exec/<id>/``  one ``docker exec``: its process file and a conmon of its own

    ``oom_killed(directory)`` tells whether the runtime recorded an OOM kill.
    """

    def __init__(self, root: Path, cgroup2: bool, oom_killed: Callable[[Path], bool]) -> None:
        self.root = root
        self.cgroup2 = cgroup2
        self.oom_killed = oom_killed
        self.lock = threading.Lock()
        #: conmons started by :meth:`create` whose word on ``runtime create`` nobody has read yet
        self.pending: dict[str, SyncPipe] = {}
        self.errors: dict[str, str] = {}
        self.execs: dict[tuple[str, str], _Exec] = {}
        self.exec_codes: dict[tuple[str, str], int] = {}

    def close(self) -> None:
        with self.lock:
            pending, self.pending = self.pending, {}
        for sync in pending.values():
            sync.close()

    # -- directories and files ---------------------------------------------------------------------

    def dir(self, container_id: str) -> Path:
        if not container_id or "/" in container_id or container_id.startswith(".") or len(container_id) > 128:
            raise InvalidParameter(f"invalid container id {container_id!r}")
        return self.root / container_id

    def existing(self, container_id: str) -> Path:
        d = self.dir(container_id)
        if not (d / "meta.json").exists():
            raise NotFound(f"No such container: {container_id}")
        return d

    def list(self) -> list[str]:
        try:
            return sorted(p.name for p in self.root.iterdir() if (p / "meta.json").exists())
        except OSError:
            return []

    @staticmethod
    def meta(d: Path) -> dict:
        return read_json(d / "meta.json") or {}

    @staticmethod
    def conmon_pid(d: Path) -> int:
        """The pid of the live conmon of ``d``, or 0."""
        pid = read_int(d / "conmon.pid")
        if not pid or not alive(pid):
            return 0
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return 0
        return pid if b"conmon" in cmdline and str(d).encode() in cmdline else 0

    @staticmethod
    def init_pid(d: Path) -> int:
        info = read_json(d / "started")
        return int(info.get("pid", 0)) if info else 0

    @staticmethod
    def conmon_error(d: Path) -> str:
        try:
            return (d / "conmon.err").read_text(errors="replace").strip()[-2000:]
        except OSError:
            return ""

    def cgroups(self, container_id: str) -> Cgroups:
        return Cgroups(container_id, self.cgroup2)

    def exit_status(self, d: Path) -> ExitStatus | None:
        code = read_int(d / "exit")
        if code is None:
            return None
        try:
            finished = (d / "exit").stat().st_mtime_ns
        except OSError:
            finished = time.time_ns()
        # file times are coarse (a few ms) and a fast process can end before its start was seen
        finished = max(finished, int((read_json(d / "started") or {}).get("started_ns") or 0))
        return ExitStatus(
            exit_code=code if code >= 0 else UNKNOWN_EXIT, oom_killed=self.oom_killed(d), finished_at=ns_to_dt(finished)
        )

    def record_exit(self, d: Path, code: int) -> ExitStatus:
        """Write an exit file ourselves (conmon died without writing one)."""
        try:
            write_atomic(d / "exit", f"{code}")
        except OSError:
            pass
        return self.exit_status(d) or ExitStatus(exit_code=code, finished_at=datetime.now(timezone.utc))

    def mark_started(self, d: Path, pid: int) -> ProcessState:
        started_ns = time.time_ns()
        write_atomic(d / "started", json.dumps({"pid": pid, "started_ns": started_ns}))
        return ProcessState(status="running", pid=pid, started_at=ns_to_dt(started_ns))

    def init_alive(self, d: Path, pid: int) -> bool:
        if not alive(pid):
            return False
        try:
            return cgroup_dir(d.name) in Path(f"/proc/{pid}/cgroup").read_text()
        except OSError:
            return False

    def state(self, d: Path) -> ProcessState | None:
        if not (d / "meta.json").exists():
            return None
        info = read_json(d / "started") or {}
        started_at = ns_to_dt(info.get("started_ns"))
        st = self.exit_status(d)
        if st is not None:
            return ProcessState(
                status="exited",
                exit_code=st.exit_code,
                oom_killed=st.oom_killed,
                started_at=started_at,
                finished_at=st.finished_at,
            )
        if d.name in self.pending:
            return ProcessState(status="created")
        pid = int(info.get("pid", 0))
        monitor = self.conmon_pid(d)
        if pid and (monitor or self.init_alive(d, pid)):
            paused = self.cgroups(d.name).frozen()
            return ProcessState(status="paused" if paused else "running", pid=pid, started_at=started_at)
        if monitor:
            return ProcessState(status="created")
        if self.exit_status(d) is not None:  # conmon finished meanwhile
            return self.state(d)
        return ProcessState(status="exited", exit_code=UNKNOWN_EXIT, started_at=started_at)

    def running(self, container_id: str, *, allow_paused: bool = True) -> tuple[Path, ProcessState]:
        d = self.existing(container_id)
        self.ready(container_id)
        state = self.state(d)
        if state is None or state.status not in (("running", "paused") if allow_paused else ("running",)):
            raise Conflict(f"Container {container_id} is not running")
        return d, state

    # -- creation ---------------------------------------------------------------------------------------

    def create(
        self,
        m: Monitor,
        container_id: str,
        d: Path,
        *,
        log_path: Path | None,
        tty: bool,
        open_stdin: bool,
        stdin_once: bool,
    ) -> None:
        """Start conmon on the prepared bundle ``d``; :meth:`ready` reads its word."""
        # Docker never closes a tty's stdin for an attach's EOF, nor stdin without StdinOnce
        leave_open = open_stdin and (tty or not stdin_once)
        sync = spawn_create(
            m, cid=container_id, bundle=d, log_path=log_path, tty=tty, stdin=open_stdin, leave_stdin_open=leave_open
        )
        with self.lock:
            self.pending[container_id] = sync

    def ready(self, container_id: str, describe: Callable[[Path, str], str] | None = None) -> None:
        """Wait for a freshly started conmon's word on ``runtime create`` (no-op otherwise)."""
        with self.lock:
            sync = self.pending.pop(container_id, None)
            error = self.errors.pop(container_id, None) if sync is None else None
        if sync is None:
            if error:
                raise System(error)
            return
        try:
            data, message = sync.read()
        finally:
            sync.close()
        if data is None or data < 0:
            d = self.root / container_id
            error = message or self.conmon_error(d) or "the runtime did not create the container"
            error = describe(d, error) if describe else error
            if (d / "meta.json").exists() and not (d / "exit").exists():
                self.record_exit(d, UNKNOWN_EXIT)
            raise System(error)

    def live(self, container_id: str) -> bool:
        with self.lock:
            return container_id in self.pending

    # -- waiting and signals -------------------------------------------------------------------------------

    def wait(self, d: Path, timeout: float | None) -> ExitStatus | None:
        """The exit status, waiting up to ``timeout`` seconds (None: forever); None on timeout."""
        st = self.exit_status(d)
        if st is not None:
            return st
        monitor = self.conmon_pid(d)
        if monitor:
            if not wait_pid_gone(monitor, timeout):
                return None
            st = self.exit_status(d)
            if st is not None:
                return st
        pid = self.init_pid(d)
        if pid and self.init_alive(d, pid):  # conmon died, its container lives on: wait for it
            if not wait_pid_gone(pid, timeout):
                return None
        return self.exit_status(d) or self.record_exit(d, UNKNOWN_EXIT)

    def kill(self, container_id: str, sig: int) -> None:
        d, state = self.running(container_id)
        try:
            os.kill(state.pid, int(sig))
        except ProcessLookupError:
            raise Conflict(f"Container {container_id} is not running") from None
        except OSError as exc:
            raise System(f"cannot signal container {container_id}: {exc}") from None
        if state.status == "paused" and int(sig) == _signal.SIGKILL:
            self.thaw(container_id)

    def thaw(self, container_id: str) -> None:
        try:
            self.cgroups(container_id).thaw()
        except System:
            pass

    def kill_all(self, container_id: str, pid: int) -> None:
        """SIGKILL the container: cgroup.kill where there is one, else its PID 1 (whose death
        takes the whole pid namespace along)."""
        if not self.cgroups(container_id).kill_all() and pid:
            try:
                os.kill(pid, _signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.thaw(container_id)

    def stop(self, container_id: str, sig: int, timeout: float | None) -> ExitStatus:
        d = self.existing(container_id)
        self.ready(container_id)
        st = self.exit_status(d)
        if st is not None:
            return st
        state = self.state(d)
        if state is not None and state.status == "created":
            raise NotModified(f"Container {container_id} is not running")
        pid = state.pid if state else 0
        sig = int(sig) or int(self.meta(d).get("stop_signal", 15))
        if pid and sig != _signal.SIGKILL:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
            self.thaw(container_id)
            st = self.wait(d, None if timeout is None or timeout < 0 else float(timeout))
            if st is not None:
                return st
        self.kill_all(container_id, pid)
        st = self.wait(d, 30.0)
        if st is None:
            raise System(f"container {container_id} did not exit after SIGKILL")
        return st

    # -- streams -----------------------------------------------------------------------------------------

    def attach(self, container_id: str, stdin: bool, stdout: bool, stderr: bool) -> socket.socket:
        d = self.existing(container_id)
        self.ready(container_id)
        if (d / "exit").exists():
            return eof_socket()
        try:
            sock = connect_seqpacket(str(d / "attach"))
        except (FileNotFoundError, ConnectionRefusedError):
            if (d / "exit").exists() or not self.conmon_pid(d):
                return eof_socket()
            raise NotFound(f"container {container_id} has no process to attach to") from None
        except OSError as exc:
            raise System(f"cannot attach to {container_id}: {exc}") from None
        meta = self.meta(d)
        relay = Relay(
            sock, tty=bool(meta.get("tty")), stdin=stdin and bool(meta.get("open_stdin")), stdout=stdout, stderr=stderr
        )
        return relay.start(f"attach-{container_id[:12]}")

    @staticmethod
    def ctl_resize(directory: Path, height: int, width: int, what: str, pid: int = 0) -> None:
        """Ask a conmon to resize its pty (``1 <height> <width>`` on its ``ctl`` fifo) and, with the
        process's ``pid``, wait until its terminal has the size: conmon applies it through a second
        fifo, in its own time, while stdin sent right after a resize must find it done."""
        if height <= 0 or width <= 0:
            raise InvalidParameter(f"cannot resize the tty of {what} to {height}x{width}")
        try:
            fd = os.open(directory / "ctl", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            raise Conflict(f"{what} is not running") from None
        try:
            os.write(fd, f"1 {int(height)} {int(width)}\n".encode())
        except OSError as exc:
            raise System(f"cannot resize the tty of {what}: {exc}") from None
        finally:
            os.close(fd)
        if pid:
            _wait_for_size(pid, height, width)

    def reopen_log(self, container_id: str) -> None:
        """Have the container's conmon open its log file anew (``2 0 0`` on its ``ctl`` fifo, what CRI-O
        sends for the CRI's ReopenContainerLog): the file was renamed by a log rotation."""
        d = self.existing(container_id)
        self.ready(container_id)
        try:
            fd = os.open(d / "ctl", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            raise NotFound(f"Container {container_id} is not running") from None
        try:
            os.write(fd, b"2 0 0\n")
        except OSError as exc:
            raise System(f"cannot reopen the log of {container_id}: {exc}") from None
        finally:
            os.close(fd)

    def resize(self, container_id: str, height: int, width: int) -> None:
        d = self.existing(container_id)
        self.ready(container_id)
        if (d / "exit").exists():
            raise Conflict(f"Container {container_id} is not running")
        if self.meta(d).get("tty"):
            self.ctl_resize(d, height, width, f"Container {container_id}", self.init_pid(d))

    # -- docker exec -------------------------------------------------------------------------------------

    def exec_dir(self, container_id: str, exec_id: str) -> Path:
        if not exec_id or "/" in exec_id or exec_id.startswith(".") or len(exec_id) > 128:
            raise InvalidParameter(f"invalid exec id {exec_id!r}")
        return self.dir(container_id) / "exec" / exec_id

    def run(
        self,
        m: Monitor,
        container_id: str,
        exec_id: str,
        *,
        tty: bool,
        stdin: bool,
        write_process: Callable[[Path], Path],
        describe: Callable[[str], str] = lambda e: e,
    ) -> socket.socket:
        """``docker exec``: ``write_process(exec_dir)`` writes the runtime's process file and returns its path."""
        d, state = self.running(container_id)
        if state.status == "paused":
            raise Conflict(f"Container {container_id} is paused, unpause the container before exec")
        xd = self.exec_dir(container_id, exec_id)
        try:
            xd.mkdir(parents=True, mode=0o700)
        except FileExistsError:
            raise Conflict(f"exec {exec_id} has already run") from None
        except OSError as exc:
            raise System(f"cannot prepare exec {exec_id}: {exc}") from None
        try:
            process = write_process(xd)
            session = spawn_exec(
                m, cid=container_id, exec_id=exec_id, bundle=xd, process_file=process, tty=tty, stdin=stdin
            )
        except BaseException:
            shutil.rmtree(xd, ignore_errors=True)
            raise
        ex = _Exec(session, xd)
        try:
            if not session.wait_attachable():
                raise System(f"exec in {container_id} failed: {self.conmon_error(xd) or 'conmon did not start'}")
            sock = connect_seqpacket(str(xd / "attach"))
            session.go()
            pid, message = session.sync.read()
        except BaseException:
            session.close()
            shutil.rmtree(xd, ignore_errors=True)
            raise
        with self.lock:
            self.execs[(container_id, exec_id)] = ex
        if pid is None or pid < 0:
            # the runtime could not start it: Docker writes the reason into the stream
            sock.close()
            error = describe(message or "the runtime could not start the process")
            ex.failed(exec_failure_code(error))
            text = f"OCI runtime exec failed: {error}: unknown\r\n".encode()  # Docker's wording
            caller, ours = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            ours.sendall(text if tty else frame(2, text))
            ours.close()
            return caller
        relay = Relay(sock, tty=tty, stdin=stdin, stdout=True, stderr=True, before_close=lambda: ex.collect(30.0))
        return relay.start(f"exec-{exec_id[:12]}")

    def run_wait(self, container_id: str, exec_id: str) -> int:
        key = (container_id, exec_id)
        with self.lock:
            if key in self.exec_codes:
                return self.exec_codes[key]
            ex = self.execs.get(key)
        if ex is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        code = ex.collect()
        with self.lock:
            self.execs.pop(key, None)
            self.exec_codes[key] = code
            while len(self.exec_codes) > 4096:
                del self.exec_codes[next(iter(self.exec_codes))]
        shutil.rmtree(ex.dir, ignore_errors=True)
        return code

    def run_resize(self, container_id: str, exec_id: str, height: int, width: int) -> None:
        key = (container_id, exec_id)
        with self.lock:
            ex = self.execs.get(key)
            finished = key in self.exec_codes
        if ex is None:
            if finished:
                raise Conflict(f"exec {exec_id} is not running")
            raise NotFound(f"No such exec instance: {exec_id}")
        if ex.done.is_set():
            raise Conflict(f"exec {exec_id} is not running")
        self.ctl_resize(ex.dir, height, width, f"exec {exec_id}", read_int(ex.dir / "pidfile") or 0)

    def prune_execs(self, d: Path) -> None:
        """Drop the state of exec sessions a previous daemon started (their codes went with it)."""
        try:
            entries = list((d / "exec").iterdir())
        except OSError:
            return
        for xd in entries:
            if (d.name, xd.name) in self.execs:
                continue
            pid = read_int(xd / "conmon.pid")
            if (xd / "exit").exists() or not (pid and alive(pid)):
                shutil.rmtree(xd, ignore_errors=True)

    def forget(self, container_id: str) -> None:
        with self.lock:
            for key in [k for k in self.exec_codes if k[0] == container_id]:
                del self.exec_codes[key]

    def retire(self, d: Path, grace: float = 5.0) -> None:
        """Wait for the conmon of a finished or never-started container to go, killing it after ``grace``."""
        monitor = self.conmon_pid(d)
        if monitor and not wait_pid_gone(monitor, grace):
            try:
                os.kill(monitor, _signal.SIGKILL)
            except ProcessLookupError:
                pass
            wait_pid_gone(monitor, 2.0)


class SupervisedDriver:
    """The exec hooks that are the same for every driver whose containers run under conmon: each is one
    call to the driver's :class:`Supervisor`.  A driver subclasses this, sets ``self.sv`` and defines
    ``_ready(container_id)`` (wait for the container's create to have finished, raising the driver's own
    error if it failed); the hooks that differ (create, start, delete, pause, exec, restore...) stay in it."""

    sv: Supervisor

    def _ready(self, container_id: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.sv.close()

    @hookimpl
    def exec_attach(self, container_id: str, stdin: bool, stdout: bool, stderr: bool) -> socket.socket:
        self._ready(container_id)
        return self.sv.attach(container_id, stdin, stdout, stderr)

    @hookimpl
    def exec_wait(self, container_id: str) -> ExitStatus:
        d = self.sv.existing(container_id)
        self._ready(container_id)
        st = self.sv.wait(d, None)
        assert st is not None
        return st

    @hookimpl
    def exec_kill(self, container_id: str, signal: int) -> bool:
        self._ready(container_id)
        self.sv.kill(container_id, signal)
        return True

    @hookimpl
    def exec_stop(self, container_id: str, signal: int, timeout: float) -> ExitStatus:
        self._ready(container_id)
        return self.sv.stop(container_id, signal, timeout)

    @hookimpl
    def exec_state(self, container_id: str) -> ProcessState | None:
        try:
            d = self.sv.dir(container_id)
        except InvalidParameter:
            return None
        return self.sv.state(d)

    @hookimpl
    def exec_reopen_log(self, container_id: str) -> bool:
        self._ready(container_id)
        self.sv.reopen_log(container_id)
        return True

    @hookimpl
    def exec_resize(self, container_id: str, height: int, width: int) -> bool:
        self._ready(container_id)
        self.sv.resize(container_id, height, width)
        return True

    @hookimpl
    def exec_list(self) -> list[str]:
        return self.sv.list()

    @hookimpl
    def exec_processes(self, container_id: str) -> list[int]:
        self.sv.running(container_id)
        return self.sv.cgroups(container_id).pids()

    @hookimpl
    def exec_run_resize(self, container_id: str, exec_id: str, height: int, width: int) -> bool:
        self.sv.run_resize(container_id, exec_id, height, width)
        return True

    @hookimpl
    def exec_run_wait(self, container_id: str, exec_id: str) -> int:
        return self.sv.run_wait(container_id, exec_id)

    @hookimpl
    def exec_stats(self, container_id: str) -> dict:
        self.sv.running(container_id)
        stats = self.sv.cgroups(container_id).stats()
        stats["num_procs"] = 0
        return stats

    @hookimpl
    def exec_update(self, container_id: str, resources: Resources) -> bool:
        self.sv.running(container_id)
        self.sv.cgroups(container_id).update(resources)
        return True
