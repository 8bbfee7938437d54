"""docker exec, pause/unpause, top, stats, update and resource limits, end to end.

Driven by the docker CLI, docker-py and the ``dockyard`` CLI against a real
daemon (LXC containers); every effect is observed from inside the container or
through the API.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.helpers.daemon import out
from tests.helpers.waiting import holds_for, wait_for

pytestmark = [
    pytest.mark.requires_root,
    pytest.mark.requires_lxc,
    pytest.mark.integration,
    pytest.mark.requires_docker_cli,
]


def dy(daemon, *args: str, input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return daemon.dockyard(*args, input=input, timeout=timeout)


def inspect(daemon, name: str) -> dict:
    return json.loads(out(daemon.docker("inspect", name)))[0]


def cgroup2() -> bool:
    from dockyard.cgroups import cgroup2_host

    return cgroup2_host()


#: cgroup files as the container sees them (its own cgroup is the root of each hierarchy)
V1 = {
    "memory": "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    "cpu": "/sys/fs/cgroup/cpu/cpu.shares",
    "cpuset": "/sys/fs/cgroup/cpuset/cpuset.cpus",
    "pids": "/sys/fs/cgroup/pids/pids.max",
}
V2 = {
    "memory": "/sys/fs/cgroup/memory.max",
    "cpu": "/sys/fs/cgroup/cpu.weight",
    "cpuset": "/sys/fs/cgroup/cpuset.cpus",
    "pids": "/sys/fs/cgroup/pids.max",
}


def cgfile(kind: str) -> str:
    return (V2 if cgroup2() else V1)[kind]


def shares_as_seen(shares: int) -> str:
    if cgroup2():
        return str(max(1, min(10000, 1 + ((shares - 2) * 9999) // 262142)))
    return str(shares)


@pytest.fixture
def running(daemon, request):
    """A running container named after the test; removed afterwards."""
    name = "eps-" + request.node.name.replace("_", "-")[5:40]
    out(daemon.docker("run", "-d", "--name", name, "busybox", "sleep", "1000"))
    yield name
    daemon.docker("rm", "-f", name)


# ------------------------------------------------------------------------------ docker exec (docker CLI)


def test_docker_exec_output_streams_and_exit_code(daemon, running):
    r = daemon.docker("exec", running, "sh", "-c", "echo exec-out; echo exec-err >&2; exit 3")
    assert (r.returncode, r.stdout, r.stderr) == (3, b"exec-out\n", b"exec-err\n")


def test_docker_exec_missing_command_is_127_and_not_executable_126(daemon, running):
    r = daemon.docker("exec", running, "no-such-command")
    assert r.returncode == 127, r.stderr
    assert b"not found in $PATH" in r.stderr  # runc and crun word it differently around that
    r = daemon.docker("exec", running, "/etc/passwd")
    assert r.returncode == 126, r.stderr


def test_docker_exec_env_workdir_user(daemon, running):
    r = daemon.docker(
        "exec", "-e", "FOO=bar baz", "-w", "/tmp", "-u", "nobody", running, "sh", "-c", 'echo "$FOO"; pwd; id -u; id -g'
    )
    assert out(r) == "bar baz\n/tmp\n65534\n65534\n"


def test_docker_exec_workdir_without_a_shell(daemon, running):
    assert out(daemon.docker("exec", "-w", "/tmp", running, "pwd")) == "/tmp\n"


def test_docker_exec_inherits_the_container_env(daemon):
    out(daemon.docker("run", "-d", "--name", "eps-env", "-e", "FROM_RUN=1", "busybox", "sleep", "1000"))
    try:
        env = out(daemon.docker("exec", "-e", "FROM_EXEC=2", "eps-env", "env")).splitlines()
        assert "FROM_RUN=1" in env and "FROM_EXEC=2" in env
        assert any(line.startswith("PATH=") for line in env) and "HOME=/root" in env
    finally:
        daemon.docker("rm", "-f", "eps-env")


def test_docker_exec_interactive_stdin(daemon, running):
    r = daemon.docker("exec", "-i", running, "sh", "-c", "cat; echo done", input=b"line 1\nline 2\n")
    assert out(r) == "line 1\nline 2\ndone\n"


def test_docker_exec_tty(daemon, running):
    r = daemon.docker("exec", "-t", running, "sh", "-c", "tty; echo two")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(b"/dev/pts/") and r.stdout.endswith(b"\r\ntwo\r\n")


def test_docker_exec_detached(daemon, running):
    r = daemon.docker("exec", "-d", running, "sh", "-c", "sleep 0.3; echo done > /tmp/detached")
    assert r.returncode == 0 and r.stdout == b""
    assert wait_for(lambda: daemon.docker("exec", running, "cat", "/tmp/detached").stdout == b"done\n")


def test_docker_exec_on_a_stopped_container_fails(daemon):
    out(daemon.docker("run", "--name", "eps-stopped", "busybox", "true"))
    try:
        r = daemon.docker("exec", "eps-stopped", "true")
        assert r.returncode != 0 and b"is not running" in r.stderr
    finally:
        daemon.docker("rm", "-f", "eps-stopped")


def test_docker_exec_processes_show_in_top(daemon, running):
    out(daemon.docker("exec", "-d", running, "sleep", "77"))
    text = wait_for(lambda: "sleep 77" in (t := out(daemon.docker("top", running))) and t)
    assert text, "the exec'd process is not listed by top"
    assert "sleep 1000" in text


# ------------------------------------------------------------------------------ docker-py


def test_dockerpy_exec_run(dockerpy, running):
    c = dockerpy.containers.get(running)
    code, output = c.exec_run(["sh", "-c", "echo hi; exit 2"])
    assert (code, output) == (2, b"hi\n")
    code, output = c.exec_run("pwd", workdir="/tmp")
    assert (code, output) == (0, b"/tmp\n")
    code, output = c.exec_run(["sh", "-c", "echo $X; id -un"], environment={"X": "y"}, user="nobody")
    assert (code, output) == (0, b"y\nnobody\n")
    code, (stdout, stderr) = c.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True)
    assert (code, stdout, stderr) == (0, b"o\n", b"e\n")
    code, output = c.exec_run("tty", tty=True)
    assert code == 0 and output.startswith(b"/dev/pts/")


def test_dockerpy_exec_inspect_and_detach(dockerpy, running):
    api = dockerpy.api
    exec_id = api.exec_create(running, ["sh", "-c", "sleep 0.2; exit 5"])["Id"]
    assert api.exec_start(exec_id, detach=True) in ("", b"")
    info = wait_for(lambda: (i := api.exec_inspect(exec_id)) and not i["Running"] and i["ExitCode"] is not None and i)
    assert info["ExitCode"] == 5 and info["ContainerID"].startswith(dockerpy.containers.get(running).id)


# ------------------------------------------------------------------------------ pause / unpause


def test_pause_stops_the_log_and_refuses_exec(daemon):
    name = "eps-pause"
    out(
        daemon.docker(
            "run",
            "-d",
            "--name",
            name,
            "busybox",
            "sh",
            "-c",
            "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.05; done",
        )
    )
    try:
        assert wait_for(lambda: out(daemon.docker("logs", name)).count("tick") >= 3)
        out(daemon.docker("pause", name))
        state = inspect(daemon, name)["State"]
        assert state["Paused"] is True and state["Status"] == "paused" and state["Running"] is True
        assert "(Paused)" in out(daemon.docker("ps", "--filter", f"name={name}", "--format", "{{.Status}}"))
        counts: list[int] = []

        def settled() -> bool:  # what was written before the freeze may still reach the log
            counts.append(out(daemon.docker("logs", name)).count("tick"))
            return len(counts) >= 3 and counts[-1] == counts[-3]

        assert wait_for(settled, interval=0.1)
        assert holds_for(lambda: out(daemon.docker("logs", name)).count("tick") == counts[-1], 0.8), (
            "a paused container kept logging"
        )
        r = daemon.docker("exec", name, "true")
        assert r.returncode != 0 and b"is paused" in r.stderr
        r = daemon.docker("pause", name)
        assert r.returncode != 0 and b"already paused" in r.stderr
        out(daemon.docker("unpause", name))
        assert inspect(daemon, name)["State"]["Paused"] is False
        assert wait_for(lambda: out(daemon.docker("logs", name)).count("tick") > counts[-1] + 3)
        assert out(daemon.docker("exec", name, "echo", "ok")) == "ok\n"
        r = daemon.docker("unpause", name)
        assert r.returncode != 0 and b"not paused" in r.stderr
    finally:
        daemon.docker("rm", "-f", name)


def test_kill_a_paused_container(daemon):
    name = "eps-kill-paused"
    out(daemon.docker("run", "-d", "--name", name, "busybox", "sleep", "1000"))
    try:
        out(daemon.docker("pause", name))
        out(daemon.docker("kill", name))
        state = inspect(daemon, name)["State"]
        assert (state["Running"], state["Paused"], state["ExitCode"]) == (False, False, 137)
    finally:
        daemon.docker("rm", "-f", name)


def test_stop_a_paused_container(daemon):
    name = "eps-stop-paused"
    out(
        daemon.docker(
            "run", "-d", "--name", name, "busybox", "sh", "-c", "trap 'exit 7' TERM; while true; do sleep 0.1; done"
        )
    )
    try:
        out(daemon.docker("pause", name))
        out(daemon.docker("stop", "-t", "5", name))
        state = inspect(daemon, name)["State"]
        assert state["Running"] is False and state["ExitCode"] in (7, 143, 137)
    finally:
        daemon.docker("rm", "-f", name)


# ------------------------------------------------------------------------------ top


def test_docker_top(daemon, running):
    text = out(daemon.docker("top", running))
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["UID", "PID", "PPID"]
    assert any("sleep 1000" in line for line in lines[1:])
    pid = inspect(daemon, running)["State"]["Pid"]
    assert any(line.split()[1] == str(pid) for line in lines[1:])
    custom = out(daemon.docker("top", running, "-o", "pid,comm")).splitlines()
    assert custom[0].split() == ["PID", "COMMAND"] and custom[1].split() == [str(pid), "sleep"]


def test_top_of_a_stopped_container_fails(daemon):
    out(daemon.docker("create", "--name", "eps-top-created", "busybox", "true"))
    try:
        r = daemon.docker("top", "eps-top-created")
        assert r.returncode != 0 and b"is not running" in r.stderr
    finally:
        daemon.docker("rm", "-f", "eps-top-created")


# ------------------------------------------------------------------------------ stats


def _mib(text: str) -> float:
    units = {"B": 1 / 2**20, "KiB": 1 / 1024, "MiB": 1, "GiB": 1024, "TiB": 2**20}
    for unit in sorted(units, key=len, reverse=True):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * units[unit]
    raise AssertionError(f"unparsable size {text!r}")


def test_docker_stats_no_stream_numbers_are_plausible(daemon):
    name = "eps-stats"
    out(
        daemon.docker(
            "run", "-d", "--name", name, "-m", "64m", "busybox", "sh", "-c", "sleep 1000 & while :; do :; done"
        )
    )
    try:
        assert wait_for(lambda: len(out(daemon.docker("top", name)).splitlines()) == 3)  # header, sh, sleep
        row = json.loads(out(daemon.docker("stats", "--no-stream", "--format", "{{json .}}", name)))
        usage, limit = (s.strip() for s in row["MemUsage"].split("/"))
        assert _mib(limit) == 64
        assert 0 < _mib(usage) < 64
        assert 0 < float(row["MemPerc"].rstrip("%")) < 100
        assert row["PIDs"] == "2"  # sh (the busy loop) and sleep
        cpu = float(row["CPUPerc"].rstrip("%"))
        assert 5 < cpu <= 100 * 64, row  # one busy loop
        assert row["Name"] == name
    finally:
        daemon.docker("rm", "-f", name)


def test_dockerpy_stats_one_sample(dockerpy):
    c = dockerpy.containers.run("busybox", ["sleep", "1000"], detach=True, mem_limit="48m", pids_limit=30)
    try:
        s = c.stats(stream=False)
        assert s["memory_stats"]["usage"] > 0 and s["memory_stats"]["limit"] == 48 << 20
        assert s["pids_stats"]["current"] == 1 and s["pids_stats"].get("limit") == 30
        assert s["cpu_stats"]["cpu_usage"]["total_usage"] > 0 and s["cpu_stats"]["online_cpus"] >= 1
        assert s["cpu_stats"]["system_cpu_usage"] > 0
        assert s["id"] == c.id and s["name"] == "/" + c.name
    finally:
        c.remove(force=True)


# ------------------------------------------------------------------------------ update and limits


def test_docker_update_memory_seen_inside(daemon, running):
    out(daemon.docker("update", "--memory", "64m", "--memory-swap", "128m", running))
    seen = out(daemon.docker("exec", running, "cat", cgfile("memory"))).strip()
    assert seen == str(64 << 20)
    assert inspect(daemon, running)["HostConfig"]["Memory"] == 64 << 20
    out(daemon.docker("update", "--cpu-shares", "256", "--pids-limit", "40", running))
    assert out(daemon.docker("exec", running, "cat", cgfile("cpu"))).strip() == shares_as_seen(256)
    assert out(daemon.docker("exec", running, "cat", cgfile("pids"))).strip() == "40"


def test_limits_from_run_visible_in_the_cgroup_files(daemon):
    name = "eps-limits"
    out(
        daemon.docker(
            "run",
            "-d",
            "--name",
            name,
            "-m",
            "32m",
            "--cpu-shares",
            "512",
            "--cpuset-cpus",
            "0",
            "--pids-limit",
            "50",
            "busybox",
            "sleep",
            "1000",
        )
    )
    try:
        files = [cgfile(k) for k in ("memory", "cpu", "cpuset", "pids")]
        seen = out(daemon.docker("exec", name, "cat", *files)).split()
        assert seen == [str(32 << 20), shares_as_seen(512), "0", "50"]
    finally:
        daemon.docker("rm", "-f", name)


def test_pids_limit_is_enforced(daemon):
    name = "eps-pids"
    out(daemon.docker("run", "-d", "--name", name, "--pids-limit", "5", "busybox", "sleep", "1000"))
    try:
        r = daemon.docker("exec", name, "sh", "-c", "for i in 1 2 3 4 5 6 7 8; do sleep 5 & done; wait")
        assert r.returncode != 0 or b"can't fork" in r.stderr or b"Resource temporarily unavailable" in r.stderr
    finally:
        daemon.docker("rm", "-f", name)


def test_oom_kill_reports_137_and_oomkilled(daemon):
    name = "eps-oom"
    r = daemon.docker(
        "run",
        "--name",
        name,
        "-m",
        "32m",
        "busybox",
        "sh",
        "-c",
        'x=aaaaaaaaaaaaaaaa; while true; do x="$x$x"; done',
        timeout=120,
    )
    try:
        assert r.returncode == 137, r.stderr
        state = inspect(daemon, name)["State"]
        assert state["OOMKilled"] is True and state["ExitCode"] == 137
    finally:
        daemon.docker("rm", "-f", name)


def test_no_oom_flag_without_a_limit_hit(daemon):
    name = "eps-no-oom"
    r = daemon.docker("run", "--name", name, "-m", "32m", "busybox", "sh", "-c", "exit 3")
    try:
        assert r.returncode == 3
        assert inspect(daemon, name)["State"]["OOMKilled"] is False
    finally:
        daemon.docker("rm", "-f", name)


# ------------------------------------------------------------------------------ the dockyard CLI


def test_dockyard_exec(daemon, running):
    r = dy(daemon, "exec", running, "sh", "-c", "echo out; echo err >&2; exit 4")
    assert (r.returncode, r.stdout, r.stderr) == (4, b"out\n", b"err\n")
    assert (
        out(dy(daemon, "exec", "-w", "/tmp", "-e", "A=1", "-u", "nobody", running, "sh", "-c", "pwd; echo $A; id -u"))
        == "/tmp\n1\n65534\n"
    )
    assert out(dy(daemon, "exec", "-i", running, "cat", input=b"piped\n")) == "piped\n"
    r = dy(daemon, "exec", "-t", running, "tty")
    assert r.returncode == 0 and r.stdout.startswith(b"/dev/pts/") and r.stdout.endswith(b"\r\n")
    r = dy(daemon, "exec", running, "no-such-command")
    assert r.returncode == 127 and b"not found in $PATH" in r.stderr
    assert out(dy(daemon, "exec", "-d", running, "sh", "-c", "echo d > /tmp/d")) == ""
    assert wait_for(lambda: dy(daemon, "exec", running, "cat", "/tmp/d").stdout == b"d\n")
    assert out(dy(daemon, "container", "exec", running, "echo", "via container")) == "via container\n"


def test_dockyard_pause_unpause_top_stats_update(daemon, running):
    assert out(dy(daemon, "pause", running)) == running + "\n"
    assert inspect(daemon, running)["State"]["Paused"] is True
    r = dy(daemon, "exec", running, "true")
    assert r.returncode != 0 and b"is paused" in r.stderr
    assert out(dy(daemon, "unpause", running)) == running + "\n"
    top = out(dy(daemon, "top", running)).splitlines()
    assert top[0].startswith("UID") and any("sleep 1000" in line for line in top[1:])
    assert out(dy(daemon, "top", running, "-o", "pid,comm")).splitlines()[1].split()[1] == "sleep"
    stats = out(dy(daemon, "stats", "--no-stream", running)).splitlines()
    assert stats[0].split()[:3] == ["CONTAINER", "ID", "NAME"]
    assert running in stats[1] and stats[1].split()[-1] == "1"
    assert out(dy(daemon, "update", "-m", "40m", "--pids-limit", "33", running)) == running + "\n"
    assert out(daemon.docker("exec", running, "cat", cgfile("memory"))).strip() == str(40 << 20)
    assert out(daemon.docker("exec", running, "cat", cgfile("pids"))).strip() == "33"
    r = dy(daemon, "update", running)
    assert r.returncode != 0 and b"one or more flags" in r.stderr
