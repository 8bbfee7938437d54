"""exec_oci: dockyard's execution driver on OCI runtimes (runc, crun), each container under conmon.

Layout: ``<root>`` (``<data-root>/exec/oci``) holds one OCI bundle per container,
``<root>/<id>/``: the files :class:`dockyard.conmon.Supervisor` describes (``meta.json``,
``conmon.pid``, ``pidfile``, ``started``, ``exit``, ``attach``, ``ctl``, ``exec/<id>/``),
plus ``config.json`` (the OCI runtime spec, :mod:`.bundle`) and ``oom`` (conmon
records an OOM kill there).  ``<root>/runtime/<name>/`` is each runtime's state
directory (``--root``).

The log: conmon writes the container's output to the RuntimeSpec's ``log_path`` in
the CRI format (``k8s-file``: ``<RFC3339Nano> <stdout|stderr> <F|P> <text>``), which
the daemon's log reader (:mod:`dockyard.logs`) understands next to Docker's
json-file.  conmon has no json-file writer, and this keeps conmon the only process a
container needs (about 0.4 MB PSS).

Everything a container needs at run time belongs to its conmon, never to the daemon:
a daemon killed at any moment finds its containers running (or their exit codes
recorded) when it comes back (``exec_restore``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from dockyard import confinement, conmon, hookimpl
from dockyard.cgroups import CGROUP_ROOT, cgroup2_host, cgroup_dir, hybrid_host
from dockyard.errors import Conflict, DriverNotSupported, InvalidParameter, NotFound, System
from dockyard.models.runtime import Confinement, ProcessSpec, ProcessState, Runtimes, RuntimeSpec
from dockyard.plugins.exec_oci import bundle, runtimes

OPTIONS = {"runtime", "runtimes", "conmon", "log_level"}


class OciDriver(conmon.SupervisedDriver):
    """Execution driver: each container's process is created by an OCI runtime and watched by conmon."""

    name = "oci"

    def __init__(self, root: Path, options: dict) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        self.options = dict(options or {})
        unknown = sorted(set(self.options) - OPTIONS)
        if unknown:
            raise InvalidParameter(
                f"the oci exec driver has no option {', '.join(unknown)} (it knows {', '.join(sorted(OPTIONS))})"
            )
        self.conmon_path = str(self.options.get("conmon") or shutil.which("conmon") or "conmon")
        configured = runtimes.parse(self.options.get("runtimes")) if self.options.get("runtimes") else {}
        paths = {**runtimes.discover(), **configured}
        if not paths:
            raise DriverNotSupported("oci", "no OCI runtime found (install runc or crun)")
        default = str(self.options.get("runtime") or next(iter(paths)))
        if default not in paths:
            raise InvalidParameter(f"unknown runtime {default!r} (configured: {', '.join(sorted(paths))})")
        self.default_runtime = default
        self.runtimes = {name: runtimes.prepare(name, path, self.root) for name, path in paths.items()}
        self.cgroup2 = cgroup2_host()
        self.swap = bundle.swap_accounting(CGROUP_ROOT, self.cgroup2)
        self.log_level = str(self.options.get("log_level", "error")).lower()
        self.sv = conmon.Supervisor(self.root, self.cgroup2, oom_killed=lambda d: (d / "oom").exists())

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

    # ------------------------------------------------------------------ runtimes

    def _runtime(self, d: Path) -> runtimes.Runtime:
        name = self.sv.meta(d).get("runtime") or self.default_runtime
        rt = self.runtimes.get(name)
        if rt is None:
            raise System(f"container {d.name} was made with the runtime {name!r}, which is not configured")
        return rt

    def _monitor(self, rt: runtimes.Runtime) -> conmon.Monitor:
        return conmon.Monitor(
            conmon=self.conmon_path,
            runtime_path=rt.program,
            runtime_args=["--root", str(rt.state)],
            log_level=self.log_level,
        )

    def _remove_runtime_state(self, d: Path) -> None:
        """``runtime delete --force``: the runtime's record of the container, and its cgroups."""
        if not (d / "meta.json").exists():
            return
        try:
            rt = self._runtime(d)
        except System:
            return
        out = rt.run("delete", "--force", d.name, timeout=30)
        if out.returncode != 0 and "not exist" not in out.stderr:
            self._remove_cgroups(d.name)  # nothing else can remove the runtime's record; the cgroups at least go

    def _remove_cgroups(self, container_id: str) -> None:
        hierarchies = (
            [CGROUP_ROOT] if self.cgroup2 else [p for p in CGROUP_ROOT.iterdir() if p.is_dir() and os.path.ismount(p)]
        )
        for h in hierarchies:
            top = h / cgroup_dir(container_id)
            for dirpath, _dirs, _files in sorted(os.walk(top, topdown=False), key=lambda t: -len(t[0])):
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass

    @staticmethod
    def _describe(error: str) -> str:
        return runtimes.error_text(error) or error

    # ================================================================== hooks

    @hookimpl
    def exec_create(self, spec: RuntimeSpec) -> bool:
        d = self.sv.dir(spec.container_id)
        name = spec.runtime or self.default_runtime
        rt = self.runtimes.get(name)
        if rt is None:
            raise InvalidParameter(f"Unknown runtime specified {name}")
        config = bundle.config(spec, cgroups_path="/" + cgroup_dir(spec.container_id), swap_accounting=self.swap)
        if spec.confinement.apparmor_profile == confinement.APPARMOR_PROFILE:
            confinement.load_apparmor_profile()
        if self.sv.live(spec.container_id):
            raise Conflict(f"container {spec.container_id} already has a live process")
        if d.exists():
            state = self.sv.state(d)
            if state is not None and state.status != "exited":
                raise Conflict(f"container {spec.container_id} already has a live process")
            self._remove_runtime_state(d)
            self.sv.retire(d)
            shutil.rmtree(d, ignore_errors=True)
        try:
            d.mkdir(parents=True, mode=0o700)
        except FileExistsError:
            raise Conflict(f"container {spec.container_id} is being created concurrently") from None
        meta = {
            "runtime": name,
            "tty": spec.tty,
            "open_stdin": spec.open_stdin,
            "stop_signal": spec.stop_signal,
            "hostname": spec.hostname or spec.container_id[:12],
            # what a docker exec process shares with the container's (seccomp the runtime applies itself)
            "confinement": spec.confinement.model_dump(
                mode="json", include={"capabilities", "no_new_privileges", "apparmor_profile"}
            ),
        }
        try:
            conmon.write_private(d / "config.json", json.dumps(config))  # the environment: root only
            if spec.log_path is not None:
                Path(spec.log_path).parent.mkdir(parents=True, exist_ok=True)
            conmon.write_private(d / "meta.json", json.dumps(meta))
            self.sv.create(
                self._monitor(rt),
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

    def _ready(self, container_id: str) -> None:
        self.sv.ready(container_id, lambda d, e: f"OCI runtime create failed: {self._describe(e)}")

    @hookimpl
    def exec_start(self, container_id: str) -> ProcessState:
        d = self.sv.existing(container_id)
        self._ready(container_id)
        if (d / "exit").exists():
            raise NotFound(f"container {container_id} is not created (its process already exited)")
        pid = conmon.read_int(d / "pidfile")
        if not pid or not self.sv.conmon_pid(d):
            raise NotFound(f"container {container_id} is not created")
        out = self._runtime(d).run("start", container_id)
        if out.returncode != 0 and not (d / "exit").exists():  # exited at once: that was a run, not a failure
            error = runtimes.error_text(out.stderr) or f"exit status {out.returncode}"
            raise System(f"failed to start container {container_id}: {error}")
        return self.sv.mark_started(d, pid)

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
        state = self.sv.state(d)
        if state is None:
            return None
        if state.status in ("running", "paused", "created"):
            self.sv.prune_execs(d)
            return state
        if not (d / "started").exists() and not (d / "exit").exists():
            # prepared but never started, and its conmon is gone (a host reboot)
            self._remove_runtime_state(d)
            shutil.rmtree(d, ignore_errors=True)
            return None
        if not (d / "exit").exists():
            self.sv.record_exit(d, state.exit_code if state.exit_code is not None else conmon.UNKNOWN_EXIT)
        if not self.sv.conmon_pid(d):
            self._remove_runtime_state(d)
        return self.sv.state(d)

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
        self._remove_runtime_state(d)  # a created container's process dies here; its conmon follows
        self.sv.retire(d)
        shutil.rmtree(d, ignore_errors=True)
        if d.exists():
            raise System(f"cannot remove the runtime state of {container_id}")
        self.sv.forget(container_id)
        return True

    @hookimpl
    def exec_pause(self, container_id: str) -> bool:
        d, state = self.sv.running(container_id)
        if state.status == "paused":
            raise Conflict(f"Container {container_id} is already paused")
        self._runtime(d).check("pause", container_id)
        return True

    @hookimpl
    def exec_unpause(self, container_id: str) -> bool:
        d, state = self.sv.running(container_id)
        if state.status != "paused":
            raise Conflict(f"Container {container_id} is not paused")
        self._runtime(d).check("resume", container_id)
        return True

    @hookimpl
    def exec_run(self, container_id: str, exec_id: str, spec: ProcessSpec) -> socket.socket:
        d = self.sv.existing(container_id)
        meta = self.sv.meta(d)
        process = bundle.process(
            spec,
            str(meta.get("hostname") or container_id[:12]),
            Confinement.model_validate(meta.get("confinement") or {}),
        )

        def write(xd: Path) -> Path:
            conmon.write_private(xd / "process.json", json.dumps(process))
            return xd / "process.json"

        return self.sv.run(
            self._monitor(self._runtime(d)),
            container_id,
            exec_id,
            tty=spec.tty,
            stdin=spec.stdin,
            write_process=write,
            describe=self._describe,
        )

    @hookimpl
    def exec_runtimes(self) -> Runtimes:
        return Runtimes(default=self.default_runtime, paths={n: rt.path for n, rt in self.runtimes.items()})

    @hookimpl
    def exec_status(self) -> list[tuple[str, str]]:
        layout = "2" if self.cgroup2 else ("1 (hybrid)" if hybrid_host() else "1")
        lines = [
            ("Execution Driver", f"oci ({self.default_runtime})"),
            ("Cgroup Version", layout),
            ("conmon", _version([self.conmon_path, "--version"])),
        ]
        for name, rt in sorted(self.runtimes.items()):
            lines.append((f"Runtime {name}", f"{rt.path} {rt.version()}"))
        return lines


def _version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    first = (out.stdout.splitlines() or ["unknown"])[0]
    return first.split()[-1] if first.split() else "unknown"
