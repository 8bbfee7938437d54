"""exec_lxc: dockyard's execution driver on top of liblxc, each container under conmon.

Every container's process belongs to a conmon (:mod:`dockyard.conmon`, shared with
exec_oci), so it outlives the daemon.  conmon runs ``dockyard-lxc-runtime``
(``lxc_runtime.c``, built by this driver on first use), a small program that speaks
the two runtime commands conmon uses with liblxc: ``create`` forks the LXC monitor
(which runs ``start()`` in the foreground once told to, the app as PID 1, and exits
with the app's exit code) and ``exec`` attaches a process with liblxc's
``attach()``.  Per container that leaves conmon (about 0.4 MB PSS) and the LXC
monitor (about 0.5 MB): no interpreter.

Layout: ``<root>`` (``<data-root>/exec/lxc``) is the LXC ``lxcpath``; each container
has ``<root>/<id>/`` holding what :class:`dockyard.conmon.Supervisor` describes
(``meta.json``, ``conmon.pid``, ``pidfile`` = the monitor, ``started``, ``exit``,
``attach``, ``ctl``, ``exec/<id>/``) and

``config``      the complete LXC config (lxc-* tools read it too); root only (it holds the environment)
``seccomp``     the container's seccomp policy in LXC's format (absent: unconfined)
``hook``        start-host (writes the init pid to ``init.pid``) and stop (OOM count to ``oom_kill``)
``argv``        the command, NUL-separated (the monitor reads it)
``start.fifo``  the monitor waits for a byte here before it starts the container
``lxc.log``     liblxc's log (start failures are reported from it)

The log: conmon writes the CRI format (``k8s-file``) at the RuntimeSpec's ``log_path``,
which :mod:`dockyard.logs` reads next to Docker's json-file.
"""

from __future__ import annotations

import ctypes.util
import errno
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from dockyard import confinement, conmon, hookimpl
from dockyard.cgroups import CGROUP_ROOT, cgroup2_host, cgroup_dir
from dockyard.errors import Conflict, DriverNotSupported, InvalidParameter, NotFound, System
from dockyard.models.runtime import ProcessSpec, ProcessState, Runtimes, RuntimeSpec
from dockyard.plugins.exec_lxc import lxcconf

RUNTIME_SOURCE = Path(__file__).resolve().with_name("lxc_runtime.c")
LXC_HEADER = Path("/usr/include/lxc/lxccontainer.h")
LOCK_ROOT = Path("/run/lxc/lock")
START_TIMEOUT = 60.0
OPTIONS = {"log_level", "conmon"}


def _find_liblxc() -> bool:
    for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib"):
        if os.path.exists(os.path.join(d, "liblxc.so.1")):
            return True
    return ctypes.util.find_library("lxc") is not None


#: compiled copies shared by every data root on the host (a test suite makes hundreds of roots)
BUILD_CACHE = Path(os.environ.get("DOCKYARD_BUILD_CACHE", "/var/cache/dockyard"))


def build_runtime(directory: Path) -> Path:
    """The compiled ``dockyard-lxc-runtime`` for this source in ``directory``: copied from the
    host's build cache, or compiled (and cached) when missing."""
    source = RUNTIME_SOURCE.read_bytes()
    name = f".lxc-runtime-{hashlib.sha256(source).hexdigest()[:16]}"
    target = directory / name
    if target.exists():
        return target
    tmp = target.with_name(f"{name}.{os.getpid()}.tmp")
    cached = BUILD_CACHE / name.lstrip(".")
    try:
        shutil.copy2(cached, tmp)
    except OSError:
        _compile(tmp)
        try:
            BUILD_CACHE.mkdir(parents=True, exist_ok=True, mode=0o700)
            staging = cached.with_name(f"{cached.name}.{os.getpid()}.tmp")
            shutil.copy2(tmp, staging)
            os.replace(staging, cached)
        except OSError:
            pass  # no cache: the next data root compiles again
    os.replace(tmp, target)
    for old in directory.glob(".lxc-runtime-*"):
        if old != target and not old.name.endswith(".tmp"):
            old.unlink(missing_ok=True)  # running monitors keep their (unlinked) copy
    return target


def _compile(output: Path) -> None:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise DriverNotSupported("lxc", "no C compiler to build dockyard-lxc-runtime (install gcc)")
    out = subprocess.run([cc, "-O2", "-o", str(output), str(RUNTIME_SOURCE), "-llxc"], capture_output=True, text=True)
    if out.returncode != 0:
        output.unlink(missing_ok=True)
        raise DriverNotSupported("lxc", f"cannot build dockyard-lxc-runtime: {out.stderr.strip()[-500:]}")


def _lxc_error(d: Path) -> str:
    """The most useful line(s) of lxc.log for an error message."""
    try:
        text = (d / "lxc.log").read_text(errors="replace")
    except OSError:
        text = ""
    lines = [ln for ln in text.splitlines() if " ERROR " in ln] or [ln for ln in text.splitlines() if ln.strip()][-3:]
    messages: list[str] = []
    for ln in lines:
        msg = ln.split(" - ", 2)[-1].strip() if " - " in ln else ln.strip()
        if msg and msg not in messages:
            messages.append(msg)
    return "; ".join(messages[:4]) or "lxc start failed (no details in lxc.log)"


class LxcDriver(conmon.SupervisedDriver):
    """Execution driver: each container's main process runs under liblxc, watched by conmon."""

    name = "lxc"

    def __init__(self, root: Path, options: dict) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        self.options = dict(options or {})
        unknown = sorted(set(self.options) - OPTIONS)
        if unknown:
            raise InvalidParameter(
                f"the lxc exec driver has no option {', '.join(unknown)} "
                f"(it knows {', '.join(sorted(OPTIONS))}; --runtime is the oci driver's)"
            )
        self.log_level = str(self.options.get("log_level", "WARN")).upper()
        self.conmon_path = str(self.options.get("conmon") or shutil.which("conmon") or "conmon")
        self.cgroup2 = cgroup2_host()
        self.runtime = build_runtime(self.root)
        self.sv = conmon.Supervisor(self.root, self.cgroup2, oom_killed=self._oom_killed)
        self._version: str | None = None

    @classmethod
    def check_supported(cls) -> None:
        if not sys.platform.startswith("linux"):
            raise DriverNotSupported("lxc", "LXC needs Linux")
        if os.geteuid() != 0:
            raise DriverNotSupported("lxc", "the lxc driver needs root (unprivileged LXC is not supported)")
        if not hasattr(os, "pidfd_open"):
            raise DriverNotSupported("lxc", "Python without os.pidfd_open (needs Linux >= 5.3)")
        if not _find_liblxc():
            raise DriverNotSupported("lxc", "liblxc.so.1 not found (install liblxc1)")
        if shutil.which("conmon") is None:
            raise DriverNotSupported("lxc", "conmon not found in PATH (install the conmon package)")
        if not LXC_HEADER.exists() or not (shutil.which("cc") or shutil.which("gcc")):
            raise DriverNotSupported("lxc", "building dockyard-lxc-runtime needs gcc and lxc-dev")
        if not CGROUP_ROOT.is_dir():
            raise DriverNotSupported("lxc", "/sys/fs/cgroup is not mounted")

    @staticmethod
    def _oom_killed(d: Path) -> bool:
        return (conmon.read_int(d / "oom_kill") or 0) > 0

    def _monitor(self) -> conmon.Monitor:
        return conmon.Monitor(
            conmon=self.conmon_path, runtime_path=str(self.runtime), runtime_args=["--root", str(self.root)]
        )

    def _ready(self, container_id: str) -> None:
        self.sv.ready(container_id, lambda d, e: f"cannot create the LXC container: {e}")

    # ------------------------------------------------------------------ cleanup

    def _cgroup_hierarchies(self) -> list[Path]:
        if self.cgroup2:
            return [CGROUP_ROOT]
        try:
            return [
                p for p in sorted(CGROUP_ROOT.iterdir()) if p.is_dir() and not p.is_symlink() and os.path.ismount(p)
            ]
        except OSError:
            return []

    def _cleanup_runtime(self, container_id: str) -> None:
        """Remove leftover cgroups and LXC lock files of a container that is gone."""
        for h in self._cgroup_hierarchies():
            for rel in (cgroup_dir(container_id), lxcconf.monitor_cgroup_dir(container_id)):
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
        p = lock_dir
        while p != LOCK_ROOT and LOCK_ROOT in p.parents:  # now-empty lock directories, up to /run/lxc/lock
            try:
                p.rmdir()
            except OSError:
                break
            p = p.parent

    def _release_monitor(self, d: Path) -> None:
        """A created, never-started container: let its monitor go (EOF on start.fifo), then its conmon."""
        try:
            fd = os.open(d / "start.fifo", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            pass
        else:
            os.close(fd)
        self.sv.retire(d)

    # ================================================================== hooks

    @hookimpl
    def exec_create(self, spec: RuntimeSpec) -> bool:
        d = self.sv.dir(spec.container_id)
        if spec.runtime not in ("", self.name):
            raise InvalidParameter(f"Unknown runtime specified {spec.runtime}")
        if not spec.args:
            raise InvalidParameter("no command specified")
        if spec.confinement.apparmor_profile == confinement.APPARMOR_PROFILE:
            confinement.load_apparmor_profile()
        config = lxcconf.render_config(spec, d, cgroup2=self.cgroup2, log_level=self.log_level)
        hook = lxcconf.render_hook(spec, d, cgroup2=self.cgroup2)
        seccomp = lxcconf.render_seccomp(spec.confinement.seccomp) if spec.confinement.seccomp else None
        for arg in spec.args:
            if "\0" in arg:
                raise InvalidParameter("arguments cannot contain NUL")
        if self.sv.live(spec.container_id):
            raise Conflict(f"container {spec.container_id} already has a live process")
        if d.exists():
            state = self.sv.state(d)
            if state is not None and state.status != "exited":
                raise Conflict(f"container {spec.container_id} already has a live process")
            self.sv.retire(d)
            self._cleanup_runtime(spec.container_id)
            shutil.rmtree(d, ignore_errors=True)
        try:
            d.mkdir(parents=True, mode=0o700)
        except FileExistsError:
            raise Conflict(f"container {spec.container_id} is being created concurrently") from None
        meta = {
            "tty": spec.tty,
            "open_stdin": spec.open_stdin,
            "stop_signal": spec.stop_signal,
            "hostname": spec.hostname or spec.container_id[:12],
        }
        try:
            self._cleanup_runtime(spec.container_id)
            # root only: the config and argv hold the container's environment and command (secrets, often)
            conmon.write_private(d / "config", config)
            if seccomp is not None:
                conmon.write_private(d / "seccomp", seccomp)
            conmon.write_private(d / "hook", hook, 0o700)
            conmon.write_private(d / "argv", b"".join(a.encode() + b"\0" for a in spec.args))
            os.mkfifo(d / "start.fifo", 0o600)
            if spec.log_path is not None:
                Path(spec.log_path).parent.mkdir(parents=True, exist_ok=True)
            conmon.write_private(d / "meta.json", json.dumps(meta))
            self.sv.create(
                self._monitor(),
                spec.container_id,
                d,
                log_path=spec.log_path,
                tty=spec.tty,
                open_stdin=spec.open_stdin,
                stdin_once=spec.stdin_once,
            )
        except OSError as exc:
            shutil.rmtree(d, ignore_errors=True)
            raise System(f"cannot prepare container {spec.container_id}: {exc}") from None
        except BaseException:
            shutil.rmtree(d, ignore_errors=True)
            raise
        return True

    @hookimpl
    def exec_start(self, container_id: str) -> ProcessState:
        d = self.sv.existing(container_id)
        self._ready(container_id)
        if (d / "exit").exists() or (d / "started").exists():
            raise NotFound(f"container {container_id} is not created (its process already ran)")
        monitor = conmon.read_int(d / "pidfile")
        if not monitor or not self.sv.conmon_pid(d):
            raise NotFound(f"container {container_id} is not created")
        self._go(d, monitor)
        pid = self._await_init(d, monitor)
        return self.sv.mark_started(d, pid)

    def _go(self, d: Path, monitor: int) -> None:
        """Tell the monitor to start the container (a byte on start.fifo, once it listens)."""
        deadline = time.monotonic() + START_TIMEOUT
        delay = 0.0002
        while True:
            try:
                fd = os.open(d / "start.fifo", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
                break
            except OSError as exc:
                if exc.errno != errno.ENXIO or not conmon.alive(monitor) or time.monotonic() > deadline:
                    raise System(f"cannot start container {d.name}: its LXC monitor is not waiting") from None
            time.sleep(delay)
            delay = min(delay * 2, 0.01)
        try:
            os.write(fd, b"g")
        finally:
            os.close(fd)

    def _await_init(self, d: Path, monitor: int) -> int:
        """The container's init pid, once it runs the app.

        The start-host hook writes the pid before the init has exec'd the app; it still has
        to pass LXC's last sync steps, and SIGKILLing it in that window leaves liblxc's
        monitor blocked forever.  So a start is only reported once the exec is seen."""
        deadline = time.monotonic() + START_TIMEOUT
        started = time.monotonic()
        pid = 0
        try:
            ours = os.stat(self.runtime)
        except OSError as exc:
            raise System(f"the LXC runtime is gone: {exc}") from None
        while time.monotonic() < deadline:
            if not pid:
                pid = conmon.read_int(d / "init.pid") or 0
            if pid:
                try:
                    st = os.stat(f"/proc/{pid}/exe")
                    if (st.st_dev, st.st_ino) != (ours.st_dev, ours.st_ino):
                        return pid
                except OSError:
                    return self._ran_or_failed(d, pid)  # gone already: did the app run?
            if not conmon.alive(monitor):
                return self._ran_or_failed(d, pid)
            elapsed = time.monotonic() - started
            time.sleep(0.0002 if elapsed < 0.02 else 0.001 if elapsed < 0.5 else 0.01)
        raise System(f"container {d.name} did not start within {START_TIMEOUT:g}s")

    def _ran_or_failed(self, d: Path, pid: int) -> int:
        """The container ended during start: it ran (return its pid) unless LXC logged why it
        could not start it; then the exit code is Docker's for the reason (126 not executable,
        127 not found, else 255) and the start fails with it."""
        st = self.sv.wait(d, 10.0)
        # _await_init may have looked for init.pid just before the hook wrote it and seen the
        # monitor gone just after a short-lived app ended: the app ran if the hook reported its pid.
        # (Under load that window is wide: a soak's concurrent `run`s got 500s naming LXC's last
        # WARN line, "Failed to allocate new network namespace id", which every bridged start logs.)
        pid = pid or conmon.read_int(d / "init.pid") or 0
        log = ""
        try:
            log = (d / "lxc.log").read_text(errors="replace")
        except OSError:
            pass
        if pid and (st is None or st.exit_code != conmon.UNKNOWN_EXIT or " ERROR " not in log):
            return pid
        error = _lxc_error(d)
        low = error.lower()
        code = conmon.UNKNOWN_EXIT
        if "exec" in low and "no such file" in low:
            code = 127
        elif "exec" in low and "permission denied" in low:
            code = 126
        self.sv.record_exit(d, code)
        raise System(f"failed to start container {d.name}: {error}")

    @hookimpl
    def exec_restore(self, container_id: str) -> ProcessState | None:
        try:
            d = self.sv.dir(container_id)
        except InvalidParameter:
            return None
        try:
            self._ready(container_id)
        except System:
            pass
        if (d / "config").exists() and not (d / "meta.json").exists():
            return self._retire_legacy(d)
        state = self.sv.state(d)
        if state is None:
            return None
        if state.status in ("running", "paused", "created"):
            self.sv.prune_execs(d)
            return state
        if not (d / "started").exists() and not (d / "exit").exists():
            # prepared but never started, and its conmon is gone (a host reboot)
            self._cleanup_runtime(container_id)
            shutil.rmtree(d, ignore_errors=True)
            return None
        if not (d / "exit").exists():
            self.sv.record_exit(d, state.exit_code if state.exit_code is not None else conmon.UNKNOWN_EXIT)
        if not self.sv.conmon_pid(d):
            self._cleanup_runtime(container_id)
        return self.sv.state(d)

    def _retire_legacy(self, d: Path) -> ProcessState:
        """A container the previous (Python shim) version of this driver started: it cannot be
        adopted, so it is stopped (SIGKILL, 137) and its state dropped, its recorded exit
        code kept when it had already ended."""
        info = conmon.read_json(d / "exit") or {}
        code = int(info.get("exit_code", 137))
        cg = self.sv.cgroups(d.name)
        if not cg.kill_all():
            for pid in cg.pids() if cg.exists() else []:
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass
        shim = conmon.read_int(d / "shim.pid")
        if shim and conmon.alive(shim):
            try:
                os.kill(shim, 9)
            except OSError:
                pass
            conmon.wait_pid_gone(shim, 5.0)
        self._cleanup_runtime(d.name)
        shutil.rmtree(d, ignore_errors=True)
        return ProcessState(status="exited", exit_code=code, finished_at=datetime.now(timezone.utc))

    @hookimpl
    def exec_delete(self, container_id: str) -> bool:
        d = self.sv.dir(container_id)
        if not d.exists():
            return True
        try:
            self._ready(container_id)
        except System:
            pass
        state = self.sv.state(d)
        if state is not None and state.status in ("running", "paused"):
            raise Conflict(
                f"You cannot remove a running container {container_id}. "
                "Stop the container before attempting removal or force remove"
            )
        self._release_monitor(d)
        self._cleanup_runtime(container_id)
        shutil.rmtree(d, ignore_errors=True)
        if d.exists():
            raise System(f"cannot remove the runtime state of {container_id}")
        self.sv.forget(container_id)
        return True

    @hookimpl
    def exec_pause(self, container_id: str) -> bool:
        _, state = self.sv.running(container_id)
        if state.status == "paused":
            raise Conflict(f"Container {container_id} is already paused")
        self.sv.cgroups(container_id).freeze()
        return True

    @hookimpl
    def exec_unpause(self, container_id: str) -> bool:
        _, state = self.sv.running(container_id)
        if state.status != "paused":
            raise Conflict(f"Container {container_id} is not paused")
        self.sv.cgroups(container_id).thaw()
        return True

    # ------------------------------------------------------------------ docker exec

    @hookimpl
    def exec_run(self, container_id: str, exec_id: str, spec: ProcessSpec) -> socket.socket:
        d = self.sv.existing(container_id)
        if not spec.args or not spec.args[0]:
            raise InvalidParameter("No exec command specified")
        cwd = spec.cwd or "/"
        if not cwd.startswith("/"):
            raise InvalidParameter(f"the working directory {cwd!r} is invalid, it needs to be an absolute path")
        env: dict[str, str] = {}
        for item in spec.env:  # the core merged the container's environment in already
            key, sep, value = item.partition("=")
            if sep and key:
                env[key] = value
        env.setdefault("HOSTNAME", str(self.sv.meta(d).get("hostname") or container_id[:12]))
        if spec.tty:
            env.setdefault("TERM", "xterm")
        fields = [
            str(int(spec.uid)),
            str(int(spec.gid)),
            ",".join(str(int(g)) for g in spec.additional_gids),
            cwd,
            *spec.args,
            "",
            *(f"{k}={v}" for k, v in env.items()),
        ]
        if any("\0" in f for f in fields):
            raise InvalidParameter("exec arguments, environment and working directory cannot contain NUL")
        if any(not a for a in spec.args):
            raise InvalidParameter("exec arguments cannot be empty")

        def write(xd: Path) -> Path:
            conmon.write_private(xd / "process", b"".join(f.encode() + b"\0" for f in fields))
            return xd / "process"

        return self.sv.run(self._monitor(), container_id, exec_id, tty=spec.tty, stdin=spec.stdin, write_process=write)

    # ------------------------------------------------------------------ info

    @hookimpl
    def exec_runtimes(self) -> Runtimes:
        """liblxc is this driver's only runtime (``docker run --runtime lxc``)."""
        return Runtimes(default=self.name, paths={self.name: str(self.runtime)})

    @hookimpl
    def exec_status(self) -> list[tuple[str, str]]:
        return [("Execution Driver", f"lxc-{self._lxc_version()}"), ("Cgroup Version", "2" if self.cgroup2 else "1")]

    def _lxc_version(self) -> str:
        if self._version is None:
            try:
                out = subprocess.run(["lxc-start", "--version"], capture_output=True, text=True, timeout=10)
                self._version = out.stdout.strip() or "unknown"
            except (OSError, subprocess.SubprocessError):
                self._version = "unknown"
        return self._version
