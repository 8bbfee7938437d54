"""Issue 13: each hole, attacked through a real daemon, and Docker's default confinement, checked from
inside containers run by the docker CLI, docker-py and the dockyard CLI.

Every attack test performs the attack and shows it fails: a 4xx naming the
problem, and no trace of the attack on the host.
"""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from dockyard import confinement
from dockyard.testing.exec_conformance import build_syscall_probe

from tests.helpers.daemon import bridge_name, busybox_rootfs_tar, tcp_daemon

pytestmark = [
    pytest.mark.requires_root,
    pytest.mark.requires_lxc,
    pytest.mark.integration,
    pytest.mark.requires_docker_cli,
]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    """A daemon on its unix socket and on plain TCP on loopback (as `-H tcp://127.0.0.1:port` users run it)."""
    with tcp_daemon(tmp_path_factory.mktemp("dysec")) as d:
        yield d


def out(result) -> str:
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def api(daemon, method: str, path: str, body: bytes | None = None, headers: dict | None = None, tcp: bool = False):
    """A raw request: (status, parsed JSON or text)."""
    import httpx

    if tcp:
        client = httpx.Client(base_url=f"http://127.0.0.1:{daemon.port}", timeout=60)
    else:
        client = httpx.Client(
            transport=httpx.HTTPTransport(uds=str(daemon.socket)), base_url="http://docker", timeout=60
        )
    with client:
        response = client.request(method, "/v1.41" + path, content=body, headers=headers or {})
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, response.text


# -- hole 2: volume names ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["/etc", "{victim}", "../../{base}", "a/b", "..", "vol\n", "vol\n/etc"])
def test_volume_names_cannot_reach_outside_the_volume_root(daemon, tmp_path, name):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("precious\n")
    name = name.format(victim=victim, base=tmp_path.name)
    status, body = api(
        daemon, "POST", "/volumes/create", json.dumps({"Name": name}).encode(), {"Content-Type": "application/json"}
    )
    assert status == 400, body
    out(daemon.docker("volume", "prune", "-f"))
    assert (victim / "keep").read_text() == "precious\n" and Path("/etc/passwd").exists()
    assert not Path("/etc/_data").exists()


def test_volume_prune_removes_only_volume_directories(daemon):
    out(daemon.docker("volume", "create", "ok-vol"))
    mountpoint = Path(out(daemon.docker("volume", "inspect", "-f", "{{.Mountpoint}}", "ok-vol")).strip())
    assert mountpoint.parent.parent == daemon.root / "data" / "volumes"
    out(daemon.docker("volume", "prune", "-f"))
    assert not mountpoint.parent.exists()


# -- hole 3: cross-site requests ----------------------------------------------------------------------------

ATTACK = json.dumps({"Image": "busybox", "Cmd": ["true"], "HostConfig": {"Binds": ["/:/host"]}}).encode()


def test_a_web_page_cannot_create_a_container_over_tcp(daemon):
    before = out(daemon.docker("ps", "-aq")).split()
    # a page's no-cors fetch: text/plain body, an Origin header
    assert api(daemon, "POST", "/containers/create", ATTACK, {"Content-Type": "text/plain"}, tcp=True)[0] == 400
    assert (
        api(
            daemon,
            "POST",
            "/containers/create",
            ATTACK,
            {"Content-Type": "application/json", "Origin": "https://evil.example"},
            tcp=True,
        )[0]
        == 403
    )
    # DNS rebinding: the page's own name resolving to 127.0.0.1 (reads need no body)
    status, body = api(daemon, "GET", "/containers/json", headers={"Host": f"evil.example:{daemon.port}"}, tcp=True)
    assert status == 403 and "does not name this daemon" in body["message"]
    assert out(daemon.docker("ps", "-aq")).split() == before
    # the daemon's own clients are unaffected, over TCP too
    assert api(daemon, "GET", "/containers/json", tcp=True)[0] == 200
    assert out(daemon.docker("-H", f"tcp://127.0.0.1:{daemon.port}", "version", "-f", "{{.Server.Version}}"))


def test_plain_tcp_is_warned_about(daemon):
    assert "without TLS" in daemon.log.read_text()


# -- hole 4: mount destinations -----------------------------------------------------------------------------


def test_mount_destinations_with_dotdot_are_refused(daemon, tmp_path):
    victim = tmp_path / "etc-x"
    result = daemon.docker("run", "--rm", "-v", f"{tmp_path}:/../../{victim.relative_to('/')}", "busybox", "true")
    assert result.returncode != 0 and "'..'" in result.stderr.decode()
    assert not victim.exists()


def _image_with_etc_symlink(daemon, target: Path, tag: str) -> None:
    """busybox, but /etc is a symlink to a host path."""
    base = tarfile.open(fileobj=io.BytesIO(busybox_rootfs_tar()))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member in base.getmembers():
            if member.name == "etc" or member.name.startswith("etc/"):
                continue
            tar.addfile(member, base.extractfile(member) if member.isfile() else None)
        link = tarfile.TarInfo("etc")
        link.type, link.linkname = tarfile.SYMTYPE, str(target)
        tar.addfile(link)
    out(daemon.dockyard("import", "-", tag, input=buf.getvalue()))


def test_an_image_whose_etc_points_at_the_host_gets_its_files_inside(daemon, tmp_path):
    victim = tmp_path / "host-etc"
    victim.mkdir()
    _image_with_etc_symlink(daemon, victim, "etc-link:latest")
    text = out(daemon.docker("run", "--rm", "etc-link", "sh", "-c", "cat /etc/hostname; ls /etc"))
    assert list(victim.iterdir()) == []  # nothing created on the host
    assert "hosts" in text and "resolv.conf" in text  # the container has them, inside its rootfs


# -- hole 5: cp, commit and export pause the container (the race itself: tests/unit/test_cp_race.py) ------------


def test_cp_into_a_container_keeps_working_and_commit_pauses(daemon, tmp_path):
    (tmp_path / "f").write_text("copied\n")
    out(daemon.docker("run", "-d", "--name", "cp-ok", "busybox", "sleep", "1000"))
    try:
        out(daemon.docker("cp", str(tmp_path / "f"), "cp-ok:/tmp/"))
        assert out(daemon.docker("exec", "cp-ok", "cat", "/tmp/f")) == "copied\n"
        out(daemon.docker("commit", "cp-ok", "cp-ok:paused"))
        out(daemon.docker("commit", "--pause=false", "cp-ok", "cp-ok:live"))
        state = json.loads(out(daemon.docker("inspect", "cp-ok")))[0]["State"]
        assert state["Running"] and not state["Paused"]
        assert out(daemon.docker("run", "--rm", "cp-ok:paused", "cat", "/tmp/f")) == "copied\n"
    finally:
        daemon.docker("rm", "-f", "cp-ok")


# -- hole 6: data root permissions ------------------------------------------------------------------------------


def test_data_root_is_root_only(daemon):
    data = daemon.root / "data"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for name in ("dockyard.db", "dockyard.log"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
    out(daemon.docker("run", "-d", "--name", "perm", "-e", "SECRET=s3cret", "busybox", "sleep", "1000"))
    try:
        cid = out(daemon.docker("inspect", "-f", "{{.Id}}", "perm")).strip()
        (state,) = (data / "exec").glob(f"*/{cid}")  # whichever exec driver runs it
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        config = state / "config" if (state / "config").exists() else state / "config.json"
        assert stat.S_IMODE(config.stat().st_mode) == 0o600  # holds the environment
        assert stat.S_IMODE((state / "attach").stat().st_mode) & 0o077 == 0  # conmon's attach socket
        # another local user cannot even look: the container's rootfs and its setuid binaries are out of reach
        nobody = subprocess.run(
            ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "ls", str(data / "storage")],
            capture_output=True,
        )
        assert nobody.returncode != 0 and b"Permission denied" in nobody.stderr
    finally:
        daemon.docker("rm", "-f", "perm")


# -- item 8: smaller ones ---------------------------------------------------------------------------------------


def create_body(**host_config) -> bytes:
    return json.dumps({"Image": "busybox", "Cmd": ["true"], "HostConfig": host_config}).encode()


@pytest.mark.parametrize(
    "host_config",
    [
        {"ExtraHosts": ["x:1.2.3.4\n5.6.7.8 evil.example"]},
        {"ExtraHosts": ["x:not-an-ip"]},
        {"Dns": ["1.1.1.1\nnameserver 6.6.6.6"]},
    ],
)
def test_etc_entries_cannot_inject_lines(daemon, host_config):
    """The docker CLI checks these itself; the API must too."""
    status, body = api(
        daemon, "POST", "/containers/create", create_body(**host_config), {"Content-Type": "application/json"}
    )
    assert status == 400 and ("add-host" in body["message"] or "--dns" in body["message"]), body


def test_names_with_a_trailing_newline_are_refused(daemon):
    assert (
        api(
            daemon,
            "POST",
            "/containers/create?name=web%0A",
            b'{"Image":"busybox","Cmd":["true"]}',
            {"Content-Type": "application/json"},
        )[0]
        == 400
    )
    assert api(daemon, "POST", "/volumes/create", b'{"Name":"vol\\n"}', {"Content-Type": "application/json"})[0] == 400


def test_networks_never_take_or_delete_bridges_they_did_not_make(daemon):
    default = bridge_name(daemon.root)
    for bridge in (default, "lo"):
        result = daemon.docker("network", "create", "-o", f"com.docker.network.bridge.name={bridge}", "takeover")
        assert result.returncode != 0 and b"already" in result.stderr, result.stderr
    foreign = "dyfx" + os.urandom(3).hex()
    subprocess.run(["ip", "link", "add", foreign, "type", "bridge"], check=True)
    try:
        result = daemon.docker("network", "create", "-o", f"com.docker.network.bridge.name={foreign}", "takeover")
        assert result.returncode != 0 and b"already exists on the host" in result.stderr
        # a network whose bridge someone replaced meanwhile: rm leaves their bridge alone
        own = "dyfo" + os.urandom(3).hex()
        out(daemon.docker("network", "create", "-o", f"com.docker.network.bridge.name={own}", "replaced"))
        subprocess.run(["ip", "link", "del", own], check=True)
        subprocess.run(["ip", "link", "add", own, "type", "bridge"], check=True)
        out(daemon.docker("network", "rm", "replaced"))
        assert subprocess.run(["ip", "link", "show", own], capture_output=True).returncode == 0
        subprocess.run(["ip", "link", "del", own], check=True)
    finally:
        subprocess.run(["ip", "link", "del", foreign], capture_output=True)


# -- confinement -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> Path:
    return build_syscall_probe(tmp_path_factory.mktemp("probe") / "probe")


def status_of(text: str) -> dict[str, str]:
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


def test_default_confinement_through_the_docker_cli(daemon, probe):
    text = out(
        daemon.docker(
            "run",
            "--rm",
            "-v",
            f"{probe}:/probe:ro",
            "busybox",
            "sh",
            "-c",
            "grep -E '^(CapEff|CapBnd|Seccomp|NoNewPrivs):' /proc/self/status; "
            "/probe keyctl bpf userfaultfd; unshare -Ur true || echo UNSHARE-REFUSED; "
            "wc -c < /proc/kcore 2>/dev/null || echo KCORE-ABSENT; "
            "echo h > /proc/sysrq-trigger || echo SYSRQ-REFUSED",
        )
    )
    fields = status_of(text)
    assert fields["CapEff"] == fields["CapBnd"] == "00000000a80425fb" and fields["NoNewPrivs"] == "0"
    assert fields["Seccomp"] == "2"
    for syscall in ("keyctl", "bpf", "userfaultfd"):
        assert f"{syscall} Operation not permitted" in text
    assert "UNSHARE-REFUSED" in text
    assert "KCORE-ABSENT" in text or "\n0\n" in text  # masked: /dev/null over it, or absent from this kernel
    assert "SYSRQ-REFUSED" in text


def test_read_only_cap_drop_no_new_privileges_through_the_three_clients(daemon, dockerpy):
    text = out(daemon.docker("run", "--rm", "--read-only", "busybox", "sh", "-c", "touch /x || echo RO"))
    assert "RO" in text
    caps = dockerpy.containers.run(
        "busybox", ["grep", "CapEff", "/proc/self/status"], cap_drop=["ALL"], remove=True
    ).decode()
    assert status_of(caps)["CapEff"] == "0000000000000000"
    nnp = out(
        daemon.dockyard(
            "run", "--rm", "--security-opt", "no-new-privileges", "busybox", "grep", "NoNewPrivs", "/proc/self/status"
        )
    )
    assert status_of(nnp)["NoNewPrivs"] == "1"


def test_privileged_can_mount_and_others_cannot(daemon):
    assert "MOUNTED" in out(
        daemon.docker("run", "--rm", "--privileged", "busybox", "sh", "-c", "mount -t tmpfs none /tmp && echo MOUNTED")
    )
    assert "MOUNTED" not in out(
        daemon.docker("run", "--rm", "busybox", "sh", "-c", "mount -t tmpfs none /tmp && echo MOUNTED || true")
    )


def test_seccomp_profiles_from_a_file_and_unconfined(daemon, tmp_path):
    profile = tmp_path / "profile.json"
    profile.write_text(
        json.dumps(
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}],
            }
        )
    )
    for client in (daemon.docker, daemon.dockyard):
        result = client("run", "--rm", "--security-opt", f"seccomp={profile}", "busybox", "mkdir", "/tmp/d")
        assert result.returncode != 0 and b"Permission denied" in result.stderr, result.stderr
    assert (
        status_of(
            out(
                daemon.docker(
                    "run",
                    "--rm",
                    "--security-opt",
                    "seccomp=unconfined",
                    "busybox",
                    "grep",
                    "Seccomp:",
                    "/proc/self/status",
                )
            )
        )["Seccomp"]
        == "0"
    )


@pytest.mark.parametrize(
    "host_config, message",
    [
        ({"CapAdd": ["FLY"]}, "unknown capability"),
        ({"SecurityOpt": ["label=type:svirt_t"]}, "SELinux"),
        ({"SecurityOpt": ["seccomp={not json"]}, "Decoding seccomp profile failed"),
        ({"Sysctls": {"kernel.panic": "1"}}, "not in a separate kernel namespace"),
        ({"Sysctls": {"net.ipv4.ip_forward": "1"}, "NetworkMode": "host"}, "host network"),
        ({"UsernsMode": "private"}, "USER mode"),
        (
            {"Devices": [{"PathOnHost": "/etc/passwd", "PathInContainer": "/dev/x", "CgroupPermissions": "rwm"}]},
            "not a device",
        ),
    ],
)
def test_bad_confinement_options_are_refused(daemon, host_config, message):
    status, body = api(
        daemon, "POST", "/containers/create", create_body(**host_config), {"Content-Type": "application/json"}
    )
    assert status == 400 and message in body["message"], body


def test_apparmor_profiles_need_apparmor(daemon):
    status, body = api(
        daemon,
        "POST",
        "/containers/create",
        create_body(SecurityOpt=["apparmor=nope"]),
        {"Content-Type": "application/json"},
    )
    if confinement.HostFacts.current().apparmor:
        assert status == 201
    else:
        assert status == 400 and "AppArmor is not enabled" in body["message"]


def test_info_lists_security_options(daemon, dockerpy):
    options = dockerpy.info()["SecurityOptions"]
    assert "name=seccomp,profile=builtin" in options
    assert ("name=apparmor" in options) == confinement.HostFacts.current().apparmor


def test_privileged_exec_needs_a_privileged_container(dockerpy):
    import docker

    box = dockerpy.containers.run("busybox", ["sleep", "60"], detach=True)
    try:
        with pytest.raises(docker.errors.APIError) as info:
            box.exec_run(["true"], privileged=True)
        assert info.value.status_code == 400 and "privileged" in str(info.value)
    finally:
        box.remove(force=True)
