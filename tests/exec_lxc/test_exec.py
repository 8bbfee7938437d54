"""docker exec in the exec_lxc driver (exec_run / exec_run_wait / exec_run_resize), real LXC."""

from __future__ import annotations

import os
import secrets
import signal
import socket

import pytest
from dockyard.errors import Conflict, NotFound
from dockyard.models.runtime import ProcessSpec

from tests.helpers.lxc import container_pids, demux, read_all
from tests.helpers.waiting import wait_for

pytestmark = [
    pytest.mark.requires_root,
    pytest.mark.requires_lxc,
    pytest.mark.requires_busybox,
]


def eid() -> str:
    return secrets.token_hex(32)


@pytest.fixture
def running(driver, make_spec):
    """A running container (sleep) and its id."""
    spec = make_spec(["sleep", "1000"])
    driver.exec_create(spec=spec)
    driver.exec_start(container_id=spec.container_id)
    return spec.container_id


def run_exec(driver, cid, args, *, stdin: bytes | None = None, **kw):
    exec_id = eid()
    sock = driver.exec_run(
        container_id=cid, exec_id=exec_id, spec=ProcessSpec(args=args, stdin=stdin is not None, **kw)
    )
    if stdin is not None:
        sock.sendall(stdin)
        sock.shutdown(socket.SHUT_WR)
    data = read_all(sock)
    code = driver.exec_run_wait(container_id=cid, exec_id=exec_id)
    return code, data


def test_output_streams_and_exit_code(driver, running):
    code, data = run_exec(driver, running, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    out, err, _ = demux(data)
    assert (out, err, code) == (b"out\n", b"err\n", 3)


def test_exit_code_of_a_signal(driver, running):
    code, _ = run_exec(driver, running, ["sh", "-c", "kill -9 $$"])
    assert code == 137


def test_not_found_is_127_and_not_executable_126(driver, running):
    code, data = run_exec(driver, running, ["no-such-command"])
    assert code == 127
    assert b'exec: "no-such-command": executable file not found in $PATH' in demux(data)[1]
    code, data = run_exec(driver, running, ["/no/such/file"])
    assert code == 127
    code, data = run_exec(driver, running, ["/etc/passwd"])
    assert code == 126
    assert b"permission denied" in demux(data)[1]


def test_working_directory_without_a_shell(driver, running):
    code, data = run_exec(driver, running, ["pwd"], cwd="/tmp")
    assert (code, demux(data)[0]) == (0, b"/tmp\n")


def test_missing_working_directory_fails_like_runc(driver, running):
    code, data = run_exec(driver, running, ["pwd"], cwd="/nonexistent")
    assert code == 126
    assert b'chdir to cwd ("/nonexistent")' in demux(data)[1]


def test_user_group_and_supplementary_groups(driver, running):
    code, data = run_exec(driver, running, ["id"], uid=1000, gid=1000, additional_gids=[10])
    assert code == 0
    assert demux(data)[0] == b"uid=1000(app) gid=1000(app) groups=10(wheel)\n"
    code, data = run_exec(driver, running, ["sh", "-c", "grep CapEff /proc/self/status"], uid=1000, gid=1000)
    assert demux(data)[0].split()[-1] == b"0000000000000000"


def test_environment_is_the_specs_plus_hostname(driver, running):
    code, data = run_exec(driver, running, ["env"], env=["PATH=/bin", "A=b c"])
    lines = sorted(demux(data)[0].decode().splitlines())
    assert lines == sorted(["PATH=/bin", "A=b c", f"HOSTNAME={running[:12]}"])


def test_stdin_and_half_close(driver, running):
    code, data = run_exec(driver, running, ["cat"], stdin=b"one\ntwo\n")
    assert (code, demux(data)[0]) == (0, b"one\ntwo\n")


def test_tty_is_a_pty_of_the_container_and_resizes(driver, running):
    exec_id = eid()
    sock = driver.exec_run(
        container_id=running,
        exec_id=exec_id,
        spec=ProcessSpec(args=["sh", "-c", "tty; read x; stty size"], tty=True, stdin=True),
    )
    sock.settimeout(10)
    buf = b""
    while b"\n" not in buf:
        buf += sock.recv(4096)
    assert buf.startswith(b"/dev/pts/")
    assert driver.exec_run_resize(container_id=running, exec_id=exec_id, height=33, width=111)
    sock.sendall(b"go\n")
    data = buf + read_all(sock)
    assert b"33 111\r\n" in data  # tty output: raw bytes, \r\n
    assert driver.exec_run_wait(container_id=running, exec_id=exec_id) == 0


def test_exec_process_is_in_the_container_cgroup(driver, running):
    exec_id = eid()
    sock = driver.exec_run(container_id=running, exec_id=exec_id, spec=ProcessSpec(args=["sleep", "30"]))
    try:
        pids = wait_for(
            lambda: (
                len(driver.exec_processes(container_id=running)) == 2 and driver.exec_processes(container_id=running)
            )
        )
        assert pids and len(pids) == 2
        assert set(pids) <= set(container_pids(running))
    finally:
        sock.close()
        driver.exec_stop(container_id=running, signal=signal.SIGKILL, timeout=0)
    assert driver.exec_run_wait(container_id=running, exec_id=exec_id) == 137


def test_detached_exec_keeps_running_after_the_socket_is_closed(driver, running):
    exec_id = eid()
    sock = driver.exec_run(
        container_id=running,
        exec_id=exec_id,
        spec=ProcessSpec(
            args=[
                "sh",
                "-c",
                "i=0; while [ $i -lt 20 ]; do echo $i; i=$((i+1)); sleep 0.05; done; echo done > /tmp/detached",
            ]
        ),
    )
    sock.close()
    assert driver.exec_run_wait(container_id=running, exec_id=exec_id) == 0
    code, data = run_exec(driver, running, ["cat", "/tmp/detached"])
    assert demux(data)[0] == b"done\n"


def test_exec_outlives_the_driver_instance(driver, running, lxc_root):
    """The exec belongs to its conmon: a daemon that goes away (a new driver instance) does not kill it."""
    from dockyard.plugins.exec_lxc.driver import LxcDriver

    exec_id = eid()
    sock = driver.exec_run(
        container_id=running, exec_id=exec_id, spec=ProcessSpec(args=["sh", "-c", "sleep 0.5; echo survived > /tmp/s"])
    )
    sock.close()
    del driver
    fresh = LxcDriver(lxc_root, {})
    assert fresh.exec_restore(container_id=running).status == "running"
    assert wait_for(lambda: demux(run_exec(fresh, running, ["cat", "/tmp/s"])[1])[0] == b"survived\n", timeout=5)


def test_wait_returns_the_code_again_and_unknown_ids_are_not_found(driver, running):
    exec_id = eid()
    read_all(driver.exec_run(container_id=running, exec_id=exec_id, spec=ProcessSpec(args=["false"])))
    assert driver.exec_run_wait(container_id=running, exec_id=exec_id) == 1
    assert driver.exec_run_wait(container_id=running, exec_id=exec_id) == 1
    assert not (driver.root / running / "exec" / exec_id).exists()
    with pytest.raises(NotFound):
        driver.exec_run_wait(container_id=running, exec_id=eid())


def test_exec_refused_when_paused_or_stopped(driver, running):
    driver.exec_pause(container_id=running)
    try:
        with pytest.raises(Conflict, match="paused"):
            driver.exec_run(container_id=running, exec_id=eid(), spec=ProcessSpec(args=["true"]))
    finally:
        driver.exec_unpause(container_id=running)
    code, _ = run_exec(driver, running, ["true"])
    assert code == 0
    driver.exec_stop(container_id=running, signal=signal.SIGKILL, timeout=0)
    with pytest.raises(Conflict):
        driver.exec_run(container_id=running, exec_id=eid(), spec=ProcessSpec(args=["true"]))


def test_many_execs_in_parallel_leave_nothing_behind(driver, running):
    import concurrent.futures

    def one(i):
        return run_exec(driver, running, ["sh", "-c", f"echo {i}"])

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(40)))
    assert [(c, demux(d)[0]) for c, d in results] == [(0, f"{i}\n".encode()) for i in range(40)]
    assert wait_for(lambda: not list((driver.root / running / "exec").iterdir()))
    # no exec conmon left: only the container's helpers reference the state dir
    assert wait_for(lambda: len(driver.exec_processes(container_id=running)) == 1)


def test_big_output_is_complete(driver, running):
    code, data = run_exec(driver, running, ["seq", "1", "100000"])
    assert code == 0
    assert demux(data)[0] == "".join(f"{i}\n" for i in range(1, 100001)).encode()


def test_container_helper_survives_exec_children(driver, running):
    """Exec conmons must not disturb the container's (wait/stop still work)."""
    for _ in range(3):
        run_exec(driver, running, ["true"])
    st = driver.exec_stop(container_id=running, signal=signal.SIGTERM, timeout=1)
    assert st.exit_code == 137
    assert os.path.exists(driver.root / running / "exit")


def test_removing_the_container_ends_its_exec_helpers(driver, running):
    from tests.helpers.lxc import helper_pids

    exec_id = eid()
    sock = driver.exec_run(container_id=running, exec_id=exec_id, spec=ProcessSpec(args=["sleep", "60"], stdin=True))
    d = driver.root / running
    assert len(helper_pids(d)) >= 2  # the container's conmon and monitor, and the exec's conmon
    driver.exec_stop(container_id=running, signal=signal.SIGKILL, timeout=0)
    driver.exec_delete(container_id=running)
    assert not d.exists()
    assert read_all(sock) == b""  # the stream ends (no output, EOF)
    assert wait_for(lambda: not helper_pids(d), timeout=5), "an exec helper outlived its container"
