"""The exec_lxc driver against real LXC (root, liblxc, busybox rootfs)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dockyard.errors import Conflict, NotFound, NotModified, System
from dockyard.logs import parse_line

from tests.helpers.lxc import (
    build_rootfs,
    cleanup_driver,
    container_pids,
    demux,
    new_id,
    read_all,
    run,
    helper_pids,
)
from tests.helpers.waiting import wait_for

pytestmark = [
    pytest.mark.requires_root,
    pytest.mark.requires_lxc,
    pytest.mark.requires_busybox,
]

RFC3339NANO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")


# --------------------------------------------------------------------------- output


def test_echo_arrives_through_attach_made_before_start(driver, make_spec):
    spec = make_spec(["echo", "hello world"])
    status, data = run(driver, spec)
    out, err, frames = demux(data)
    assert out == b"hello world\n"
    assert err == b""
    assert frames[0][0] == 1
    assert status.exit_code == 0
    assert status.oom_killed is False


def test_stdout_and_stderr_are_separate_streams(driver, make_spec):
    spec = make_spec(["sh", "-c", "echo out1; echo err1 >&2; echo out2; echo err2 >&2"])
    status, data = run(driver, spec)
    out, err, _ = demux(data)
    assert out == b"out1\nout2\n"
    assert err == b"err1\nerr2\n"
    assert status.exit_code == 0


def test_nothing_lost_with_a_lot_of_output(driver, make_spec):
    spec = make_spec(["seq", "1", "50000"])
    status, data = run(driver, spec)
    out, _, _ = demux(data)
    assert out == "".join(f"{i}\n" for i in range(1, 50001)).encode()
    assert status.exit_code == 0


def test_stdin_once_cat_echoes_and_exits_at_eof(driver, make_spec):
    spec = make_spec(["cat"], open_stdin=True, stdin_once=True)
    status, data = run(driver, spec, stdin=b"line one\nline two\n")
    out, err, _ = demux(data)
    assert out == b"line one\nline two\n"
    assert err == b""
    assert status.exit_code == 0


def test_stdin_not_opened_reads_eof(driver, make_spec):
    spec = make_spec(["sh", "-c", "cat; echo done"])
    status, data = run(driver, spec)
    assert demux(data)[0] == b"done\n"
    assert status.exit_code == 0


def test_log_lines(driver, make_spec):
    """conmon writes the CRI format; dockyard.logs reads it into Docker's records."""
    spec = make_spec(["sh", "-c", 'echo "a \\"quoted\\" <tag> & tab\there"; echo oops >&2; printf partial'])
    status, _ = run(driver, spec)
    assert status.exit_code == 0
    entries = [parse_line(line) for line in spec.log_path.read_bytes().splitlines(keepends=True)]
    assert sorted((e.stream, e.data) for e in entries) == [
        ("stderr", b"oops\n"),
        ("stdout", b'a "quoted" <tag> & tab\there\n'),
        ("stdout", b"partial"),
    ]
    for e in entries:
        assert RFC3339NANO.match(e.time), e.time


# --------------------------------------------------------------------------- exit codes, signals


@pytest.mark.parametrize("code", [0, 3, 255])
def test_exit_code(driver, make_spec, code):
    spec = make_spec(["sh", "-c", f"exit {code}"])
    status, _ = run(driver, spec)
    assert status.exit_code == code
    state = driver.exec_state(container_id=spec.container_id)
    assert state.status == "exited" and state.exit_code == code
    assert state.started_at is not None and state.finished_at is not None
    assert state.finished_at >= state.started_at


def test_kill_sigkill_gives_137(driver, make_spec):
    spec = make_spec(["sleep", "100"])
    driver.exec_create(spec=spec)
    st = driver.exec_start(container_id=spec.container_id)
    assert st.status == "running" and st.pid > 0
    assert driver.exec_state(container_id=spec.container_id).status == "running"
    driver.exec_kill(container_id=spec.container_id, signal=signal.SIGKILL)
    status = driver.exec_wait(container_id=spec.container_id)
    assert status.exit_code == 137
    with pytest.raises(Conflict):
        driver.exec_kill(container_id=spec.container_id, signal=signal.SIGKILL)


def test_stop_with_sigterm_gives_143(driver, make_spec):
    # PID 1 forwards TERM to its child and exits with the child's status (128+15)
    script = 'sleep 100 & pid=$!; trap "kill -TERM $pid" TERM; echo ready; wait $pid; wait $pid; exit $?'
    spec = make_spec(["sh", "-c", script])
    driver.exec_create(spec=spec)
    sock = driver.exec_attach(container_id=spec.container_id, stdin=False, stdout=True, stderr=True)
    driver.exec_start(container_id=spec.container_id)
    sock.settimeout(10)
    assert sock.recv(64).endswith(b"ready\n")
    t0 = time.monotonic()
    status = driver.exec_stop(container_id=spec.container_id, signal=signal.SIGTERM, timeout=10)
    assert time.monotonic() - t0 < 5
    assert status.exit_code == 143
    read_all(sock)
    # idempotent
    assert driver.exec_stop(container_id=spec.container_id, signal=signal.SIGTERM, timeout=10).exit_code == 143


def test_stop_timeout_then_sigkill_when_term_is_ignored(driver, make_spec):
    # busybox sleep as PID 1 has no TERM handler, so the kernel drops TERM
    spec = make_spec(["sleep", "100"], stop_signal=signal.SIGTERM)
    driver.exec_create(spec=spec)
    driver.exec_start(container_id=spec.container_id)
    t0 = time.monotonic()
    status = driver.exec_stop(container_id=spec.container_id, signal=signal.SIGTERM, timeout=1)
    elapsed = time.monotonic() - t0
    assert 0.9 <= elapsed < 6, elapsed
    assert status.exit_code == 137


def test_stop_of_a_paused_container(driver, make_spec, lxc_root):
    spec = make_spec(["sleep", "100"])
    driver.exec_create(spec=spec)
    driver.exec_start(container_id=spec.container_id)
    subprocess.run(["lxc-freeze", "-n", spec.container_id, "-P", str(lxc_root)], check=True)
    assert driver.exec_state(container_id=spec.container_id).status == "paused"
    status = driver.exec_stop(container_id=spec.container_id, signal=signal.SIGTERM, timeout=0.5)
    assert status.exit_code == 137


def test_stop_of_created_container_is_not_modified(driver, make_spec):
    spec = make_spec(["true"])
    driver.exec_create(spec=spec)
    with pytest.raises(NotModified):
        driver.exec_stop(container_id=spec.container_id, signal=signal.SIGTERM, timeout=1)
    assert driver.exec_state(container_id=spec.container_id).status == "created"


def test_oom_kill_is_recorded(driver, make_spec):
    from dockyard.models.runtime import Resources

    mem = 32 * 1024 * 1024
    spec = make_spec(
        ["sh", "-c", "a=xxxxxxxxxxxxxxxx; while :; do a=$a$a; done"], resources=Resources(memory=mem, memory_swap=mem)
    )
    status, _ = run(driver, spec)
    assert status.exit_code == 137
    assert status.oom_killed is True
    assert driver.exec_state(container_id=spec.container_id).oom_killed is True


# --------------------------------------------------------------------------- config applied


def test_env_cwd_user_groups_hostname(driver, make_spec):
    spec = make_spec(
        ["sh", "-c", 'echo "$FOO|$HOME|$PATH|$HOSTNAME"; pwd; id -u; id -g; id -G; hostname'],
        env=["FOO=bar baz=qux"],
        cwd="/home/app",
        uid=1000,
        gid=1000,
        additional_gids=[10],
        hostname="myhost",
    )
    status, data = run(driver, spec)
    out, err, _ = demux(data)
    assert err == b""
    lines = out.decode().splitlines()
    assert lines[0] == "bar baz=qux|/|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|myhost"
    assert lines[1] == "/home/app"
    assert lines[2] == "1000"
    assert lines[3] == "1000"
    assert set(lines[4].split()) == {"1000", "10"}
    assert lines[5] == "myhost"
    assert status.exit_code == 0


def test_root_capabilities_are_dockers(driver, make_spec):
    spec = make_spec(["sh", "-c", "grep -E '^Cap(Bnd|Eff)' /proc/self/status"])
    _, data = run(driver, spec)
    out = demux(data)[0].decode()
    assert "CapBnd:\t00000000a80425fb" in out
    assert "CapEff:\t00000000a80425fb" in out


def test_binds_and_shm(driver, make_spec, tmp_path):
    rw = tmp_path / "rw"
    rw.mkdir()
    ro = tmp_path / "ro.txt"
    ro.write_text("read-only\n")
    spec = make_spec(
        [
            "sh",
            "-c",
            "echo written > /mnt/rw/f; cat /etc/ro.txt; echo x > /etc/ro.txt || echo refused; "
            "grep -c ' /dev/shm tmpfs' /proc/mounts",
        ],
        binds=[(rw, "/mnt/rw", False), (ro, "/etc/ro.txt", True)],
    )
    status, data = run(driver, spec)
    out = demux(data)[0].decode().splitlines()
    assert out == ["read-only", "refused", "1"]
    assert (rw / "f").read_text() == "written\n"
    assert ro.read_text() == "read-only\n"
    assert status.exit_code == 0


def test_network_namespace(driver, make_spec, netns):
    host_ns = os.readlink("/proc/self/ns/net")
    ns_inode = os.stat(netns).st_ino
    _, data = run(driver, make_spec(["readlink", "/proc/self/ns/net"]))
    assert demux(data)[0].decode().strip() == f"net:[{ns_inode}]"
    _, data = run(driver, make_spec(["readlink", "/proc/self/ns/net"], netns=None))
    assert demux(data)[0].decode().strip() == host_ns


# --------------------------------------------------------------------------- tty


def test_tty_output_is_raw_and_has_a_size(driver, make_spec):
    spec = make_spec(["sh", "-c", "tty; stty size; echo done"], tty=True)
    driver.exec_create(spec=spec)
    driver.exec_resize(container_id=spec.container_id, height=30, width=100)
    sock = driver.exec_attach(container_id=spec.container_id, stdin=False, stdout=True, stderr=True)
    driver.exec_start(container_id=spec.container_id)
    data = read_all(sock)
    status = driver.exec_wait(container_id=spec.container_id)
    assert status.exit_code == 0
    assert data == b"/dev/console\r\n30 100\r\ndone\r\n" or data == b"/dev/pts/0\r\n30 100\r\ndone\r\n", data
    log = [parse_line(line) for line in spec.log_path.read_bytes().splitlines(keepends=True)]
    assert all(e.stream == "stdout" for e in log)
    assert b"".join(e.data for e in log).endswith(b"done\r\n")


def test_tty_stdin_and_resize_while_running(driver, make_spec):
    spec = make_spec(["sh", "-c", "read line; stty size; echo got:$line"], tty=True, open_stdin=True)
    driver.exec_create(spec=spec)
    sock = driver.exec_attach(container_id=spec.container_id, stdin=True, stdout=True, stderr=True)
    driver.exec_start(container_id=spec.container_id)
    driver.exec_resize(container_id=spec.container_id, height=50, width=132)
    time.sleep(0.05)
    sock.sendall(b"hello\r")
    data = read_all(sock)
    assert b"50 132\r\n" in data
    assert b"got:hello\r\n" in data
    assert driver.exec_wait(container_id=spec.container_id).exit_code == 0


# --------------------------------------------------------------------------- lifecycle and state


def test_state_list_and_delete(driver, make_spec):
    spec = make_spec(["sh", "-c", "read x"], open_stdin=True, stdin_once=True)
    cid = spec.container_id
    assert driver.exec_state(container_id=cid) is None
    with pytest.raises(NotFound):
        driver.exec_attach(container_id=cid, stdin=False, stdout=True, stderr=True)
    driver.exec_create(spec=spec)
    assert driver.exec_state(container_id=cid).status == "created"
    assert driver.exec_list() == [cid]
    with pytest.raises(Conflict):
        driver.exec_create(spec=spec)
    sock = driver.exec_attach(container_id=cid, stdin=True, stdout=True, stderr=True)
    started = driver.exec_start(container_id=cid)
    state = driver.exec_state(container_id=cid)
    assert state.status == "running" and state.pid == started.pid
    with pytest.raises(Conflict):
        driver.exec_delete(container_id=cid)
    sock.shutdown(socket.SHUT_WR)  # stdin EOF: `read` returns 1
    assert read_all(sock) == b""
    assert driver.exec_wait(container_id=cid).exit_code == 1
    # attach to an exited container: an empty, finished stream
    assert read_all(driver.exec_attach(container_id=cid, stdin=False, stdout=True, stderr=True)) == b""
    assert driver.exec_delete(container_id=cid) is True
    assert driver.exec_delete(container_id=cid) is True
    assert driver.exec_state(container_id=cid) is None
    assert driver.exec_list() == []


def test_delete_created_container_never_started(driver, make_spec):
    spec = make_spec(["true"])
    driver.exec_create(spec=spec)
    state_dir = driver.root / spec.container_id
    assert wait_for(lambda: helper_pids(state_dir))
    assert driver.exec_delete(container_id=spec.container_id)
    assert not state_dir.exists()
    assert wait_for(lambda: not helper_pids(state_dir), timeout=5)


def test_recreate_after_exit(driver, make_spec):
    spec = make_spec(["echo", "again"])
    for _ in range(2):
        status, data = run(driver, spec)
        assert status.exit_code == 0 and demux(data)[0] == b"again\n"
    assert [parse_line(line).data for line in spec.log_path.read_bytes().splitlines()] == [b"again\n", b"again\n"]


def test_start_failure_raises_system_with_the_reason(driver, make_spec, tmp_path):
    spec = make_spec(["true"], rootfs=tmp_path / "no-such-rootfs")
    driver.exec_create(spec=spec)
    with pytest.raises(System) as info:
        driver.exec_start(container_id=spec.container_id)
    assert "no-such-rootfs" in str(info.value) or "rootfs" in str(info.value).lower()
    assert driver.exec_state(container_id=spec.container_id).status == "exited"
    driver.exec_delete(container_id=spec.container_id)


@pytest.mark.parametrize(
    ("args", "code", "reason"),
    [
        (["/etc/passwd"], 126, "Permission denied"),
        (["/no/such/binary"], 127, "No such file or directory"),
    ],
)
def test_exec_failure_is_a_start_failure(driver, make_spec, args, code, reason):
    spec = make_spec(args)
    driver.exec_create(spec=spec)
    with pytest.raises(System) as info:
        driver.exec_start(container_id=spec.container_id)
    assert reason in str(info.value) and "Failed to exec" in str(info.value)
    state = driver.exec_state(container_id=spec.container_id)
    assert state.status == "exited" and state.exit_code == code


def test_wait_on_a_created_container_that_is_deleted(driver, make_spec):
    import threading

    spec = make_spec(["true"])
    driver.exec_create(spec=spec)
    result = {}

    def waiter():
        try:
            result["status"] = driver.exec_wait(container_id=spec.container_id)
        except Exception as exc:  # noqa: BLE001
            result["error"] = exc

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.2)
    driver.exec_delete(container_id=spec.container_id)
    t.join(10)
    assert not t.is_alive()
    assert isinstance(result.get("error"), NotFound) or result["status"].exit_code == 255


def test_late_attach_sees_live_output_and_multiple_clients(driver, make_spec, tmp_path):
    flag = tmp_path / "share"
    flag.mkdir()
    spec = make_spec(
        ["sh", "-c", "echo early; while [ ! -e /share/go ]; do sleep 0.02; done; echo late; exit 7"],
        binds=[(flag, "/share", False)],
    )
    driver.exec_create(spec=spec)
    first = driver.exec_attach(container_id=spec.container_id, stdin=False, stdout=True, stderr=False)
    driver.exec_start(container_id=spec.container_id)
    first.settimeout(10)
    assert demux(first.recv(64))[0] == b"early\n"
    second = driver.exec_attach(container_id=spec.container_id, stdin=False, stdout=True, stderr=True)
    (flag / "go").touch()
    assert demux(read_all(first))[0] == b"late\n"
    assert demux(read_all(second))[0] == b"late\n"
    assert driver.exec_wait(container_id=spec.container_id).exit_code == 7


def test_pause_unpause_processes_stats_update(driver, make_spec):
    from dockyard.models.runtime import Resources

    spec = make_spec(
        ["sh", "-c", "sleep 100 & exec sleep 100"], resources=Resources(memory=64 << 20, pids_limit=50, cpu_shares=512)
    )
    cid = spec.container_id
    driver.exec_create(spec=spec)
    with pytest.raises(Conflict):
        driver.exec_pause(container_id=cid)
    started = driver.exec_start(container_id=cid)
    pids = wait_for(lambda: len(found := driver.exec_processes(container_id=cid)) == 2 and found)
    assert started.pid in pids and len(pids) == 2
    stats = driver.exec_stats(container_id=cid)
    assert stats["memory_stats"]["limit"] == 64 << 20
    assert stats["memory_stats"]["usage"] > 0
    assert stats["pids_stats"] == {"current": 2, "limit": 50}
    assert stats["cpu_stats"]["cpu_usage"]["total_usage"] > 0
    assert stats["cpu_stats"]["online_cpus"] >= 1
    driver.exec_update(container_id=cid, resources=Resources(memory=128 << 20, pids_limit=60))
    stats = driver.exec_stats(container_id=cid)
    assert stats["memory_stats"]["limit"] == 128 << 20
    assert stats["pids_stats"]["limit"] == 60
    driver.exec_pause(container_id=cid)
    assert driver.exec_state(container_id=cid).status == "paused"
    with pytest.raises(Conflict):
        driver.exec_pause(container_id=cid)
    driver.exec_unpause(container_id=cid)
    assert driver.exec_state(container_id=cid).status == "running"
    with pytest.raises(Conflict):
        driver.exec_unpause(container_id=cid)
    driver.exec_pause(container_id=cid)
    driver.exec_kill(container_id=cid, signal=signal.SIGKILL)  # kill of a paused container thaws it
    assert driver.exec_wait(container_id=cid).exit_code == 137


def test_status_lines(driver):
    status = dict(driver.exec_status())
    assert status["Execution Driver"].startswith("lxc-5.")


def test_driver_loads_through_its_entry_point():
    from dockyard import drivers

    assert drivers.available("exec").get("lxc") is None
    cls = drivers.driver_class("exec", "lxc")
    assert cls.__name__ == "LxcDriver"


def test_hookimpls_match_the_hookspecs(driver):
    from dockyard import drivers, hookspecs

    pm = drivers.make_plugin_manager()
    pm.register(driver, name="exec:lxc")  # pluggy validates argument names here
    pm.check_pending()
    exec_specs = {name for name in dir(hookspecs) if name.startswith("exec_")}
    implemented = {hook.name for hook in pm.get_hookcallers(driver)}
    assert exec_specs <= implemented, f"lxc lacks {exec_specs - implemented}"
    assert drivers.ExecDriver(pm).list() == []


# --------------------------------------------------------------------------- survival and cleanup


CREATOR = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from dockyard.plugins.exec_lxc.driver import LxcDriver
    from dockyard.models.runtime import RuntimeSpec
    from dockyard.rootfs import mount_plan
    root, rootfs, share, log, cid = sys.argv[1:6]
    d = LxcDriver(Path(root), {})
    spec = RuntimeSpec(container_id=cid, rootfs=Path(rootfs), log_path=Path(log), netns=None,
                       binds=mount_plan(Path(rootfs), [(Path(share), "/share", False)]),
                       args=["sh", "-c", "echo tick1; while [ ! -e /share/go ]; do sleep 0.02; done; "
                                         "echo tick2; exit 42"])
    d.exec_create(spec=spec)
    sock = d.exec_attach(container_id=cid, stdin=False, stdout=True, stderr=True)
    d.exec_start(container_id=cid)
    print("started", flush=True)
    while True:
        sock.recv(65536)
""")


def test_container_survives_the_death_of_its_creator(lxc_root, rootfs, tmp_path):
    from dockyard.plugins.exec_lxc.driver import LxcDriver

    share = tmp_path / "share"
    share.mkdir()
    log = tmp_path / "logs" / "survivor.log"
    cid = new_id()
    creator = subprocess.Popen(
        [sys.executable, "-c", CREATOR, str(lxc_root), str(rootfs), str(share), str(log), cid],
        stdout=subprocess.PIPE,
        text=True,
    )
    drv = None
    try:
        assert creator.stdout.readline().strip() == "started"
        assert wait_for(lambda: log.exists() and "tick1" in log.read_text())
        creator.kill()  # SIGKILL, like a crashed daemon
        creator.wait()
        drv = LxcDriver(lxc_root, {})  # "the restarted daemon"
        assert drv.exec_list() == [cid]
        state = drv.exec_restore(container_id=cid)
        assert state is not None and state.status == "running" and state.pid > 0
        sock = drv.exec_attach(container_id=cid, stdin=False, stdout=True, stderr=True)
        (share / "go").touch()
        out, _, _ = demux(read_all(sock))
        assert out == b"tick2\n"
        status = drv.exec_wait(container_id=cid)
        assert status.exit_code == 42
        assert [parse_line(line).data for line in log.read_bytes().splitlines()] == [b"tick1\n", b"tick2\n"]
        assert drv.exec_restore(container_id=cid).exit_code == 42
    finally:
        if creator.poll() is None:
            creator.kill()
        cleanup_driver(drv or LxcDriver(lxc_root, {}))


def test_restore_after_exit_while_no_daemon(lxc_root, rootfs, tmp_path):
    from dockyard.plugins.exec_lxc.driver import LxcDriver
    from dockyard.models.runtime import RuntimeSpec

    drv = LxcDriver(lxc_root, {})
    cid = new_id()
    try:
        spec = RuntimeSpec(container_id=cid, rootfs=rootfs, args=["sh", "-c", "exit 5"], log_path=tmp_path / "x.log")
        drv.exec_create(spec=spec)
        drv.exec_start(container_id=cid)
        assert wait_for(lambda: (drv.root / cid / "exit").exists())
        del drv
        drv = LxcDriver(lxc_root, {})
        state = drv.exec_restore(container_id=cid)
        assert state.status == "exited" and state.exit_code == 5
        assert drv.exec_wait(container_id=cid).exit_code == 5
        assert drv.exec_restore(container_id=new_id()) is None
    finally:
        cleanup_driver(drv)


def _cgroup_dirs(cid: str) -> list[Path]:
    found = []
    for h in Path("/sys/fs/cgroup").iterdir():
        for rel in (f"dockyard/{cid}", f"dockyard.monitor/{cid}"):
            if (h / rel).exists():
                found.append(h / rel)
    return found


def test_cleanup_leaves_nothing_behind(driver, make_spec, rootfs):
    spec = make_spec(["sh", "-c", "sleep 100 & sleep 100 & exec sleep 100"])
    cid = spec.container_id
    state_dir = driver.root / cid
    driver.exec_create(spec=spec)
    driver.exec_start(container_id=cid)
    assert wait_for(lambda: len(container_pids(cid)) == 3)
    assert _cgroup_dirs(cid)
    assert driver.exec_stop(container_id=cid, signal=signal.SIGTERM, timeout=0.2).exit_code == 137
    assert driver.exec_delete(container_id=cid)
    assert not state_dir.exists()
    assert container_pids(cid) == []
    assert wait_for(lambda: not helper_pids(state_dir), timeout=5)
    assert _cgroup_dirs(cid) == []
    assert str(rootfs) not in Path("/proc/self/mountinfo").read_text()
    lock = Path("/run/lxc/lock") / str(driver.root).lstrip("/") / f".{cid}"
    assert not lock.exists()


def test_restore_cleans_leftovers_of_a_killed_helper(driver, make_spec):
    spec = make_spec(["sleep", "100"])
    cid = spec.container_id
    driver.exec_create(spec=spec)
    driver.exec_start(container_id=cid)
    state_dir = driver.root / cid
    for pid in helper_pids(state_dir):  # conmon and the LXC monitor
        os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: not container_pids(cid), timeout=10)
    state = driver.exec_restore(container_id=cid)
    assert state.status == "exited"
    assert state.exit_code == 255
    assert _cgroup_dirs(cid) == []
    assert driver.exec_delete(container_id=cid)


def test_check_supported_and_build_rootfs_helper(tmp_path):
    from dockyard.plugins.exec_lxc.driver import LxcDriver

    LxcDriver.check_supported()
    root = build_rootfs(tmp_path / "r")
    assert os.access(root / "bin" / "sh", os.X_OK)


def test_runtimes_are_lxc_only(driver, make_spec):
    from dockyard.errors import InvalidParameter

    runtimes = driver.exec_runtimes()
    assert runtimes.default == "lxc" and list(runtimes.paths) == ["lxc"]
    assert os.access(runtimes.paths["lxc"], os.X_OK)  # the built dockyard-lxc-runtime
    with pytest.raises(InvalidParameter, match="Unknown runtime specified runc"):
        driver.exec_create(spec=make_spec(["true"], runtime="runc"))


def test_per_container_helpers_are_conmon_and_the_lxc_monitor_only(driver, make_spec):
    spec = make_spec(["sleep", "1000"])
    driver.exec_create(spec=spec)
    driver.exec_start(container_id=spec.container_id)
    state_dir = driver.root / spec.container_id
    helpers = sorted(helper_pids(state_dir))
    names = sorted(Path(f"/proc/{p}/comm").read_text().strip() for p in helpers)
    assert names == sorted(["conmon", driver.runtime.name[:15]]), names  # conmon + the LXC monitor
    assert not any("python" in Path(f"/proc/{p}/exe").resolve().name for p in helpers)
    driver.exec_stop(container_id=spec.container_id, signal=signal.SIGKILL, timeout=0)


def test_a_container_of_the_previous_shim_driver_is_stopped_at_restore(driver):
    """Its state dir has an LXC config but no meta.json; a live helper (here: a stand-in) is killed."""
    cid = new_id()
    d = driver.root / cid
    d.mkdir()
    (d / "config").write_text("lxc.uts.name = old\n")
    stand_in = subprocess.Popen(["sleep", "1000"])
    try:
        (d / "shim.pid").write_text(f"{stand_in.pid}\n")
        state = driver.exec_restore(container_id=cid)
        assert state.status == "exited" and state.exit_code == 137
        assert stand_in.wait(5) == -signal.SIGKILL and not d.exists()
    finally:
        if stand_in.poll() is None:
            stand_in.kill()
