"""exec_oci's pure logic: the OCI config it writes, runtime lists, the CRI log lines it leaves."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.confinement import DEFAULT_CAPABILITIES, resolve
from dockyard.daemon.config import load
from dockyard.errors import InvalidParameter
from dockyard.logs import parse_line
from dockyard.models.runtime import ProcessSpec, Resources, RuntimeSpec
from dockyard.plugins.exec_oci import bundle, runtimes

CID = "c" * 64


def spec(**kw) -> RuntimeSpec:
    kw.setdefault("args", ["sh", "-c", "true"])
    return RuntimeSpec(container_id=CID, rootfs=Path("/r"), log_path=Path("/l"), **kw)


def test_config_carries_the_process_namespaces_and_limits():
    cfg = bundle.config(
        spec(
            env=["A=b c", "PATH=/bin"],
            cwd="/w",
            uid=1000,
            gid=1000,
            additional_gids=[10],
            netns=Path("/run/netns/x"),
            tty=True,
            hostname="h",
            resources=Resources(memory=64 << 20, memory_swap=-1, cpu_shares=512, pids_limit=9),
            binds=[(Path("/host/data"), "/data", True)],
        ),
        cgroups_path="/dockyard/" + CID,
        swap_accounting=True,
    )
    proc = cfg["process"]
    assert proc["args"] == ["sh", "-c", "true"] and proc["cwd"] == "/w" and proc["terminal"] is True
    assert proc["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [10]}
    assert "A=b c" in proc["env"] and "PATH=/bin" in proc["env"] and "TERM=xterm" in proc["env"]
    assert proc["capabilities"]["effective"] == [] and "CAP_CHOWN" in proc["capabilities"]["bounding"]
    assert {"type": "network", "path": "/run/netns/x"} in cfg["linux"]["namespaces"]
    assert cfg["linux"]["cgroupsPath"] == "/dockyard/" + CID and cfg["hostname"] == "h"
    res = cfg["linux"]["resources"]
    assert res["memory"] == {"limit": 64 << 20, "swap": -1} and res["cpu"] == {"shares": 512}
    assert res["pids"] == {"limit": 9} and res["devices"][0] == {"allow": False, "access": "rwm"}
    assert {
        "destination": "/data",
        "type": "bind",
        "source": "/host/data",
        "options": ["rbind", "rprivate", "ro"],
    } in cfg["mounts"]


def test_config_without_netns_shares_the_hosts_network_and_root_keeps_its_capabilities():
    cfg = bundle.config(spec(), cgroups_path="/x", swap_accounting=False)
    assert not [ns for ns in cfg["linux"]["namespaces"] if ns["type"] == "network"]
    assert cfg["process"]["capabilities"]["effective"] == list(DEFAULT_CAPABILITIES)
    assert "HOSTNAME=" + CID[:12] in cfg["process"]["env"] and "HOME=/root" in cfg["process"]["env"]


def test_swap_limits_only_where_the_kernel_accounts_swap():
    assert bundle.resources(Resources(memory=100), swap_accounting=False)["memory"] == {"limit": 100}
    assert bundle.resources(Resources(memory=100), swap_accounting=True)["memory"] == {"limit": 100, "swap": 200}


@pytest.mark.parametrize(
    "bad", [{"cwd": "rel"}, {"args": []}, {"env": ["A=\0"]}, {"binds": [(Path("/h"), "relative", False)]}]
)
def test_config_refuses_what_cannot_be_expressed(bad):
    with pytest.raises(InvalidParameter):
        bundle.config(spec(**bad), cgroups_path="/x", swap_accounting=False)


def test_confinement_is_spelled_the_oci_way():
    default = bundle.config(spec(), cgroups_path="/x", swap_accounting=False)
    assert default["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    assert "/proc/kcore" in default["linux"]["maskedPaths"] and "/proc/sys" in default["linux"]["readonlyPaths"]
    assert "ro" in next(m for m in default["mounts"] if m["destination"] == "/sys")["options"]
    assert default["root"]["readonly"] is False and "sysctl" not in default["linux"]
    confined = resolve(privileged=True, readonly_rootfs=True)
    cfg = bundle.config(spec(confinement=confined), cgroups_path="/x", swap_accounting=False)
    assert "seccomp" not in cfg["linux"] and cfg["linux"]["maskedPaths"] == [] and cfg["root"]["readonly"] is True
    assert "ro" not in next(m for m in cfg["mounts"] if m["destination"] == "/sys")["options"]
    assert cfg["linux"]["resources"]["devices"][0] == {"allow": True, "access": "rwm"}
    assert "CAP_SYS_ADMIN" in cfg["process"]["capabilities"]["effective"]


def test_exec_process_environment_gets_hostname_and_term_where_absent():
    confine = resolve(cap_drop=["NET_RAW"])
    proc = bundle.process(ProcessSpec(args=["env"], env=["A=2", "HOSTNAME=mine"], tty=True), "h", confine)
    assert proc["env"] == ["A=2", "HOSTNAME=mine", "PATH=" + bundle.DEFAULT_PATH, "TERM=xterm"]
    assert bundle.process(ProcessSpec(args=["env"], env=["PATH=/x"]), "h", confine)["env"] == ["PATH=/x", "HOSTNAME=h"]
    assert "CAP_NET_RAW" not in proc["capabilities"]["bounding"] and "CAP_CHOWN" in proc["capabilities"]["bounding"]
    with pytest.raises(InvalidParameter):
        bundle.process(ProcessSpec(args=[""]), "h", confine)


def test_runtime_lists():
    assert runtimes.parse("a=/x/a, b=/y") == {"a": "/x/a", "b": "/y"}
    with pytest.raises(InvalidParameter):
        runtimes.parse("=/x")
    with pytest.raises(InvalidParameter):
        runtimes.parse("no-such-runtime-anywhere")


def test_runtime_error_text():
    assert (
        runtimes.error_text('time="x" level=error msg="exec failed: \\"x\\" not found"\n')
        == 'exec failed: "x" not found'
    )
    assert runtimes.error_text('{"msg": "boom", "level": "error"}\n') == "boom"


def test_daemon_runtime_flags_become_exec_driver_options(tmp_path):
    config = load(None, {"exec_opts": {"log_level": "debug"}, "runtime": "crun", "add_runtimes": ["mine=/opt/r"]})
    assert config.exec_options() == {"log_level": "debug", "runtime": "crun", "runtimes": "mine=/opt/r"}
    with pytest.raises(InvalidParameter):
        load(None, {"add_runtimes": ["nopath"]}).exec_options()


@pytest.mark.parametrize(
    "line, stream, time, data",
    [
        (
            b"2024-05-01T12:00:00.123456789+02:00 stdout F hello\n",
            "stdout",
            "2024-05-01T10:00:00.123456789Z",
            b"hello\n",
        ),
        (b"2024-05-01T00:30:00.5-01:30 stderr P part", "stderr", "2024-05-01T02:00:00.5Z", b"part"),
        (b"2024-05-01T00:00:00Z stdout F \n", "stdout", "2024-05-01T00:00:00Z", b"\n"),
        (b'{"log":"x\\n","stream":"stderr","time":"2020-01-01T00:00:00Z"}\n', "stderr", "2020-01-01T00:00:00Z", b"x\n"),
    ],
)
def test_log_lines_of_both_formats(line, stream, time, data):
    entry = parse_line(line)
    assert (entry.stream, entry.time, entry.data) == (stream, time, data)


@pytest.mark.parametrize("line", [b"2024-05-01T12:00:00.1+02:00 stdout", b"garbage here F x", b'{"log": "cut'])
def test_cut_or_foreign_log_lines_are_skipped(line):
    assert parse_line(line) is None
