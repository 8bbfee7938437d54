"""Exec-driver conformance suite (a pytest plugin, loaded on request).

Use it from a thin test module::

    pytest_plugins = ["dockyard.testing.exec_conformance"]
    from dockyard.testing.exec_conformance import ExecDriverSuite

    class TestMyDriver(ExecDriverSuite):
        driver_name = "mydriver"          # built from the dockyard.exec entry point

or override the ``driver_factory`` fixture: it returns a callable
``make(root) -> (driver, cleanup)``, called once per test and once more on the
same root to simulate a daemon restart.  ``cleanup`` must release process
resources only (like a daemon that exits): containers are meant to survive it.

Every container a test makes is killed and deleted in ``finally``.  Tests go
through the core's :class:`~dockyard.drivers.ExecDriver` façade, exactly as the
daemon calls drivers.  Containers run a busybox root file system built from the
host's static busybox (override the ``rootfs`` fixture to supply another one with
``sh``, ``cat``, ``sleep``, ``seq``, ``tty``, ``stty``, ``id`` and ``pwd``), with
the host's network namespace (``netns=None``).

Capabilities: a driver class may carry ``capabilities`` (an
:class:`ExecCapabilities` or a mapping of its fields); a test needing one it
lacks is *skipped, naming it*, never passed.  ``--require-exec-capability NAME``
(or ``all``) turns such a skip into a failure, for CI.

Command line (declared by :mod:`dockyard.testing.plugin`, loaded by pytest through
the ``pytest11`` entry point): ``--dockyard-exec-driver NAME`` runs every suite
class against that entry point.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from dockyard import confinement
from dockyard.drivers import ExecDriver, driver_class, make_plugin_manager
from dockyard.errors import Conflict, NotFound
from dockyard.models.runtime import ExitStatus, ProcessSpec, Resources, RuntimeSpec
from dockyard.testing.waiting import wait_for
from pydantic import BaseModel

__all__ = [
    "ExecCapabilities",
    "ExecDriverSuite",
    "ExecHarness",
    "build_busybox_rootfs",
    "build_syscall_probe",
    "demux",
    "read_all",
]

MiB = 1 << 20


class ExecCapabilities(BaseModel):
    #: a pty for ``tty=True`` specs, resizable
    tty: bool = True
    #: cgroup memory / pids limits applied and visible inside under /sys/fs/cgroup
    resources: bool = True
    #: a process past its memory limit is OOM-killed and reported (137, oom_killed)
    oom: bool = True
    #: exec_pause / exec_unpause (freezer)
    pause: bool = True
    #: exec_run / exec_run_wait / exec_run_resize (docker exec)
    exec: bool = True
    #: exec_processes, exec_stats, exec_update
    processes: bool = True
    stats: bool = True
    update: bool = True
    #: a new driver instance on the same root re-attaches to running containers
    restore: bool = True
    #: applies ``RuntimeSpec.confinement`` (capabilities, seccomp, masked paths, ...)
    confinement: bool = True


# ---------------------------------------------------------------------------
# helpers (public: third-party suites may use them)
# ---------------------------------------------------------------------------


def build_busybox_rootfs(root: Path) -> Path:
    """A minimal rootfs: static busybox + applet symlinks, /etc/passwd (root, app=1000), /etc/group."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    if not os.path.exists(busybox):
        pytest.skip("needs a static busybox on the host")
    for sub in ("bin", "etc", "tmp", "root", "home/app", "proc", "sys", "dev"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    shutil.copy2(busybox, root / "bin" / "busybox")
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        link = root / "bin" / applet
        if not link.exists():
            link.symlink_to("busybox")
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\nwheel:x:10:\napp:x:1000:\n")
    os.chown(root / "home" / "app", 1000, 1000)
    return root


#: a static helper for seccomp tests: ``probe NAME...`` makes each syscall and prints "NAME ok" or its error
SYSCALL_PROBE_C = r"""
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        long r = -1; errno = ENOSYS;
        if (!strcmp(argv[i], "keyctl")) r = syscall(SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, 0);
        else if (!strcmp(argv[i], "bpf")) r = syscall(SYS_bpf, 0 /* BPF_MAP_CREATE */, 0, 0);
        else if (!strcmp(argv[i], "userfaultfd")) r = syscall(SYS_userfaultfd, 0);
        else if (!strcmp(argv[i], "getpid")) r = syscall(SYS_getpid);
        printf("%s %s\n", argv[i], r < 0 ? strerror(errno) : "ok");
    }
    return 0;
}
"""


def build_syscall_probe(dest: Path) -> Path:
    """Compile :data:`SYSCALL_PROBE_C` statically to ``dest`` (needs gcc and a static libc).

    Without a compiler the calling test is skipped, or fails when ``CI`` is set."""
    gcc = shutil.which("gcc")
    if gcc is None:
        message = "the seccomp probe needs gcc (and libc6-dev) to be built"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    source = dest.with_suffix(".c")
    source.write_text(SYSCALL_PROBE_C)
    subprocess.run([gcc, "-static", "-O1", "-o", str(dest), str(source)], check=True, capture_output=True)
    return dest


def status_fields(text: bytes) -> dict[str, str]:
    """``/proc/self/status`` as a mapping."""
    fields = {}
    for line in text.decode().splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def read_all(sock: socket.socket, timeout: float = 30.0) -> bytes:
    sock.settimeout(timeout)
    chunks = []
    try:
        while data := sock.recv(65536):
            chunks.append(data)
    finally:
        sock.close()
    return b"".join(chunks)


def read_until(sock: socket.socket, needle: bytes, timeout: float = 15.0) -> bytes:
    """Read until ``needle`` has arrived (raw bytes, frames included); fails on EOF or timeout."""
    deadline = time.monotonic() + timeout
    buf = b""
    while needle not in buf:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(65536)
        except TimeoutError:
            raise AssertionError(f"{needle!r} did not arrive within {timeout}s; got {buf[-300:]!r}") from None
        if not data:
            raise AssertionError(f"stream ended before {needle!r}; got {buf[-300:]!r}")
        buf += data
    return buf


def demux(data: bytes) -> tuple[bytes, bytes]:
    """Split Docker stdcopy frames into (stdout, stderr); asserts the framing is exact."""
    out, err = bytearray(), bytearray()
    i = 0
    while i < len(data):
        assert i + 8 <= len(data), f"truncated frame header at {i}: {data[i : i + 16]!r}"
        stream, size = data[i], int.from_bytes(data[i + 4 : i + 8], "big")
        assert stream in (1, 2) and data[i + 1 : i + 4] == b"\0\0\0", f"bad frame header {data[i : i + 8]!r}"
        payload = data[i + 8 : i + 8 + size]
        assert len(payload) == size, "truncated frame payload"
        (out if stream == 1 else err).extend(payload)
        i += 8 + size
    return bytes(out), bytes(err)


def facade(driver: Any) -> ExecDriver:
    pm = make_plugin_manager()
    pm.register(driver, name="exec:under-test")
    pm.check_pending()
    return ExecDriver(pm)


#: prints the container's memory limit and pids limit, cgroup v2 or v1
LIMITS_SCRIPT = (
    "if [ -e /sys/fs/cgroup/memory.max ]; then cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max; "
    "else cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max; fi"
)


class ExecHarness:
    """A driver (re-openable on its root) plus the containers a test made, removed in ``finish``."""

    def __init__(
        self, factory: Callable[[Path], tuple[Any, Callable[[], None]]], root: Path, rootfs: Path, logs: Path
    ) -> None:
        self.factory = factory
        self.root = root
        self.rootfs = rootfs
        self.logs = logs
        self.driver, self._cleanup = factory(root)
        self.exec = facade(self.driver)
        self.ids: list[str] = []

    # -- specs and runs --------------------------------------------------------

    def spec(self, args: list[str], **kw: Any) -> RuntimeSpec:
        cid = kw.pop("container_id", None) or secrets.token_hex(32)
        kw.setdefault("rootfs", self.rootfs)
        kw.setdefault("log_path", self.logs / f"{cid}-json.log")
        kw.setdefault("netns", None)
        return RuntimeSpec(container_id=cid, args=list(args), **kw)

    def create(self, args: list[str], **kw: Any) -> str:
        spec = self.spec(args, **kw)
        self.ids.append(spec.container_id)
        self.exec.create(spec)
        return spec.container_id

    def start(self, args: list[str], **kw: Any) -> str:
        cid = self.create(args, **kw)
        self.exec.start(cid)
        return cid

    def run(
        self, args: list[str], *, stdin: bytes | None = None, tty: bool = False, **kw: Any
    ) -> tuple[ExitStatus, bytes]:
        """create, attach before start, start, feed stdin, read to the end, wait."""
        cid = self.create(args, tty=tty, open_stdin=stdin is not None, stdin_once=stdin is not None, **kw)
        sock = self.exec.attach(cid, stdin is not None, True, True)
        self.exec.start(cid)
        if stdin is not None:
            sock.sendall(stdin)
            sock.shutdown(socket.SHUT_WR)
        data = read_all(sock)
        return self.exec.wait(cid), data

    def exec_run(self, cid: str, args: list[str], *, stdin: bytes | None = None, **kw: Any) -> tuple[int, bytes]:
        exec_id = secrets.token_hex(32)
        sock = self.exec.run(cid, exec_id, ProcessSpec(args=args, stdin=stdin is not None, **kw))
        if stdin is not None:
            sock.sendall(stdin)
            sock.shutdown(socket.SHUT_WR)
        codes: list[int] = []
        waiter = threading.Thread(target=lambda: codes.append(self.exec.run_wait(cid, exec_id)), daemon=True)
        waiter.start()  # as the core does: wait while the stream is read
        data = read_all(sock)
        waiter.join(30)
        assert codes, "exec_run_wait did not return"
        return codes[0], data

    # -- lifecycle ---------------------------------------------------------------

    def reopen(self) -> None:
        """A daemon restart: release this instance, build a new one on the same root."""
        self._cleanup()
        self.driver, self._cleanup = self.factory(self.root)
        self.exec = facade(self.driver)

    def finish(self) -> None:
        try:
            for cid in self.ids:
                try:
                    state = self.exec.state(cid)
                    if state is not None and state.status == "paused":
                        self.exec.unpause(cid)
                    if state is not None and state.status in ("running", "paused"):
                        self.exec.stop(cid, signal.SIGKILL, 0)
                    self.exec.delete(cid)
                except Exception as exc:  # noqa: BLE001 - cleanup is best effort; report it
                    print(f"cleanup of {cid[:12]} failed: {exc!r}")
        finally:
            self._cleanup()


# ---------------------------------------------------------------------------
# the suite
# ---------------------------------------------------------------------------


class ExecDriverSuite:
    """Exec driver contract tests; subclass once per driver."""

    #: entry-point name in ``dockyard.exec`` (``--dockyard-exec-driver`` wins)
    driver_name: ClassVar[str | None] = None
    driver_options: ClassVar[dict] = {}

    # -- fixtures ------------------------------------------------------------

    @pytest.fixture
    def driver_factory(self, request: pytest.FixtureRequest) -> Callable[[Path], tuple[Any, Callable[[], None]]]:
        """``make(root) -> (driver, cleanup)``; override to build the driver another way."""
        name = request.config.getoption("dockyard_exec_driver", default=None) or self.driver_name
        if not name:
            pytest.fail(
                f"{type(self).__name__}: set driver_name, pass --dockyard-exec-driver "
                "or override the driver_factory fixture"
            )
        if os.geteuid() != 0:
            pytest.skip("exec drivers need root")
        cls = driver_class("exec", name)
        options = dict(self.driver_options)

        def make(root: Path) -> tuple[Any, Callable[[], None]]:
            driver = cls(root, dict(options))
            return driver, getattr(driver, "close", lambda: None)

        return make

    @pytest.fixture
    def rootfs(self, tmp_path: Path) -> Path:
        return build_busybox_rootfs(tmp_path / "rootfs")

    @pytest.fixture
    def ex(self, driver_factory, rootfs: Path, tmp_path: Path) -> Iterator[ExecHarness]:
        harness = ExecHarness(driver_factory, tmp_path / "root", rootfs, tmp_path / "logs")
        try:
            yield harness
        finally:
            harness.finish()

    @pytest.fixture
    def caps(self, ex: ExecHarness) -> ExecCapabilities:
        declared = getattr(ex.driver, "capabilities", None)
        if isinstance(declared, ExecCapabilities):
            return declared
        if declared is not None and not isinstance(declared, dict):
            declared = declared.model_dump() if hasattr(declared, "model_dump") else vars(declared)
        return ExecCapabilities(**{k: v for k, v in dict(declared or {}).items() if k in ExecCapabilities.model_fields})

    @pytest.fixture
    def need(self, request: pytest.FixtureRequest, caps: ExecCapabilities) -> Callable[..., None]:
        """``need("pause", ...)``: skip (or fail, if required) unless the driver has them."""
        required = set(request.config.getoption("require_exec_capability", default=[]) or [])

        def check(*names: str) -> None:
            for name in names:
                if not getattr(caps, name):
                    message = f"exec driver lacks capability {name!r}"
                    if name in required or "all" in required:
                        pytest.fail(message + " (required by --require-exec-capability)")
                    pytest.skip(message)

        return check

    # -- start, output, exit codes ---------------------------------------------

    def test_attach_before_start_sees_all_output_and_frames_are_exact(self, ex: ExecHarness) -> None:
        status, data = ex.run(["sh", "-c", "echo out1; echo err1 >&2; echo out2; echo err2 >&2"])
        assert demux(data) == (b"out1\nout2\n", b"err1\nerr2\n")
        assert status.exit_code == 0 and status.oom_killed is False

    def test_start_reports_a_running_process(self, ex: ExecHarness) -> None:
        cid = ex.create(["sleep", "1000"])
        assert ex.exec.state(cid).status == "created"
        assert cid in ex.exec.list()
        started = ex.exec.start(cid)
        assert started.status == "running" and started.pid > 0 and started.started_at is not None
        state = ex.exec.state(cid)
        assert state.status == "running" and state.pid == started.pid
        assert os.path.exists(f"/proc/{started.pid}")

    @pytest.mark.parametrize("code", [0, 1, 3, 255])
    def test_exit_codes(self, ex: ExecHarness, code: int) -> None:
        status, _ = ex.run(["sh", "-c", f"exit {code}"])
        assert status.exit_code == code
        state = ex.exec.state(ex.ids[-1])
        assert state.status == "exited" and state.exit_code == code and state.finished_at is not None

    def test_pid_1_ignores_signals_it_has_no_handler_for(self, ex: ExecHarness) -> None:
        """The app is PID 1 of its namespace, as in Docker without --init."""
        status, data = ex.run(["sh", "-c", "kill -TERM $$; kill -9 $$; echo alive"])
        assert (status.exit_code, demux(data)[0]) == (0, b"alive\n")

    def test_large_output_is_complete(self, ex: ExecHarness) -> None:
        status, data = ex.run(["seq", "1", "50000"])
        assert demux(data)[0] == "".join(f"{i}\n" for i in range(1, 50001)).encode()

    def test_stdin_once(self, ex: ExecHarness) -> None:
        status, data = ex.run(["sh", "-c", "cat; echo eof"], stdin=b"line one\nline two\n")
        assert demux(data) == (b"line one\nline two\neof\n", b"") and status.exit_code == 0

    def test_log(self, ex: ExecHarness) -> None:
        """The log at ``log_path`` is json-file or CRI lines, as the daemon's reader reads them."""
        from dockyard.logs import parse_line
        from dockyard.timefmt import parse_iso

        t0 = time.time()
        ex.run(["sh", "-c", "echo to-out; echo to-err >&2; printf partial"])
        raw = (ex.logs / f"{ex.ids[-1]}-json.log").read_bytes().splitlines(keepends=True)
        entries = [parse_line(line) for line in raw]
        assert None not in entries, raw
        assert sorted((e.stream, e.data) for e in entries) == [
            ("stderr", b"to-err\n"),
            ("stdout", b"partial"),
            ("stdout", b"to-out\n"),
        ]
        assert all(e.time.endswith("Z") and t0 - 5 < parse_iso(e.time) < time.time() + 5 for e in entries)

    def test_env_cwd_user_groups(self, ex: ExecHarness) -> None:
        status, data = ex.run(
            ["sh", "-c", 'echo "$FOO"; pwd; id'],
            env=["FOO=bar baz"],
            cwd="/tmp",
            uid=1000,
            gid=1000,
            additional_gids=[10],
        )
        assert demux(data)[0] == b"bar baz\n/tmp\nuid=1000(app) gid=1000(app) groups=10(wheel)\n"

    def test_tty(self, ex: ExecHarness, need) -> None:
        need("tty")
        status, data = ex.run(["sh", "-c", "tty; echo two"], tty=True)
        assert data.startswith(b"/dev/") and data.endswith(b"two\r\n")  # raw bytes, no frames
        assert status.exit_code == 0

    def test_tty_resize(self, ex: ExecHarness, need) -> None:
        need("tty")
        cid = ex.create(["sh", "-c", "read x; stty size"], tty=True, open_stdin=True, stdin_once=True)
        sock = ex.exec.attach(cid, True, True, True)
        ex.exec.start(cid)
        ex.exec.resize(cid, 41, 123)
        sock.sendall(b"go\n")
        assert b"41 123" in read_all(sock)

    # -- stop, kill, wait ----------------------------------------------------------

    def test_stop_waits_for_the_timeout_then_kills(self, ex: ExecHarness) -> None:
        cid = ex.start(["sleep", "1000"])  # PID 1 without a TERM handler ignores TERM
        t0 = time.monotonic()
        status = ex.exec.stop(cid, signal.SIGTERM, 1.0)
        elapsed = time.monotonic() - t0
        assert status.exit_code == 137 and 0.9 <= elapsed < 15
        assert ex.exec.state(cid).status == "exited"
        assert ex.exec.stop(cid, signal.SIGTERM, 1.0).exit_code == 137  # idempotent
        assert ex.exec.wait(cid).exit_code == 137  # at once for an exited process

    def test_stop_with_a_handler_exits_in_time(self, ex: ExecHarness) -> None:
        cid = ex.create(["sh", "-c", "trap 'exit 0' TERM; echo ready; while true; do sleep 0.05; done"])
        sock = ex.exec.attach(cid, False, True, True)
        ex.exec.start(cid)
        read_until(sock, b"ready")
        t0 = time.monotonic()
        assert ex.exec.stop(cid, signal.SIGTERM, 10.0).exit_code == 0
        assert time.monotonic() - t0 < 5
        sock.close()

    def test_kill_with_a_signal(self, ex: ExecHarness) -> None:
        cid = ex.create(["sh", "-c", "trap 'exit 10' USR1; echo ready; while true; do sleep 0.05; done"])
        sock = ex.exec.attach(cid, False, True, True)
        ex.exec.start(cid)
        read_until(sock, b"ready")
        ex.exec.kill(cid, signal.SIGUSR1)
        assert ex.exec.wait(cid).exit_code == 10
        read_all(sock)
        with pytest.raises(Conflict):
            ex.exec.kill(cid, signal.SIGKILL)

    def test_sigkill(self, ex: ExecHarness) -> None:
        cid = ex.start(["sleep", "1000"])
        ex.exec.kill(cid, signal.SIGKILL)
        assert ex.exec.wait(cid).exit_code == 137

    def test_attach_after_exit_is_an_empty_stream(self, ex: ExecHarness) -> None:
        status, _ = ex.run(["true"])
        assert read_all(ex.exec.attach(ex.ids[-1], False, True, True)) == b""

    def test_delete(self, ex: ExecHarness) -> None:
        cid = ex.start(["sleep", "1000"])
        with pytest.raises(Conflict):
            ex.exec.delete(cid)
        ex.exec.stop(cid, signal.SIGKILL, 0)
        ex.exec.delete(cid)
        assert cid not in ex.exec.list() and ex.exec.state(cid) is None
        ex.exec.delete(cid)  # idempotent

    def test_create_twice_while_running_conflicts(self, ex: ExecHarness) -> None:
        cid = ex.start(["sleep", "1000"])
        with pytest.raises(Conflict):
            ex.exec.create(ex.spec(["true"], container_id=cid))

    def test_restart_after_exit(self, ex: ExecHarness) -> None:
        status, _ = ex.run(["sh", "-c", "exit 4"])
        cid = ex.ids[-1]
        ex.exec.create(ex.spec(["sh", "-c", "exit 5"], container_id=cid))
        sock = ex.exec.attach(cid, False, True, True)
        ex.exec.start(cid)
        read_all(sock)
        assert ex.exec.wait(cid).exit_code == 5

    # -- resources -----------------------------------------------------------------

    def test_resource_limits_applied(self, ex: ExecHarness, need) -> None:
        need("resources")
        status, data = ex.run(
            ["sh", "-c", LIMITS_SCRIPT], resources=Resources(memory=48 * MiB, pids_limit=20, cpu_shares=512)
        )
        assert demux(data)[0].split() == [str(48 * MiB).encode(), b"20"], demux(data)

    def test_pids_limit_enforced(self, ex: ExecHarness, need) -> None:
        need("resources")
        status, data = ex.run(
            ["sh", "-c", "for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; wait; echo done"],
            resources=Resources(pids_limit=4),
        )
        assert b"fork" in demux(data)[1] or status.exit_code != 0

    def test_oom_kill(self, ex: ExecHarness, need) -> None:
        need("resources", "oom")
        status, _ = ex.run(
            ["sh", "-c", 'x=aaaaaaaaaaaaaaaa; while true; do x="$x$x"; done'], resources=Resources(memory=32 * MiB)
        )
        assert status.exit_code == 137 and status.oom_killed is True
        assert ex.exec.state(ex.ids[-1]).oom_killed is True

    def test_processes_stats_update(self, ex: ExecHarness, need) -> None:
        need("processes")
        cid = ex.start(["sleep", "1000"], resources=Resources(memory=64 * MiB))
        pid = ex.exec.state(cid).pid
        assert pid in ex.exec.processes(cid)
        need("stats")
        stats = ex.exec.stats(cid)
        assert stats["memory_stats"]["usage"] > 0 and stats["memory_stats"]["limit"] == 64 * MiB
        assert stats["pids_stats"]["current"] == 1
        assert stats["cpu_stats"]["cpu_usage"]["total_usage"] > 0
        need("update", "exec", "resources")
        ex.exec.update(cid, Resources(memory=80 * MiB, pids_limit=33))
        code, data = ex.exec_run(cid, ["sh", "-c", LIMITS_SCRIPT])
        assert demux(data)[0].split() == [str(80 * MiB).encode(), b"33"]

    # -- pause ------------------------------------------------------------------------

    def test_pause_freezes_and_unpause_resumes(self, ex: ExecHarness, need) -> None:
        need("pause")
        cid = ex.create(["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.05; done"])
        sock = ex.exec.attach(cid, False, True, True)
        ex.exec.start(cid)
        read_until(sock, b"tick 2")
        ex.exec.pause(cid)
        assert ex.exec.state(cid).status == "paused"
        with pytest.raises(Conflict):
            ex.exec.pause(cid)
        time.sleep(0.2)
        sock.settimeout(0.1)
        try:
            while sock.recv(65536):
                pass
        except TimeoutError:
            pass
        sock.settimeout(0.8)
        with pytest.raises(TimeoutError):
            data = sock.recv(65536)
            raise AssertionError(f"a paused container produced output: {data!r}")
        ex.exec.unpause(cid)
        assert ex.exec.state(cid).status == "running"
        with pytest.raises(Conflict):
            ex.exec.unpause(cid)
        read_until(sock, b"tick")
        sock.close()

    def test_kill_a_paused_container(self, ex: ExecHarness, need) -> None:
        need("pause")
        cid = ex.start(["sleep", "1000"])
        ex.exec.pause(cid)
        ex.exec.kill(cid, signal.SIGKILL)
        assert ex.exec.wait(cid).exit_code == 137

    def test_exec_refused_while_paused(self, ex: ExecHarness, need) -> None:
        need("pause", "exec")
        cid = ex.start(["sleep", "1000"])
        ex.exec.pause(cid)
        with pytest.raises(Conflict):
            ex.exec.run(cid, secrets.token_hex(32), ProcessSpec(args=["true"]))
        ex.exec.unpause(cid)
        assert ex.exec_run(cid, ["true"])[0] == 0

    # -- exec --------------------------------------------------------------------------

    def test_exec_output_and_exit_code(self, ex: ExecHarness, need) -> None:
        need("exec")
        cid = ex.start(["sleep", "1000"])
        code, data = ex.exec_run(cid, ["sh", "-c", "echo out; echo err >&2; exit 3"])
        assert (code, demux(data)) == (3, (b"out\n", b"err\n"))

    def test_exec_not_found_127_not_executable_126_signal_128_plus_n(self, ex: ExecHarness, need) -> None:
        need("exec")
        cid = ex.start(["sleep", "1000"])
        assert ex.exec_run(cid, ["no-such-command"])[0] == 127
        assert ex.exec_run(cid, ["/etc/passwd"])[0] == 126
        assert ex.exec_run(cid, ["sh", "-c", "kill -9 $$"])[0] == 137
        assert ex.exec_run(cid, ["sh", "-c", "kill -TERM $$"])[0] == 143

    def test_exec_env_cwd_user(self, ex: ExecHarness, need) -> None:
        need("exec")
        cid = ex.start(["sleep", "1000"])
        code, data = ex.exec_run(
            cid,
            ["sh", "-c", 'echo "$A"; pwd; id -u; id -G'],
            env=["A=b c", "PATH=/bin"],
            cwd="/tmp",
            uid=1000,
            gid=1000,
            additional_gids=[10],
        )
        assert (code, demux(data)[0]) == (0, b"b c\n/tmp\n1000\n1000 10\n")
        code, data = ex.exec_run(cid, ["pwd"], cwd="/home/app")  # without a shell in between
        assert demux(data)[0] == b"/home/app\n"

    def test_exec_stdin(self, ex: ExecHarness, need) -> None:
        need("exec")
        cid = ex.start(["sleep", "1000"])
        code, data = ex.exec_run(cid, ["cat"], stdin=b"via exec\n")
        assert (code, demux(data)[0]) == (0, b"via exec\n")

    def test_exec_tty_and_resize(self, ex: ExecHarness, need) -> None:
        need("exec", "tty")
        cid = ex.start(["sleep", "1000"])
        exec_id = secrets.token_hex(32)
        sock = ex.exec.run(cid, exec_id, ProcessSpec(args=["sh", "-c", "tty; read x; stty size"], tty=True, stdin=True))
        read_until(sock, b"\n")
        ex.exec.run_resize(cid, exec_id, 30, 99)
        sock.sendall(b"go\n")
        assert b"30 99\r\n" in read_all(sock)
        assert ex.exec.run_wait(cid, exec_id) == 0

    def test_exec_in_a_stopped_container_conflicts_and_unknown_ids(self, ex: ExecHarness, need) -> None:
        need("exec")
        status, _ = ex.run(["true"])
        with pytest.raises(Conflict):
            ex.exec.run(ex.ids[-1], secrets.token_hex(32), ProcessSpec(args=["true"]))
        cid = ex.start(["sleep", "1000"])
        with pytest.raises(NotFound):
            ex.exec.run_wait(cid, secrets.token_hex(32))

    def test_exec_process_is_in_the_container(self, ex: ExecHarness, need) -> None:
        need("exec", "processes")
        cid = ex.start(["sleep", "1000"])
        exec_id = secrets.token_hex(32)
        sock = ex.exec.run(cid, exec_id, ProcessSpec(args=["sleep", "60"]))
        assert wait_for(lambda: len(ex.exec.processes(cid)) == 2)
        ex.exec.stop(cid, signal.SIGKILL, 0)
        read_all(sock)
        assert ex.exec.run_wait(cid, exec_id) == 137

    # -- confinement (RuntimeSpec.confinement) ------------------------------------------

    def _confined(self, ex: ExecHarness, script: str, **conf: Any) -> tuple[ExitStatus, bytes, bytes]:
        status, data = ex.run(["sh", "-c", script], confinement=confinement.resolve(**conf))
        out, err = demux(data)
        return status, out, err

    def test_default_confinement(self, ex: ExecHarness, need) -> None:
        """Docker's capabilities and seccomp filter; no new user namespace for anyone."""
        need("confinement")
        status, out, err = self._confined(ex, "cat /proc/self/status; unshare -Ur true && echo UNSHARED")
        fields = status_fields(out)
        assert fields["CapBnd"] == fields["CapEff"] == fields["CapPrm"] == "00000000a80425fb", fields
        assert fields["NoNewPrivs"] == "0"
        if confinement.HostFacts.current().seccomp:
            assert fields["Seccomp"] == "2"  # filter mode
        assert b"UNSHARED" not in out and b"unshare" in err

    def test_seccomp_refuses_keyctl_bpf_userfaultfd(self, ex: ExecHarness, need, tmp_path: Path) -> None:
        need("confinement")
        if not confinement.HostFacts.current().seccomp:
            pytest.skip("the kernel has no seccomp")
        build_syscall_probe(ex.rootfs / "bin" / "probe")
        status, out, _ = self._confined(ex, "probe getpid keyctl bpf userfaultfd")
        assert out.decode().splitlines() == [
            "getpid ok",
            "keyctl Operation not permitted",
            "bpf Operation not permitted",
            "userfaultfd Operation not permitted",
        ]
        # the filter is what refused: without it keyctl works (bpf and userfaultfd also need capabilities)
        status, out, _ = self._confined(ex, "probe keyctl", security_opt=["seccomp=unconfined"])
        assert out.decode().splitlines() == ["keyctl ok"]

    def test_masked_and_readonly_paths(self, ex: ExecHarness, need) -> None:
        need("confinement")
        conf = confinement.resolve()
        files = [p for p in conf.masked_paths if os.path.isfile(p)]
        dirs = [p for p in conf.masked_paths if os.path.isdir(p)]
        assert files or dirs, "the host has none of Docker's masked paths"
        script = "; ".join(
            [
                *(f"echo {p} $(wc -c < {p})" for p in files),
                *(f"echo {p} $(ls -A {p} | wc -l)" for p in dirs),
                "echo x > /proc/sys/kernel/domainname && echo WROTE",
                "[ -e /proc/sysrq-trigger ] && echo h > /proc/sysrq-trigger && echo SYSRQ",
                "cat /proc/self/mountinfo",
            ]
        )
        status, out, _ = self._confined(ex, script)
        lines = out.decode().splitlines()
        for path in files + dirs:  # /proc/kcore among them where the kernel has it
            assert f"{path} 0" in lines, (path, lines)
        assert "WROTE" not in lines and "SYSRQ" not in lines
        mounts = {
            line.split()[4]: line.split()[5]
            for line in lines
            if len(line.split()) > 5 and line.split()[4].startswith(("/proc", "/sys"))
        }
        for path in conf.readonly_paths:
            if os.path.exists(path):
                assert mounts.get(path, "").startswith("ro"), (path, mounts)

    def test_cap_drop_all_no_new_privileges_read_only_rootfs(self, ex: ExecHarness, need) -> None:
        need("confinement")
        status, out, err = self._confined(
            ex,
            "grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status; touch /newfile || echo RO; "
            "touch /dev/shm/ok && echo SHM",
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            readonly_rootfs=True,
        )
        fields = status_fields(out.split(b"RO")[0])
        assert fields["CapEff"] == fields["CapBnd"] == "0000000000000000" and fields["NoNewPrivs"] == "1"
        assert b"RO\n" in out and b"SHM\n" in out and not (ex.rootfs / "newfile").exists()

    def test_cap_add(self, ex: ExecHarness, need) -> None:
        need("confinement")
        status, out, _ = self._confined(ex, "grep CapEff /proc/self/status", cap_add=["NET_ADMIN"], cap_drop=["CHOWN"])
        mask = int(status_fields(out)["CapEff"], 16)
        assert mask & 1 << 12 and not mask & 1  # CAP_NET_ADMIN yes, CAP_CHOWN no

    def test_privileged_mounts_a_tmpfs(self, ex: ExecHarness, need) -> None:
        need("confinement")
        status, out, err = self._confined(
            ex,
            "mount -t tmpfs none /tmp && grep ' /tmp ' /proc/self/mountinfo && umount /tmp && echo MOUNTED; "
            "grep -E '^(CapEff|Seccomp):' /proc/self/status; ls /dev",
            privileged=True,
        )
        assert b"MOUNTED" in out, err
        fields = status_fields(out.split(b"MOUNTED\n")[1])
        assert int(fields["CapEff"], 16) == sum(
            1 << confinement.CAPABILITIES.index(c) for c in confinement.HostFacts.current().capabilities
        )
        assert fields["Seccomp"] == "0"
        status, out, _ = self._confined(ex, "mount -t tmpfs none /tmp && echo MOUNTED")
        assert b"MOUNTED" not in out  # and without --privileged it cannot

    def test_devices_and_sysctls(self, ex: ExecHarness, need) -> None:
        need("confinement")
        status, out, err = self._confined(
            ex,
            "ls -l /dev/mynull; echo hi > /dev/mynull && echo WRITTEN; cat /proc/sys/kernel/shmmni",
            devices=[{"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull", "CgroupPermissions": "rwm"}],
            sysctls={"kernel.shmmni": "1234"},
        )
        assert out.startswith(b"c") and b"WRITTEN\n1234\n" in out, (out, err)

    def test_exec_processes_share_the_confinement(self, ex: ExecHarness, need) -> None:
        need("confinement", "exec")
        cid = ex.start(
            ["sleep", "1000"], confinement=confinement.resolve(cap_drop=["ALL"], security_opt=["no-new-privileges"])
        )
        code, data = ex.exec_run(
            cid,
            [
                "sh",
                "-c",
                "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; unshare -Ur true || echo REFUSED",
            ],
        )
        out = demux(data)[0]
        fields = status_fields(out.split(b"REFUSED")[0])
        assert fields["CapEff"] == fields["CapBnd"] == "0000000000000000" and fields["NoNewPrivs"] == "1"
        if confinement.HostFacts.current().seccomp:
            assert fields["Seccomp"] == "2"
        assert b"REFUSED" in out

    # -- restore (daemon restart) -------------------------------------------------------

    def test_restore_reattaches_a_running_container(self, ex: ExecHarness, need) -> None:
        need("restore")
        cid = ex.start(["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.05; done"])
        pid = ex.exec.state(cid).pid
        ex.reopen()
        assert cid in ex.exec.list()
        state = ex.exec.restore(cid)
        assert state is not None and state.status == "running" and state.pid == pid
        sock = ex.exec.attach(cid, False, True, True)
        read_until(sock, b"tick")  # live output through the new instance
        status = ex.exec.stop(cid, signal.SIGTERM, 1.0)
        assert status.exit_code in (137, 143)
        read_all(sock)
        assert ex.exec.wait(cid).exit_code == status.exit_code

    def test_restore_reports_the_real_exit_code_of_a_process_that_ended_meanwhile(self, ex: ExecHarness, need) -> None:
        need("restore")
        cid = ex.start(["sh", "-c", "sleep 0.5; exit 42"])
        ex.reopen()
        time.sleep(1.5)
        state = ex.exec.restore(cid)
        assert state is not None and state.status == "exited" and state.exit_code == 42
        assert ex.exec.wait(cid).exit_code == 42

    def test_exec_after_restore(self, ex: ExecHarness, need) -> None:
        need("restore", "exec")
        cid = ex.start(["sleep", "1000"])
        ex.reopen()
        ex.exec.restore(cid)
        code, data = ex.exec_run(cid, ["echo", "after restore"])
        assert (code, demux(data)[0]) == (0, b"after restore\n")

    def test_restore_of_an_unknown_container_is_none(self, ex: ExecHarness) -> None:
        assert ex.exec.restore(secrets.token_hex(32)) is None
