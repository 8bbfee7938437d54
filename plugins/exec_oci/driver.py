"""exec_oci: dockyard's execution driver on OCI runtimes (runc, crun), each container under conmon.

Layout: ``<root>`` (``<data-root>/exec/oci``) holds one OCI bundle per container,
``<root>/<id>/``:

``config.json``   the OCI runtime spec (:mod:`.bundle`)
``meta.json``     what the driver needs later: runtime, tty, stop signal, environment
``conmon.pid``    conmon's pid (written by conmon)
``pidfile``       the container's init pid (written by the runtime)
``started``       JSON: pid and start time (written by the driver at start)
``exit``          the exit code (written by conmon when the process is gone)
``oom``           present when the container was OOM-killed (written by conmon)
``attach``        conmon's attach socket; ``ctl`` and ``winsz`` its control fifos
``conmon.err``    conmon's own error output
``exec/<id>/``    one ``docker exec``: ``process.json`` and a conmon of its own

``<root>/runtime/<name>/`` is each runtime's state directory (``--root``).

The log: conmon writes the container's output to the RuntimeSpec's ``log_path`` in
the CRI format (``k8s-file``: ``<RFC3339Nano> <stdout|stderr> <F|P> <text>``), which
the daemon's log reader (:mod:`dockyard.logs`) understands next to Docker's
json-file.  conmon has no json-file writer, and this keeps conmon the only process a
container needs.

Everything a container needs at run time belongs to its conmon, never to the daemon:
a daemon killed at any moment finds its containers running (or their exit codes
recorded) when it comes back (``exec_restore``).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal as _signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import dockyard
from dockyard.cgroups import CGROUP_ROOT, Cgroups, cgroup2_host, cgroup_dir, hybrid_host
from dockyard.errors import Conflict, DriverNotSupported, InvalidParameter, NotFound, NotModified, System
from dockyard.models.runtime import Confinement, ExitStatus, ProcessSpec, ProcessState, Resources, Runtimes, RuntimeSpec
from dockyard.plugins.exec_oci import bundle, conmon, runtimes
from dockyard.plugins.exec_oci.relay import Relay, connect_seqpacket, frame

UNKNOWN_EXIT = 255


def _ns_to_dt(ns: int | None) -> datetime | None:
    if not ns:
        return None
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return False
    state = data[data.rindex(b")") + 2:][:1]
    return state not in (b"Z", b"X")


def _wait_pid_gone(pid: int, timeout: float | None) -> bool:
    """Wait until ``pid`` (any process, not only a child) is gone; True if it is."""
    if not _alive(pid):
        return True
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return not _alive(pid)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if poller.poll(None if remaining is None else remaining * 1000) or not _alive(pid):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
    finally:
        os.close(fd)


def _eof_socket() -> socket.socket:
    """A connected socket whose peer is already closed: an empty, finished stream."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    b.close()
    return a


def _exec_failure_code(message: str) -> int:
    """Docker's exit code for a process the runtime could not start (moby ``daemon/exec.go``)."""
    low = message.lower()
    if "executable file not found" in low or "no such file or directory" in low:
        return 127
    return 126


class _Exec:
    """One docker exec: its conmon's sync pipe, and its exit code once known."""

    def __init__(self, session: conmon.ExecSession, directory: Path) -> None:
        self.session = session
        self.dir = directory
        self.code: int | None = None
        self.done = threading.Event()
        self.lock = threading.Lock()

    def collect(self, timeout: float | None = None) -> int:
        """Read the exit status conmon sends down the sync pipe when the process ends."""
        with self.lock:
            if self.code is None:
                data, _ = self.session.sync.read(timeout=timeout)
                if data is None:
                    data = _read_int(self.dir / "exit")
                self.code = UNKNOWN_EXIT if data is None else data
                self.session.close()
                self.done.set()
            return self.code


class OciDriver:
    """Execution driver: each container's process is created by an OCI runtime and watched by conmon."""

    name = "oci"

    def __init__(self, root: Path, options: dict) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.options = dict(options or {})
        unknown = sorted(set(self.options) - {"runtime", "runtimes", "conmon", "log_level"})
        if unknown:
            raise InvalidParameter(f"the oci exec driver has no option {', '.join(unknown)} "
                                   "(it knows runtime, runtimes, conmon, log_level)")
        self.conmon_path = str(self.options.get("conmon") or shutil.which("conmon") or "conmon")
        configured = runtimes.parse(self.options.get("runtimes")) if self.options.get("runtimes") else {}
        paths = {**runtimes.discover(), **configured}
        default = str(self.options.get("runtime") or next(iter(paths), ""))
        if not paths:
            raise DriverNotSupported("oci", "no OCI runtime found (install runc or crun)")
        if default not in paths:
            raise InvalidParameter(f"unknown runtime {default!r} (configured: {', '.join(sorted(paths))})")
        self.default_runtime = default
        self.runtimes = {name: runtimes.prepare(name, path, self.root) for name, path in paths.items()}
        self.cgroup2 = cgroup2_host()
        self.swap = bundle.swap_accounting(CGROUP_ROOT, self.cgroup2)
        self.log_level = str(self.options.get("log_level", "error")).lower()
        self._lock = threading.Lock()
        #: conmons started by exec_create whose sync message nobody has read yet
        self._pending: dict[str, conmon.SyncPipe] = {}
        self._errors: dict[str, str] = {}
        self._execs: dict[tuple[str, str], _Exec] = {}
        self._exec_codes: dict[tuple[str, str], int] = {}

    @classmethod
    def check_supported(cls) -> None:
        if not sys.platform.startswith("linux"):
            raise DriverNotSupported("oci", "OCI runtimes need Linux")
        if os.geteuid() != 0:
            raise DriverNotSupported("oci", "the oci driver needs root (rootless runtimes are not supported)")
        if not hasattr(os, "pidfd_open"):
            raise DriverNotSupported("oci", "Python without os.pidfd_open (needs Linux >= 5.3)")
        if shutil.which("conmon") is None:
            raise DriverNotSupported("oci", "conmon not found in PATH (install the conmon package)")
        if not runtimes.discover():
            raise DriverNotSupported("oci", "no OCI runtime found in PATH (install runc or crun)")
        if not CGROUP_ROOT.is_dir():
            raise DriverNotSupported("oci", "/sys/fs/cgroup is not mounted")

    def close(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        for sync in pending.values():
            sync.close()

    # ------------------------------------------------------------------ paths and state files

    def _dir(self, container_id: str) -> Path:
        if not container_id or "/" in container_id or container_id.startswith(".") or len(container_id) > 128:
            raise InvalidParameter(f"invalid container id {container_id!r}")
        return self.root / container_id

    def _existing(self, container_id: str) -> Path:
        d = self._dir(container_id)
        if not (d / "config.json").exists():
            raise NotFound(f"No such container: {container_id}")
        return d

    def _meta(self, d: Path) -> dict:
        return _read_json(d / "meta.json") or {}

    def _runtime(self, d: Path) -> runtimes.Runtime:
        name = self._meta(d).get("runtime") or self.default_runtime
        rt = self.runtimes.get(name)
        if rt is None:
            raise System(f"container {d.name} was made with the runtime {name!r}, which is not configured")
        return rt

    def _monitor(self, rt: runtimes.Runtime) -> conmon.Monitor:
        return conmon.Monitor(conmon=self.conmon_path, runtime_path=rt.program,
                              runtime_args=["--root", str(rt.state)], log_level=self.log_level)

    def _conmon_pid(self, d: Path) -> int:
        """The pid of the container's live conmon, or 0."""
        pid = _read_int(d / "conmon.pid")
        if not pid or not _alive(pid):
            return 0
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return 0
        return pid if b"conmon" in cmdline and str(d).encode() in cmdline else 0

    def _init_pid(self, d: Path) -> int:
        info = _read_json(d / "started")
        return int(info.get("pid", 0)) if info else 0

    def _cgroups(self, container_id: str) -> Cgroups:
        return Cgroups(container_id, self.cgroup2)

    def _exit_status(self, d: Path) -> ExitStatus | None:
        code = _read_int(d / "exit")
        if code is None:
            return None
        try:
            finished = (d / "exit").stat().st_mtime_ns
        except OSError:
            finished = time.time_ns()
        if code < 0:
            code = UNKNOWN_EXIT
        return ExitStatus(exit_code=code, oom_killed=(d / "oom").exists(), finished_at=_ns_to_dt(finished))

    def _record_exit(self, d: Path, code: int) -> ExitStatus:
        """Write an exit file ourselves (conmon died without writing one)."""
        try:
            _write_atomic(d / "exit", f"{code}")
        except OSError:
            pass
        return self._exit_status(d) or ExitStatus(exit_code=code, finished_at=datetime.now(timezone.utc))

    def _state(self, d: Path) -> ProcessState | None:
        if not (d / "config.json").exists():
            return None
        info = _read_json(d / "started") or {}
        started_at = _ns_to_dt(info.get("started_ns"))
        st = self._exit_status(d)
        if st is not None:
            return ProcessState(status="exited", exit_code=st.exit_code, oom_killed=st.oom_killed,
                                started_at=started_at, finished_at=st.finished_at)
        pid = int(info.get("pid", 0))
        if d.name in self._pending:
            return ProcessState(status="created")
        monitor = self._conmon_pid(d)
        if pid and (monitor or self._init_alive(d, pid)):
            paused = self._cgroups(d.name).frozen()
            return ProcessState(status="paused" if paused else "running", pid=pid, started_at=started_at)
        if monitor:
            return ProcessState(status="created")
        st = self._exit_status(d)      # conmon may have finished meanwhile
        if st is not None:
            return self._state(d)
        return ProcessState(status="exited", exit_code=UNKNOWN_EXIT, started_at=started_at)

    def _init_alive(self, d: Path, pid: int) -> bool:
        if not _alive(pid):
            return False
        try:
            return cgroup_dir(d.name) in Path(f"/proc/{pid}/cgroup").read_text()
        except OSError:
            return False

    # ------------------------------------------------------------------ creation

    def _ready(self, container_id: str) -> None:
        """Wait for a freshly started conmon's word on ``runtime create`` (no-op otherwise)."""
        with self._lock:
            sync = self._pending.pop(container_id, None)
        if sync is None:
            error = self._errors.pop(container_id, None)
            if error:
                raise System(error)
            return
        try:
            data, message = sync.read()
        finally:
            sync.close()
        if data is None or data < 0:
            d = self.root / container_id
            error = message or self._conmon_error(d) or "the runtime did not create the container"
            error = f"OCI runtime create failed: {runtimes.error_text(error) or error}"
            if (d / "config.json").exists() and not (d / "exit").exists():
                self._record_exit(d, _exec_failure_code(error) if "exec" in error else UNKNOWN_EXIT)
            raise System(error)

    @staticmethod
    def _conmon_error(d: Path) -> str:
        try:
            return (d / "conmon.err").read_text(errors="replace").strip()[-2000:]
        except OSError:
            return ""

    @dockyard.hookimpl
    def exec_create(self, spec: RuntimeSpec) -> bool:
        d = self._dir(spec.container_id)
        name = spec.runtime or self.default_runtime
        rt = self.runtimes.get(name)
        if rt is None:
            raise InvalidParameter(f"Unknown runtime specified {name}")
        config = bundle.config(spec, cgroups_path="/" + cgroup_dir(spec.container_id), swap_accounting=self.swap)
        with self._lock:
            if spec.container_id in self._pending:
                raise Conflict(f"container {spec.container_id} already has a live process")
        if d.exists():
            state = self._state(d)
            if state is not None and state.status != "exited":
                raise Conflict(f"container {spec.container_id} already has a live process")
            self._remove_runtime_state(d)
            shutil.rmtree(d, ignore_errors=True)
        try:
            d.mkdir(parents=True)
        except FileExistsError:
            raise Conflict(f"container {spec.container_id} is being created concurrently") from None
        meta = {"runtime": name, "tty": spec.tty, "open_stdin": spec.open_stdin, "stdin_once": spec.stdin_once,
                "stop_signal": spec.stop_signal, "env": bundle.environment(spec), "log_path": str(spec.log_path),
                # what a docker exec process shares with the container's (seccomp the runtime applies itself)
                "confinement": spec.confinement.model_dump(
                    mode="json", include={"capabilities", "no_new_privileges", "apparmor_profile"})}
        try:
            (d / "config.json").write_text(json.dumps(config))
            (d / "meta.json").write_text(json.dumps(meta))
            Path(spec.log_path).parent.mkdir(parents=True, exist_ok=True)
            # Docker never closes a tty's stdin for an attach's EOF, nor stdin without StdinOnce
            leave_open = spec.open_stdin and (spec.tty or not spec.stdin_once)
            sync = conmon.create(self._monitor(rt), cid=spec.container_id, bundle=d, log_path=Path(spec.log_path),
                                 tty=spec.tty, stdin=spec.open_stdin, leave_stdin_open=leave_open)
        except OSError as exc:
            shutil.rmtree(d, ignore_errors=True)
            raise System(f"cannot prepare container {spec.container_id}: {exc}") from None
        except BaseException:
            shutil.rmtree(d, ignore_errors=True)
            raise
        with self._lock:
            self._pending[spec.container_id] = sync
        return True

    @dockyard.hookimpl
    def exec_attach(self, container_id: str, stdin: bool, stdout: bool, stderr: bool) -> socket.socket:
        d = self._existing(container_id)
        self._ready(container_id)
        if (d / "exit").exists():
            return _eof_socket()
        try:
            sock = connect_seqpacket(str(d / "attach"))
        except (FileNotFoundError, ConnectionRefusedError):
            if (d / "exit").exists() or not self._conmon_pid(d):
                return _eof_socket()
            raise NotFound(f"container {container_id} has no process to attach to") from None
        except OSError as exc:
            raise System(f"cannot attach to {container_id}: {exc}") from None
        meta = self._meta(d)
        relay = Relay(sock, tty=bool(meta.get("tty")), stdin=stdin and bool(meta.get("open_stdin")),
                      stdout=stdout, stderr=stderr)
        return relay.start(f"attach-{container_id[:12]}")

    @dockyard.hookimpl
    def exec_start(self, container_id: str) -> ProcessState:
        d = self._existing(container_id)
        self._ready(container_id)
        if (d / "exit").exists():
            raise NotFound(f"container {container_id} is not created (its process already exited)")
        pid = _read_int(d / "pidfile")
        if not pid or not self._conmon_pid(d):
            raise NotFound(f"container {container_id} is not created")
        rt = self._runtime(d)
        out = rt.run("start", container_id)
        if out.returncode != 0:
            error = runtimes.error_text(out.stderr) or f"exit status {out.returncode}"
            if (d / "exit").exists():   # it started and exited at once: that is a run, not a failure
                pass
            else:
                raise System(f"failed to start container {container_id}: {error}")
        started_ns = time.time_ns()
        _write_atomic(d / "started", json.dumps({"pid": pid, "started_ns": started_ns}))
        return ProcessState(status="running", pid=pid, started_at=_ns_to_dt(started_ns))

    # ------------------------------------------------------------------ waiting, signals

    def _wait(self, d: Path, timeout: float | None) -> ExitStatus | None:
        st = self._exit_status(d)
        if st is not None:
            return st
        monitor = self._conmon_pid(d)
        if monitor:
            if not _wait_pid_gone(monitor, timeout):
                return None
            st = self._exit_status(d)
            if st is not None:
                return st
        pid = self._init_pid(d)
        if pid and self._init_alive(d, pid):   # conmon died, its container lives on: wait for it
            if not _wait_pid_gone(pid, timeout):
                return None
        return self._exit_status(d) or self._record_exit(d, UNKNOWN_EXIT)

    @dockyard.hookimpl
    def exec_wait(self, container_id: str) -> ExitStatus:
        d = self._existing(container_id)
        self._ready(container_id)
        st = self._wait(d, None)
        assert st is not None
        return st

    def _signal(self, container_id: str, pid: int, sig: int) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            raise Conflict(f"Container {container_id} is not running") from None
        except OSError as exc:
            raise System(f"cannot signal container {container_id}: {exc}") from None

    @dockyard.hookimpl
    def exec_kill(self, container_id: str, signal: int) -> bool:
        d = self._existing(container_id)
        self._ready(container_id)
        state = self._state(d)
        if state is None or state.status not in ("running", "paused") or not state.pid:
            raise Conflict(f"Container {container_id} is not running")
        self._signal(container_id, state.pid, int(signal))
        if state.status == "paused" and int(signal) == _signal.SIGKILL:
            self._thaw(container_id)
        return True

    def _thaw(self, container_id: str) -> None:
        try:
            self._cgroups(container_id).thaw()
        except System:
            pass

    def _kill_all(self, container_id: str, pid: int) -> None:
        """SIGKILL the container: its PID 1 dying takes the whole pid namespace along."""
        if not self._cgroups(container_id).kill_all() and pid:
            try:
                os.kill(pid, _signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._thaw(container_id)

    @dockyard.hookimpl
    def exec_stop(self, container_id: str, signal: int, timeout: float) -> ExitStatus:
        d = self._existing(container_id)
        self._ready(container_id)
        st = self._exit_status(d)
        if st is not None:
            return st
        state = self._state(d)
        if state is not None and state.status == "created":
            raise NotModified(f"Container {container_id} is not running")
        pid = state.pid if state else 0
        sig = int(signal) or int(self._meta(d).get("stop_signal", 15))
        if pid and sig != _signal.SIGKILL:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
            self._thaw(container_id)
            st = self._wait(d, None if timeout is None or timeout < 0 else float(timeout))
            if st is not None:
                return st
        self._kill_all(container_id, pid)
        st = self._wait(d, 30.0)
        if st is None:
            raise System(f"container {container_id} did not exit after SIGKILL")
        return st

    @dockyard.hookimpl
    def exec_state(self, container_id: str) -> ProcessState | None:
        try:
            d = self._dir(container_id)
        except InvalidParameter:
            return None
        return self._state(d)

    def _ctl(self, directory: Path, height: int, width: int, what: str) -> None:
        """Ask a conmon to resize its pty (``1 <height> <width>`` on its ``ctl`` fifo)."""
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

    @dockyard.hookimpl
    def exec_resize(self, container_id: str, height: int, width: int) -> bool:
        d = self._existing(container_id)
        self._ready(container_id)
        if (d / "exit").exists():
            raise Conflict(f"Container {container_id} is not running")
        if not self._meta(d).get("tty"):
            return True
        self._ctl(d, height, width, f"Container {container_id}")
        return True

    @dockyard.hookimpl
    def exec_list(self) -> list[str]:
        try:
            return sorted(p.name for p in self.root.iterdir() if (p / "config.json").exists())
        except OSError:
            return []

    # ------------------------------------------------------------------ restore, delete

    def _remove_runtime_state(self, d: Path) -> None:
        """``runtime delete --force``: the runtime's state, and the cgroups it made."""
        if not (d / "meta.json").exists():
            return
        try:
            rt = self._runtime(d)
        except System:
            return
        out = rt.run("delete", "--force", d.name, timeout=30)
        if out.returncode != 0 and "does not exist" not in out.stderr and "not exist" not in out.stderr:
            # nothing else can remove the runtime's record; the cgroups at least go
            self._remove_cgroups(d.name)

    def _remove_cgroups(self, container_id: str) -> None:
        hierarchies = [CGROUP_ROOT] if self.cgroup2 else [p for p in CGROUP_ROOT.iterdir()
                                                          if p.is_dir() and os.path.ismount(p)]
        for h in hierarchies:
            top = h / cgroup_dir(container_id)
            for dirpath, _dirs, _files in sorted(os.walk(top, topdown=False), key=lambda t: -len(t[0])):
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass

    @dockyard.hookimpl
    def exec_restore(self, container_id: str) -> ProcessState | None:
        try:
            d = self._dir(container_id)
        except InvalidParameter:
            return None
        try:
            self._ready(container_id)
        except System:
            pass
        state = self._state(d)
        if state is None:
            return None
        if state.status in ("running", "paused", "created"):
            self._prune_execs(d)
            return state
        if not (d / "started").exists() and not (d / "exit").exists():
            # prepared but never started, and its conmon is gone (a host reboot)
            self._remove_runtime_state(d)
            shutil.rmtree(d, ignore_errors=True)
            return None
        if not (d / "exit").exists():
            self._record_exit(d, state.exit_code if state.exit_code is not None else UNKNOWN_EXIT)
        if not self._conmon_pid(d):
            self._remove_runtime_state(d)
        return self._state(d)

    @dockyard.hookimpl
    def exec_delete(self, container_id: str) -> bool:
        d = self._dir(container_id)
        if not d.exists():
            return True
        try:
            self._ready(container_id)
        except System:
            pass
        state = self._state(d)
        if state is not None and state.status in ("running", "paused"):
            raise Conflict(f"You cannot remove a running container {container_id}. "
                           "Stop the container before attempting removal or force remove")
        monitor = self._conmon_pid(d)
        self._remove_runtime_state(d)       # a created container's init dies here; its conmon follows
        if monitor and not _wait_pid_gone(monitor, 5.0):
            try:
                os.kill(monitor, _signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(d, ignore_errors=True)
        if d.exists():
            raise System(f"cannot remove the runtime state of {container_id}")
        with self._lock:
            for key in [k for k in self._exec_codes if k[0] == container_id]:
                del self._exec_codes[key]
        return True

    # ------------------------------------------------------------------ pause, top, stats, update

    def _running(self, container_id: str, *, allow_paused: bool = True) -> tuple[Path, ProcessState]:
        d = self._existing(container_id)
        self._ready(container_id)
        state = self._state(d)
        if state is None or state.status not in (("running", "paused") if allow_paused else ("running",)):
            raise Conflict(f"Container {container_id} is not running")
        return d, state

    @dockyard.hookimpl
    def exec_pause(self, container_id: str) -> bool:
        d, state = self._running(container_id)
        if state.status == "paused":
            raise Conflict(f"Container {container_id} is already paused")
        self._runtime(d).check("pause", container_id)
        return True

    @dockyard.hookimpl
    def exec_unpause(self, container_id: str) -> bool:
        d, state = self._running(container_id)
        if state.status != "paused":
            raise Conflict(f"Container {container_id} is not paused")
        self._runtime(d).check("resume", container_id)
        return True

    @dockyard.hookimpl
    def exec_processes(self, container_id: str) -> list[int]:
        self._running(container_id)
        return self._cgroups(container_id).pids()

    @dockyard.hookimpl
    def exec_stats(self, container_id: str) -> dict:
        self._running(container_id)
        stats = self._cgroups(container_id).stats()
        stats["num_procs"] = 0
        return stats

    @dockyard.hookimpl
    def exec_update(self, container_id: str, resources: Resources) -> bool:
        self._running(container_id)
        self._cgroups(container_id).update(resources)
        return True

    # ------------------------------------------------------------------ docker exec

    def _exec_dir(self, container_id: str, exec_id: str) -> Path:
        if not exec_id or "/" in exec_id or exec_id.startswith(".") or len(exec_id) > 128:
            raise InvalidParameter(f"invalid exec id {exec_id!r}")
        return self._dir(container_id) / "exec" / exec_id

    @dockyard.hookimpl
    def exec_run(self, container_id: str, exec_id: str, spec: ProcessSpec) -> socket.socket:
        d, state = self._running(container_id)
        if state.status == "paused":
            raise Conflict(f"Container {container_id} is paused, unpause the container before exec")
        meta = self._meta(d)
        process = bundle.process(spec, list(meta.get("env") or []),
                                 Confinement.model_validate(meta.get("confinement") or {}))
        xd = self._exec_dir(container_id, exec_id)
        try:
            xd.mkdir(parents=True)
        except FileExistsError:
            raise Conflict(f"exec {exec_id} has already run") from None
        except OSError as exc:
            raise System(f"cannot prepare exec {exec_id}: {exc}") from None
        try:
            (xd / "process.json").write_text(json.dumps(process))
            session = conmon.exec_(self._monitor(self._runtime(d)), cid=container_id, exec_id=exec_id, bundle=xd,
                                   process_json=xd / "process.json", tty=spec.tty, stdin=spec.stdin)
        except BaseException:
            shutil.rmtree(xd, ignore_errors=True)
            raise
        ex = _Exec(session, xd)
        try:
            if not session.wait_attachable():
                raise System(f"exec in {container_id} failed: {self._conmon_error(xd) or 'conmon did not start'}")
            sock = connect_seqpacket(str(xd / "attach"))
            session.go()
            pid, message = session.sync.read()
        except BaseException:
            ex.session.close()
            shutil.rmtree(xd, ignore_errors=True)
            raise
        with self._lock:
            self._execs[(container_id, exec_id)] = ex
        if pid is None or pid < 0:
            # the runtime could not start it: Docker writes the reason into the stream
            sock.close()
            error = runtimes.error_text(message) or message or "the runtime could not start the process"
            text = f"OCI runtime exec failed: {error}: unknown\r\n".encode()     # Docker's wording
            with ex.lock:
                ex.code = _exec_failure_code(error)
                ex.session.close()
                ex.done.set()
            caller, ours = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            ours.sendall(text if spec.tty else frame(2, text))
            ours.close()
            return caller
        relay = Relay(sock, tty=spec.tty, stdin=spec.stdin, stdout=True, stderr=True,
                      before_close=lambda: ex.collect(30.0))
        return relay.start(f"exec-{exec_id[:12]}")

    @dockyard.hookimpl
    def exec_run_wait(self, container_id: str, exec_id: str) -> int:
        key = (container_id, exec_id)
        with self._lock:
            if key in self._exec_codes:
                return self._exec_codes[key]
            ex = self._execs.get(key)
        if ex is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        code = ex.collect()
        with self._lock:
            self._execs.pop(key, None)
            self._exec_codes[key] = code
            while len(self._exec_codes) > 4096:
                del self._exec_codes[next(iter(self._exec_codes))]
        shutil.rmtree(ex.dir, ignore_errors=True)
        return code

    @dockyard.hookimpl
    def exec_run_resize(self, container_id: str, exec_id: str, height: int, width: int) -> bool:
        key = (container_id, exec_id)
        with self._lock:
            ex = self._execs.get(key)
            finished = key in self._exec_codes
        if ex is None:
            if finished:
                raise Conflict(f"exec {exec_id} is not running")
            raise NotFound(f"No such exec instance: {exec_id}")
        if ex.done.is_set():
            raise Conflict(f"exec {exec_id} is not running")
        self._ctl(ex.dir, height, width, f"exec {exec_id}")
        return True

    def _prune_execs(self, d: Path) -> None:
        """Drop the state of exec sessions a previous daemon started (their codes went with it)."""
        try:
            entries = list((d / "exec").iterdir())
        except OSError:
            return
        for xd in entries:
            if (d.name, xd.name) in self._execs:
                continue
            pid = _read_int(xd / "conmon.pid")
            if (xd / "exit").exists() or not (pid and _alive(pid)):
                shutil.rmtree(xd, ignore_errors=True)

    # ------------------------------------------------------------------ info

    @dockyard.hookimpl
    def exec_runtimes(self) -> Runtimes:
        return Runtimes(default=self.default_runtime, paths={n: rt.path for n, rt in self.runtimes.items()})

    @dockyard.hookimpl
    def exec_status(self) -> list[tuple[str, str]]:
        layout = "2" if self.cgroup2 else ("1 (hybrid)" if hybrid_host() else "1")
        lines = [("Execution Driver", f"oci ({self.default_runtime})"), ("Cgroup Version", layout),
                 ("conmon", self._version([self.conmon_path, "--version"]))]
        for name, rt in sorted(self.runtimes.items()):
            lines.append((f"Runtime {name}", f"{rt.path} {rt.version()}"))
        return lines

    @staticmethod
    def _version(argv: list[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return "unknown"
        first = (out.stdout.splitlines() or ["unknown"])[0]
        return first.split()[-1] if first.split() else "unknown"
