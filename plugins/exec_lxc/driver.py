"""exec_lxc: dockyard's execution driver on top of liblxc.

Layout: ``<root>`` (``<data-root>/exec/lxc``) is the LXC ``lxcpath``; each
container has ``<root>/<id>/`` holding

``config``      the complete LXC config (lxc-stop/attach/freeze read it)
``hook``        start-host (reports the init pid) and stop (records OOM) hook
``meta.json``   what the driver needs later (tty, stop signal)
``shim.pid``    pid of the live shim (removed when the shim exits)
``attach.sock`` the shim's unix socket (removed when the process exited)
``pid.fifo``    the start-host hook writes the init pid into it
``started``     JSON: pid, start time (written by the shim at start)
``exit``        JSON: exit code, OOM, finish time (written by the shim at exit)
``oom``         oom_kill counter recorded by the stop hook
``lxc.log``     liblxc's log (start failures are reported from it)
``shim.log``    the shim's own stderr
``exec/<id>/``  one ``docker exec`` process: ``shim.pid``, ``attach.sock``
                (wait/resize), ``exit``; removed once its exit code was collected

``docker exec`` asks the container's shim (``{"cmd":"exec"}`` on attach.sock) to
fork an exec shim that attaches a process with liblxc's ``attach()``; the
connection the request came on becomes the exec's stream.  Exec processes, like
the container's, belong to shims, never to the daemon.

The container's process is owned by a per-container shim (``shim.py``), so it
outlives the daemon; the daemon only talks to the shim over ``attach.sock``.
"""

from __future__ import annotations

import ctypes.util
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
import dockyard.jsonfile
from dockyard.errors import (
    Conflict,
    DriverNotSupported,
    InvalidParameter,
    NotFound,
    NotModified,
    System,
)
from dockyard.models.runtime import ExitStatus, ProcessSpec, ProcessState, Resources, RuntimeSpec
from dockyard.plugins.exec_lxc import lxcconf
from dockyard.plugins.exec_lxc.cgroups import Cgroups

SHIM = Path(__file__).resolve().with_name("shim.py")
#: the json-file writer the shim imports (as the top-level module ``jsonfile``)
JSONFILE = Path(dockyard.jsonfile.__file__).resolve()
LOCK_ROOT = Path("/run/lxc/lock")
UNKNOWN_EXIT = 255
START_TIMEOUT = 60.0
SHIM_READY_TIMEOUT = 30.0


def _ns_to_dt(ns: int | None) -> datetime | None:
    if not ns:
        return None
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)


def _read_json(path: Path) -> dict | None:
    try:
        text = path.read_text()
    except OSError:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _proc_state(pid: int) -> str | None:
    """Single-letter state of a process, None if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    try:
        return data[data.rindex(b")") + 2:][:1].decode()
    except ValueError:
        return None


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    st = _proc_state(pid)
    return st is not None and st not in ("Z", "X")


def _wait_pid_gone(pid: int, timeout: float | None) -> bool:
    """Wait until ``pid`` (not necessarily our child) terminates; True if it did."""
    if not _alive(pid):
        return True
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return True
    try:
        p = select.poll()
        p.register(fd, select.POLLIN)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if p.poll(None if remaining is None else remaining * 1000):
                return True
            if not _alive(pid):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
    finally:
        os.close(fd)


class _Pending:
    """A shim spawned by exec_create that has not reported ready yet."""

    __slots__ = ("fd", "proc", "lock", "done", "error")

    def __init__(self, fd: int, proc: subprocess.Popen) -> None:
        self.fd = fd
        self.proc = proc
        self.lock = threading.Lock()
        self.done = False
        self.error: str | None = None


def _eof_socket() -> socket.socket:
    """A connected socket whose peer is already closed: an empty, finished stream."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    b.close()
    return a


class LxcDriver:
    """Execution driver: each container's main process runs under liblxc, owned by a shim."""

    name = "lxc"

    def __init__(self, root: Path, options: dict) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.options = dict(options or {})
        self.python = str(self.options.get("python") or sys.executable)
        seccomp = self.options.get("seccomp", "")
        if seccomp in ("default", "common"):
            seccomp = "/usr/share/lxc/config/common.seccomp"
        if seccomp in ("none", "unconfined"):
            seccomp = ""
        self.seccomp = str(seccomp)
        self.log_level = str(self.options.get("log_level", "WARN")).upper()
        self.cgroup2 = lxcconf.cgroup2_host()
        self._lock = threading.Lock()
        self._version: str | None = None
        self.shim_path = self._compile_shim()
        #: shims spawned by exec_create whose readiness nobody has waited for yet
        self._pending: dict[str, _Pending] = {}
        #: exit codes of finished exec_run processes whose state dirs are gone
        self._exec_codes: dict[tuple[str, str], int] = {}

    # ------------------------------------------------------------------ support

    @classmethod
    def check_supported(cls) -> None:
        if not sys.platform.startswith("linux"):
            raise DriverNotSupported("lxc", "LXC needs Linux")
        if os.geteuid() != 0:
            raise DriverNotSupported("lxc", "the lxc driver needs root (unprivileged LXC is not supported)")
        if not hasattr(os, "pidfd_open"):
            raise DriverNotSupported("lxc", "Python without os.pidfd_open (needs Linux >= 5.3)")
        for tool in ("lxc-start", "lxc-info"):
            if shutil.which(tool) is None:
                raise DriverNotSupported("lxc", f"{tool} not found in PATH (install the lxc package)")
        if not cls._find_liblxc():
            raise DriverNotSupported("lxc", "liblxc.so.1 not found (install liblxc1)")
        if not lxcconf.CGROUP_ROOT.is_dir():
            raise DriverNotSupported("lxc", "/sys/fs/cgroup is not mounted")

    @staticmethod
    def _find_liblxc() -> bool:
        for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib",
                  "/usr/local/lib"):
            if os.path.exists(os.path.join(d, "liblxc.so.1")):
                return True
        return ctypes.util.find_library("lxc") is not None

    def _compile_shim(self) -> Path:
        """Byte-compile shim.py and the json-file writer it imports into one directory
        (``<root>/.shim-<tag>-<digest>/``, the script's ``sys.path[0]``): the interpreter
        never caches a script's bytecode, and compiling costs more than starting it."""
        import hashlib
        import py_compile

        sources = {"shim.pyc": SHIM, "jsonfile.pyc": JSONFILE}
        digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources.values())).hexdigest()[:16]
        target = self.root / f".shim-{sys.implementation.cache_tag}-{digest}"
        if not (target / "shim.pyc").exists():
            tmp = self.root / f"{target.name}.{os.getpid()}.tmp"
            try:
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir()
                for name, source in sources.items():
                    py_compile.compile(str(source), cfile=str(tmp / name), doraise=True)
                try:
                    tmp.rename(target)
                except OSError:          # another daemon on this root won the race
                    if not (target / "shim.pyc").exists():
                        raise
            except (OSError, py_compile.PyCompileError) as exc:
                raise System(f"cannot prepare the lxc shim in {self.root}: {exc}") from None
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            # older shims still running have loaded their modules: their files can go
            for old in self.root.glob(".shim-*"):
                if old != target:
                    shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
        return target / "shim.pyc"

    # ------------------------------------------------------------------ paths

    def _dir(self, container_id: str) -> Path:
        if not container_id or "/" in container_id or container_id.startswith("."):
            raise InvalidParameter(f"invalid container id {container_id!r}")
        return self.root / container_id

    def _existing(self, container_id: str) -> Path:
        d = self._dir(container_id)
        if not (d / "config").exists():
            raise NotFound(f"No such container: {container_id}")
        return d

    # ------------------------------------------------------------------ shim helpers

    def _shim_pid(self, d: Path) -> int:
        """The pid of the live shim of ``d``, or 0."""
        try:
            pid = int((d / "shim.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return 0
        if not _alive(pid):
            return 0
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return 0
        if len(cmdline) < 5 or b"shim" not in os.path.basename(cmdline[3]) or cmdline[4] != str(d).encode():
            return 0
        return pid

    def _connect(self, d: Path, timeout: float | None = 10.0) -> socket.socket:
        """Connect to the shim's attach.sock (via /proc/self/fd for long paths)."""
        path = str(d / "attach.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            if len(path.encode()) < 100:
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

    @staticmethod
    def _readline(sock: socket.socket) -> bytes:
        buf = bytearray()
        while not buf.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            buf += chunk
        return bytes(buf)

    def _command(self, d: Path, cmd: dict, timeout: float | None = 10.0) -> dict | None:
        """Send one command to the shim; None if the shim is gone / closed without answer."""
        try:
            sock = self._connect(d, timeout)
        except (FileNotFoundError, ConnectionRefusedError, ConnectionResetError):
            return None
        except OSError as exc:
            raise System(f"cannot reach the shim of {d.name}: {exc}") from None
        with sock:
            try:
                sock.sendall(json.dumps(cmd).encode() + b"\n")
                line = self._readline(sock)
            except (BrokenPipeError, ConnectionResetError):
                return None
        if not line:
            return None
        try:
            return json.loads(line)
        except ValueError:
            raise System(f"bad answer from the shim of {d.name}: {line!r}") from None

    def _spawn_shim(self, spec: RuntimeSpec, d: Path) -> None:
        """Start the shim; its readiness is awaited lazily by the next operation
        (``_ready``), so the interpreter's start-up overlaps the daemon's work."""
        flags = ("t" if spec.tty else "") + ("i" if spec.open_stdin else "") + ("o" if spec.stdin_once else "")
        log_options = [f"log-max-size={spec.log_max_size}", f"log-max-files={spec.log_max_files}"]
        r, w = os.pipe()
        try:
            with open(d / "shim.log", "ab") as err:
                proc = subprocess.Popen(
                    [self.python, "-I", "-S", str(self.shim_path), str(d), str(self.root), spec.container_id,
                     str(spec.log_path) if spec.log_path else "-", flags or "-", str(w), *log_options, "--",
                     *spec.args],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                    pass_fds=(w,), start_new_session=True, cwd=str(d), close_fds=True)
        except OSError as exc:
            os.close(r)
            raise System(f"cannot start the lxc shim: {exc}") from None
        finally:
            os.close(w)
        os.set_inheritable(r, False)
        with self._lock:
            self._pending[spec.container_id] = _Pending(r, proc)

    def _ready(self, container_id: str) -> None:
        """Wait until a freshly spawned shim serves attach.sock (no-op otherwise)."""
        pending = self._pending.get(container_id)
        if pending is None:
            return
        with pending.lock:
            if not pending.done:
                pending.done = True
                pending.error = self._await_shim(pending.fd, pending.proc, self.root / container_id)
        with self._lock:
            if self._pending.get(container_id) is pending:
                del self._pending[container_id]
        if pending.error:
            raise System(pending.error)

    def _await_shim(self, r: int, proc: subprocess.Popen, d: Path) -> str | None:
        try:
            buf = b""
            deadline = time.monotonic() + SHIM_READY_TIMEOUT
            p = select.poll()
            p.register(r, select.POLLIN)
            while not buf.endswith(b"\n"):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not p.poll(remaining * 1000):
                    break
                chunk = os.read(r, 4096)
                if not chunk:
                    break
                buf += chunk
        finally:
            os.close(r)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
        if buf.startswith(b"ready "):
            return None
        detail = buf.decode(errors="replace").strip()
        try:
            detail = detail or (d / "shim.log").read_text(errors="replace").strip()[-2000:]
        except OSError:
            pass
        error = f"the lxc shim did not start: {detail or 'no output'}"
        if (d / "config").exists() and not (d / "exit").exists():
            self._record_exit(d, UNKNOWN_EXIT, error)
        return error

    # ------------------------------------------------------------------ state

    def _exit_status(self, d: Path) -> ExitStatus | None:
        info = _read_json(d / "exit")
        if info is None:
            return None
        return ExitStatus(exit_code=int(info.get("exit_code", UNKNOWN_EXIT)),
                          oom_killed=bool(info.get("oom_killed", False)),
                          finished_at=_ns_to_dt(info.get("finished_ns")) or datetime.now(timezone.utc))

    def _record_exit(self, d: Path, code: int, error: str = "") -> ExitStatus:
        """Write an exit file ourselves (the shim died without writing one)."""
        now = time.time_ns()
        oom = False
        try:
            oom = int((d / "oom").read_text().split()[0]) > 0
        except (OSError, ValueError, IndexError):
            pass
        info = {"exit_code": code, "oom_killed": oom, "finished_ns": now, "error": error,
                "started": (d / "started").exists()}
        try:
            _write_atomic(d / "exit", json.dumps(info) + "\n")
        except OSError:
            pass
        return ExitStatus(exit_code=code, oom_killed=oom, finished_at=_ns_to_dt(now))

    def _init_pid(self, d: Path) -> tuple[int, int | None]:
        """(init pid, started_ns) from the ``started`` file, (0, None) if never started."""
        info = _read_json(d / "started")
        if not info:
            return 0, None
        return int(info.get("pid", 0)), info.get("started_ns")

    def _init_alive(self, d: Path, pid: int) -> bool:
        if not _alive(pid):
            return False
        try:
            cg = Path(f"/proc/{pid}/cgroup").read_text()
        except OSError:
            return False
        return lxcconf.cgroup_dir(d.name) in cg

    def _frozen(self, container_id: str) -> bool:
        if self.cgroup2:
            f = lxcconf.CGROUP_ROOT / lxcconf.cgroup_dir(container_id) / "cgroup.freeze"
            try:
                return f.read_text().strip() == "1"
            except OSError:
                return False
        f = lxcconf.CGROUP_ROOT / "freezer" / lxcconf.cgroup_dir(container_id) / "freezer.state"
        try:
            return f.read_text().strip() in ("FROZEN", "FREEZING")
        except OSError:
            return False

    def _thaw(self, container_id: str) -> None:
        if self.cgroup2:
            f = lxcconf.CGROUP_ROOT / lxcconf.cgroup_dir(container_id) / "cgroup.freeze"
            value = "0"
        else:
            f = lxcconf.CGROUP_ROOT / "freezer" / lxcconf.cgroup_dir(container_id) / "freezer.state"
            value = "THAWED"
        try:
            f.write_text(value)
        except OSError:
            pass

    def _unified_dir(self, container_id: str) -> Path:
        if self.cgroup2:
            return lxcconf.CGROUP_ROOT / lxcconf.cgroup_dir(container_id)
        return lxcconf.CGROUP_ROOT / "unified" / lxcconf.cgroup_dir(container_id)

    def _state(self, d: Path) -> ProcessState | None:
        if not (d / "config").exists():
            return None
        pending = self._pending.get(d.name)
        if pending is not None and not pending.done:
            return ProcessState(status="created")
        pid, started_ns = self._init_pid(d)
        info = _read_json(d / "exit")
        if info is not None:
            return ProcessState(status="exited", pid=0, exit_code=int(info.get("exit_code", UNKNOWN_EXIT)),
                                oom_killed=bool(info.get("oom_killed", False)),
                                started_at=_ns_to_dt(started_ns),
                                finished_at=_ns_to_dt(info.get("finished_ns")))
        shim = self._shim_pid(d)
        if pid:
            if shim or self._init_alive(d, pid):
                status = "paused" if self._frozen(d.name) else "running"
                return ProcessState(status=status, pid=pid, started_at=_ns_to_dt(started_ns))
            # Both gone without an exit file: the shim was killed.  Look again: the
            # shim may have written the exit file meanwhile.
            st = self._exit_status(d)
            return ProcessState(status="exited", pid=0,
                                exit_code=st.exit_code if st else UNKNOWN_EXIT,
                                oom_killed=st.oom_killed if st else False,
                                started_at=_ns_to_dt(started_ns),
                                finished_at=st.finished_at if st else None)
        if shim:
            return ProcessState(status="created")
        st = self._exit_status(d)
        if st is not None:
            return self._state(d)
        return ProcessState(status="exited", exit_code=UNKNOWN_EXIT)

    # ------------------------------------------------------------------ waiting / killing

    def _wait(self, d: Path, timeout: float | None) -> ExitStatus | None:
        """Wait for the exit status; None on timeout."""
        st = self._exit_status(d)
        if st is not None:
            return st
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                info = self._ask_wait(d, remaining)
            except TimeoutError:
                return None
            if info is not None:
                return ExitStatus(exit_code=int(info.get("exit_code", UNKNOWN_EXIT)),
                                  oom_killed=bool(info.get("oom_killed", False)),
                                  finished_at=_ns_to_dt(info.get("finished_ns")) or datetime.now(timezone.utc))
            st = self._exit_status(d)
            if st is not None:
                return st
            shim = self._shim_pid(d)
            if shim:
                # alive but not answering: it is finishing; wait for it to go away
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                if not _wait_pid_gone(shim, 0.5 if remaining is None else min(0.5, remaining)):
                    if deadline is not None and time.monotonic() >= deadline:
                        return None
                continue
            return self._wait_orphan(d, None if deadline is None else max(0.0, deadline - time.monotonic()))

    def _ask_wait(self, d: Path, timeout: float | None) -> dict | None:
        """The shim's answer to ``{"cmd":"wait"}`` (it replies once the process has
        exited), or None when no shim answers.  Raises TimeoutError after ``timeout``."""
        try:
            sock = self._connect(d, 10.0)
        except OSError:
            return None
        with sock:
            try:
                sock.sendall(b'{"cmd":"wait"}\n')
                sock.settimeout(timeout)
                line = self._readline(sock)
            except TimeoutError:
                raise
            except OSError:
                return None
        try:
            answer = json.loads(line) if line else None
        except ValueError:
            return None
        return answer if isinstance(answer, dict) else None

    def _wait_orphan(self, d: Path, timeout: float | None) -> ExitStatus | None:
        """The shim is gone without an exit file: wait for the init process itself."""
        if not (d / "config").exists():
            raise NotFound(f"No such container: {d.name}")
        pid, _ = self._init_pid(d)
        if pid and self._init_alive(d, pid):
            if not _wait_pid_gone(pid, timeout):
                return None
        st = self._exit_status(d)
        if st is not None:
            return st
        return self._record_exit(d, UNKNOWN_EXIT, "the lxc shim died; exit status unknown")

    def _kill_all(self, container_id: str, pid: int) -> None:
        """SIGKILL the whole container: cgroup.kill when available, else its init."""
        killed = False
        f = self._unified_dir(container_id) / "cgroup.kill"
        try:
            f.write_text("1")
            killed = True
        except OSError:
            pass
        if not killed and pid:
            try:
                os.kill(pid, _signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._thaw(container_id)

    # ------------------------------------------------------------------ cleanup

    def _retire_shim(self, d: Path, grace: float = 2.0) -> None:
        """Let a shim whose process is over finish (it may still be flushing output
        to attach clients), killing it after ``grace`` seconds."""
        shim = self._shim_pid(d)
        if not shim:
            return
        if not _wait_pid_gone(shim, grace) and self._shim_pid(d) == shim:
            try:
                os.kill(shim, _signal.SIGKILL)
            except ProcessLookupError:
                pass
            _wait_pid_gone(shim, 2.0)

    def _cgroup_hierarchies(self) -> list[Path]:
        root = lxcconf.CGROUP_ROOT
        if self.cgroup2:
            return [root]
        out = []
        try:
            for p in sorted(root.iterdir()):
                if p.is_dir() and not p.is_symlink() and os.path.ismount(p):
                    out.append(p)
        except OSError:
            pass
        return out

    def _cleanup_runtime(self, container_id: str) -> None:
        """Remove leftover cgroups and LXC lock files of a container that is gone."""
        for h in self._cgroup_hierarchies():
            for rel in (lxcconf.cgroup_dir(container_id), lxcconf.monitor_cgroup_dir(container_id)):
                top = h / rel
                if not top.is_dir():
                    continue
                for dirpath, _dirs, _files in sorted(os.walk(top, topdown=False), key=lambda t: -len(t[0])):
                    try:
                        os.rmdir(dirpath)
                    except OSError:
                        pass
        lock_dir = LOCK_ROOT / str(self.root).lstrip("/")
        try:
            (lock_dir / f".{container_id}").unlink()
        except OSError:
            pass
        # drop now-empty lock directories up to (not including) /run/lxc/lock
        p = lock_dir
        while p != LOCK_ROOT and LOCK_ROOT in p.parents:
            try:
                p.rmdir()
            except OSError:
                break
            p = p.parent

    # ================================================================== hooks

    @dockyard.hookimpl
    def exec_create(self, spec: RuntimeSpec) -> bool:
        d = self._dir(spec.container_id)
        if not spec.args:
            raise InvalidParameter("no command specified")
        config = lxcconf.render_config(spec, d, cgroup2=self.cgroup2, seccomp=self.seccomp,
                                       log_level=self.log_level)
        hook = lxcconf.render_hook(spec, d, cgroup2=self.cgroup2)
        with self._lock:
            if spec.container_id in self._pending:
                raise Conflict(f"container {spec.container_id} already has a live process")
            if d.exists():
                if (d / "exit").exists():
                    self._retire_shim(d)    # exited; its shim may still be flushing output
                if self._shim_pid(d):
                    raise Conflict(f"container {spec.container_id} already has a live process")
                pid, _ = self._init_pid(d)
                if pid and not (d / "exit").exists() and self._init_alive(d, pid):
                    raise Conflict(f"container {spec.container_id} already has a live process")
                self._cleanup_runtime(spec.container_id)
                shutil.rmtree(d, ignore_errors=True)
            try:
                d.mkdir(parents=True)
            except FileExistsError:
                raise Conflict(f"container {spec.container_id} is being created concurrently") from None
        try:
            self._cleanup_runtime(spec.container_id)
            (d / "config").write_text(config)
            (d / "hook").write_text(hook)
            os.chmod(d / "hook", 0o755)
            meta = {"tty": spec.tty, "open_stdin": spec.open_stdin, "stdin_once": spec.stdin_once,
                    "stop_signal": spec.stop_signal, "log_path": str(spec.log_path or ""),
                    "created_ns": time.time_ns()}
            (d / "meta.json").write_text(json.dumps(meta) + "\n")
            os.mkfifo(d / "pid.fifo", 0o600)
            if spec.log_path is not None:
                Path(spec.log_path).parent.mkdir(parents=True, exist_ok=True)
            self._spawn_shim(spec, d)
        except OSError as exc:
            shutil.rmtree(d, ignore_errors=True)
            raise System(f"cannot prepare container {spec.container_id}: {exc}") from None
        except BaseException:
            shutil.rmtree(d, ignore_errors=True)
            raise
        return True

    @dockyard.hookimpl
    def exec_attach(self, container_id: str, stdin: bool, stdout: bool, stderr: bool) -> socket.socket:
        d = self._existing(container_id)
        self._ready(container_id)
        if (d / "exit").exists():
            return _eof_socket()
        try:
            sock = self._connect(d, 10.0)
        except (FileNotFoundError, ConnectionRefusedError):
            if (d / "exit").exists():
                return _eof_socket()
            raise NotFound(f"container {container_id} has no process to attach to") from None
        except OSError as exc:
            raise System(f"cannot attach to {container_id}: {exc}") from None
        try:
            hdr = {"stdin": bool(stdin), "stdout": bool(stdout), "stderr": bool(stderr)}
            sock.sendall(json.dumps(hdr).encode() + b"\n")
            ack = sock.recv(1)
        except OSError as exc:
            sock.close()
            if (d / "exit").exists():
                return _eof_socket()
            raise System(f"cannot attach to {container_id}: {exc}") from None
        if ack != b"+":
            sock.close()
            return _eof_socket()
        sock.settimeout(None)
        return sock

    @dockyard.hookimpl
    def exec_start(self, container_id: str) -> ProcessState:
        d = self._existing(container_id)
        self._ready(container_id)
        if (d / "exit").exists():
            raise NotFound(f"container {container_id} is not created (its process already exited)")
        reply = self._command(d, {"cmd": "start"}, timeout=START_TIMEOUT)
        if reply is None:
            if (d / "exit").exists():
                info = _read_json(d / "exit") or {}
                raise System(info.get("error") or f"container {container_id} exited during start")
            raise NotFound(f"container {container_id} is not created")
        if not reply.get("ok"):
            raise System(f"failed to start container {container_id}: {reply.get('error') or 'unknown error'}")
        return ProcessState(status="running", pid=int(reply["pid"]), started_at=_ns_to_dt(reply.get("started_ns")))

    @dockyard.hookimpl
    def exec_wait(self, container_id: str) -> ExitStatus:
        d = self._existing(container_id)
        self._ready(container_id)
        st = self._wait(d, None)
        assert st is not None
        return st

    @dockyard.hookimpl
    def exec_kill(self, container_id: str, signal: int) -> bool:
        d = self._existing(container_id)
        self._ready(container_id)
        state = self._state(d)
        if state is None or state.status not in ("running", "paused") or not state.pid:
            raise Conflict(f"Container {container_id} is not running")
        try:
            os.kill(state.pid, int(signal))
        except ProcessLookupError:
            raise Conflict(f"Container {container_id} is not running") from None
        except OSError as exc:
            raise System(f"cannot signal container {container_id}: {exc}") from None
        if state.status == "paused" and int(signal) == _signal.SIGKILL:
            self._thaw(container_id)
        return True

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
        if state is not None and state.status == "exited":
            return self._wait(d, 5.0) or self._record_exit(d, state.exit_code or UNKNOWN_EXIT)
        pid = state.pid if state else 0
        sig = int(signal) or int((_read_json(d / "meta.json") or {}).get("stop_signal", 15))
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

    @dockyard.hookimpl
    def exec_resize(self, container_id: str, height: int, width: int) -> bool:
        d = self._existing(container_id)
        self._ready(container_id)
        meta = _read_json(d / "meta.json") or {}
        if (d / "exit").exists():
            raise Conflict(f"Container {container_id} is not running")
        if not meta.get("tty"):
            return True
        reply = self._command(d, {"cmd": "resize", "h": int(height), "w": int(width)})
        if reply is None:
            raise Conflict(f"Container {container_id} is not running")
        if not reply.get("ok"):
            raise InvalidParameter(f"cannot resize the tty of {container_id} to {height}x{width}")
        return True

    @dockyard.hookimpl
    def exec_list(self) -> list[str]:
        try:
            return sorted(p.name for p in self.root.iterdir() if (p / "config").exists())
        except OSError:
            return []

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
        if not (d / "config").exists():
            return None
        state = self._state(d)
        if state is None:
            return None
        if state.status in ("running", "paused", "created"):
            self._prune_execs(d)
            return state
        pid, _ = self._init_pid(d)
        if not pid and not (d / "exit").exists():
            # prepared but never started, and the shim is gone (e.g. host reboot)
            self._cleanup_runtime(container_id)
            shutil.rmtree(d, ignore_errors=True)
            return None
        if not (d / "exit").exists():
            self._record_exit(d, state.exit_code if state.exit_code is not None else UNKNOWN_EXIT,
                              "the process ended while no shim was watching it")
        if not self._shim_pid(d):
            self._cleanup_runtime(container_id)
            for f in ("shim.pid", "attach.sock", "pid.fifo", "result"):
                try:
                    (d / f).unlink()
                except OSError:
                    pass
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
        if state is not None and state.status == "created" and self._shim_pid(d):
            self._command(d, {"cmd": "shutdown"}, timeout=5.0)
        self._retire_shim(d)
        self._cleanup_runtime(container_id)
        shutil.rmtree(d, ignore_errors=True)
        if d.exists():
            raise System(f"cannot remove the runtime state of {container_id}")
        return True

    def _running(self, container_id: str, *, allow_paused: bool = True) -> ProcessState:
        d = self._existing(container_id)
        self._ready(container_id)
        state = self._state(d)
        if state is None or state.status not in (("running", "paused") if allow_paused else ("running",)):
            raise Conflict(f"Container {container_id} is not running")
        return state

    @dockyard.hookimpl
    def exec_pause(self, container_id: str) -> bool:
        state = self._running(container_id)
        if state.status == "paused":
            raise Conflict(f"Container {container_id} is already paused")
        Cgroups(container_id, self.cgroup2).freeze()
        return True

    @dockyard.hookimpl
    def exec_unpause(self, container_id: str) -> bool:
        state = self._running(container_id)
        if state.status != "paused":
            raise Conflict(f"Container {container_id} is not paused")
        Cgroups(container_id, self.cgroup2).thaw()
        return True

    @dockyard.hookimpl
    def exec_processes(self, container_id: str) -> list[int]:
        self._running(container_id)
        return Cgroups(container_id, self.cgroup2).pids()

    @dockyard.hookimpl
    def exec_stats(self, container_id: str) -> dict:
        self._running(container_id)
        cg = Cgroups(container_id, self.cgroup2)
        stats = cg.stats()
        stats["num_procs"] = 0
        return stats

    @dockyard.hookimpl
    def exec_update(self, container_id: str, resources: Resources) -> bool:
        self._running(container_id)
        Cgroups(container_id, self.cgroup2).update(resources)
        return True

    # ------------------------------------------------------------------ docker exec

    def _exec_dir(self, container_id: str, exec_id: str) -> Path:
        if not exec_id or "/" in exec_id or exec_id.startswith(".") or len(exec_id) > 128:
            raise InvalidParameter(f"invalid exec id {exec_id!r}")
        return self._dir(container_id) / "exec" / exec_id

    @staticmethod
    def _recv_line(sock: socket.socket, limit: int = 65536) -> bytes:
        """One line, without consuming a byte past it (the stream follows at once); b"" at EOF."""
        buf = b""
        while len(buf) < limit:
            data = sock.recv(limit - len(buf), socket.MSG_PEEK)
            if not data:
                return b""
            i = data.find(b"\n")
            if i >= 0:
                return buf + sock.recv(i + 1)
            buf += sock.recv(len(data))     # no newline in what is there: take it, wait for more
        raise System("the exec shim sent an overlong line")

    @dockyard.hookimpl
    def exec_run(self, container_id: str, exec_id: str, spec: ProcessSpec) -> socket.socket:
        d = self._existing(container_id)
        self._ready(container_id)
        state = self._state(d)
        if state is None or state.status not in ("running", "paused"):
            raise Conflict(f"Container {container_id} is not running")
        if state.status == "paused":
            raise Conflict(f"Container {container_id} is paused, unpause the container before exec")
        if not spec.args or not spec.args[0]:
            raise InvalidParameter("No exec command specified")
        for item in [*spec.args, *spec.env, spec.cwd]:
            if "\0" in item:
                raise InvalidParameter("exec arguments, environment and working directory cannot contain NUL")
        cwd = spec.cwd or "/"
        if not cwd.startswith("/"):
            raise InvalidParameter(f"the working directory {cwd!r} is invalid, it needs to be an absolute path")
        xd = self._exec_dir(container_id, exec_id)
        try:
            xd.mkdir(parents=True)
        except FileExistsError:
            raise Conflict(f"exec {exec_id} has already run") from None
        except OSError as exc:
            raise System(f"cannot prepare exec {exec_id}: {exc}") from None
        cmd = {"cmd": "exec", "dir": str(xd), "args": "\0".join(spec.args), "env": "\0".join(spec.env),
               "cwd": cwd, "uid": int(spec.uid), "gid": int(spec.gid),
               "groups": ",".join(str(int(g)) for g in spec.additional_gids),
               "tty": bool(spec.tty), "stdin": bool(spec.stdin)}
        try:
            sock = self._connect(d, 30.0)
        except (FileNotFoundError, ConnectionRefusedError):
            shutil.rmtree(xd, ignore_errors=True)
            raise Conflict(f"Container {container_id} is not running") from None
        except OSError as exc:
            shutil.rmtree(xd, ignore_errors=True)
            raise System(f"cannot reach the shim of {container_id}: {exc}") from None
        try:
            sock.sendall(json.dumps(cmd).encode() + b"\n")
            line = self._recv_line(sock)
            reply = json.loads(line) if line else None
        except (OSError, ValueError) as exc:
            sock.close()
            shutil.rmtree(xd, ignore_errors=True)
            raise System(f"exec in {container_id} failed: {exc}") from None
        if not reply or not reply.get("ok"):
            sock.close()
            shutil.rmtree(xd, ignore_errors=True)
            error = (reply or {}).get("error") or "the container's shim closed the connection"
            now = self._state(d)
            if (reply or {}).get("conflict") or reply is None or now is None or now.status != "running":
                raise Conflict(f"Container {container_id} is not running")
            raise System(f"exec in {container_id} failed: {error}")
        sock.settimeout(None)
        return sock

    @dockyard.hookimpl
    def exec_run_wait(self, container_id: str, exec_id: str) -> int:
        key = (container_id, exec_id)
        if key in self._exec_codes:
            return self._exec_codes[key]
        xd = self._exec_dir(container_id, exec_id)
        if not xd.is_dir():
            raise NotFound(f"No such exec instance: {exec_id}")
        code = self._exec_wait(xd)
        with self._lock:
            self._exec_codes[key] = code
            while len(self._exec_codes) > 4096:
                del self._exec_codes[next(iter(self._exec_codes))]
        shutil.rmtree(xd, ignore_errors=True)
        return code

    def _exec_wait(self, xd: Path) -> int:
        # Ask the exec shim even when ``exit`` exists: it holds the stream until
        # a waiter has collected the code, so a caller that inspects the exit code
        # as soon as the stream ends finds it recorded.
        while True:
            answer = self._ask_wait(xd, None)
            if answer is not None and "exit_code" in answer:
                return int(answer["exit_code"])
            info = _read_json(xd / "exit")
            if info is not None:
                return int(info.get("exit_code", UNKNOWN_EXIT))
            try:
                pid = int((xd / "shim.pid").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                pid = 0
            if pid and _alive(pid):
                _wait_pid_gone(pid, 0.2)
                continue
            if not pid and xd.is_dir() and time.time() - xd.stat().st_mtime < 5:
                time.sleep(0.02)    # the exec shim has not written its pid yet
                continue
            info = _read_json(xd / "exit")
            return int(info.get("exit_code", UNKNOWN_EXIT)) if info else UNKNOWN_EXIT

    @dockyard.hookimpl
    def exec_run_resize(self, container_id: str, exec_id: str, height: int, width: int) -> bool:
        xd = self._exec_dir(container_id, exec_id)
        if not xd.is_dir():
            if (container_id, exec_id) in self._exec_codes:
                raise Conflict(f"exec {exec_id} is not running")
            raise NotFound(f"No such exec instance: {exec_id}")
        reply = self._command(xd, {"cmd": "resize", "h": int(height), "w": int(width)})
        if reply is None:
            raise Conflict(f"exec {exec_id} is not running")
        if not reply.get("ok"):
            raise InvalidParameter(f"cannot resize the tty of exec {exec_id} to {height}x{width}")
        return True

    def _prune_execs(self, d: Path) -> None:
        """Drop the state of exec processes that are over (their codes were lost with the daemon)."""
        try:
            entries = list((d / "exec").iterdir())
        except OSError:
            return
        for xd in entries:
            try:
                pid = int((xd / "shim.pid").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                pid = 0
            if (xd / "exit").exists() or not (pid and _alive(pid)):
                shutil.rmtree(xd, ignore_errors=True)

    @dockyard.hookimpl
    def exec_status(self) -> list[tuple[str, str]]:
        return [("Execution Driver", f"lxc-{self._lxc_version()}"),
                ("Cgroup Version", "2" if self.cgroup2 else "1")]

    def _lxc_version(self) -> str:
        if self._version is None:
            try:
                out = subprocess.run(["lxc-start", "--version"], capture_output=True, text=True, timeout=10)
                self._version = out.stdout.strip() or "unknown"
            except (OSError, subprocess.SubprocessError):
                self._version = "unknown"
        return self._version
