"""exec_oci beyond the conformance suite: confinement applied, each runtime's own state, crun on a
hybrid host, options refused, conmon as the only helper (real runc/crun and conmon, as root)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from dockyard.cgroups import CGROUP_ROOT, hybrid_host
from dockyard.confinement import resolve
from dockyard.errors import InvalidParameter
from dockyard.testing.exec_conformance import ExecHarness, build_busybox_rootfs, demux

pytestmark = [pytest.mark.requires_root, pytest.mark.requires_oci]

#: each test runs on both runtimes (CI has both: a missing one fails there, as any requirement does)
RUNTIMES = [
    pytest.param("runc", marks=pytest.mark.requires_runc),
    pytest.param("crun", marks=pytest.mark.requires_crun),
]


def make(options: dict):
    from dockyard.plugins.exec_oci.driver import OciDriver

    def factory(root: Path):
        driver = OciDriver(root, dict(options))
        return driver, driver.close

    return factory


@pytest.fixture(params=RUNTIMES)
def ex(request, tmp_path: Path):
    harness = ExecHarness(
        make({"runtime": request.param}), tmp_path / "root", build_busybox_rootfs(tmp_path / "fs"), tmp_path / "logs"
    )
    try:
        yield harness
    finally:
        harness.finish()


def test_default_confinement_is_applied(ex):
    status, data = ex.run(
        [
            "sh",
            "-c",
            "grep -E '^(CapBnd|CapEff|Seccomp|NoNewPrivs):' /proc/self/status; "
            "cat /proc/kcore 2>&1 | head -c 0; echo x > /proc/sys/kernel/hostname || echo ro",
        ]
    )
    out = demux(data)[0].decode()
    assert "CapBnd:\t00000000a80425fb" in out and "CapEff:\t00000000a80425fb" in out
    assert "Seccomp:\t2" in out and "NoNewPrivs:\t0" in out
    assert out.rstrip().endswith("ro")


def test_a_non_root_user_has_no_effective_capabilities_and_cap_drop_narrows_the_set(ex):
    confine = resolve(cap_drop=["NET_RAW", "CHOWN"], security_opt=["no-new-privileges"])
    status, data = ex.run(
        ["sh", "-c", "grep -E '^(CapBnd|CapEff|NoNewPrivs):' /proc/self/status"],
        uid=1000,
        gid=1000,
        confinement=confine,
    )
    out = demux(data)[0].decode()
    assert "CapEff:\t0000000000000000" in out and "NoNewPrivs:\t1" in out
    bnd = int(out.split("CapBnd:\t")[1].split()[0], 16)
    assert not bnd & (1 << 13) and not bnd & 1 and bnd & (1 << 1)  # NET_RAW, CHOWN gone; DAC_OVERRIDE kept


def test_readonly_rootfs_and_privileged(ex):
    status, data = ex.run(
        ["sh", "-c", "touch /x 2>&1; grep Seccomp: /proc/self/status"], confinement=resolve(readonly_rootfs=True)
    )
    assert b"Read-only file system" in demux(data)[0]
    status, data = ex.run(
        ["sh", "-c", "grep -E '^(Seccomp|CapEff):' /proc/self/status; ls /dev | wc -l"],
        confinement=resolve(privileged=True),
    )
    out = demux(data)[0].decode().split()
    assert out[out.index("Seccomp:") + 1] == "0" and int(out[-1]) > 20


def test_each_runtime_keeps_its_own_state_under_the_driver_root(ex):
    cid = ex.start(["sleep", "1000"])
    runtime = ex.driver._runtime(ex.root / cid)
    assert runtime.state == ex.root / "runtime" / runtime.name and (runtime.state / cid).is_dir()
    ex.exec.stop(cid, signal.SIGKILL, 0)
    ex.exec.delete(cid)
    assert not (runtime.state / cid).exists() and not (ex.root / cid).exists()
    assert not (
        CGROUP_ROOT / ("memory" if not (CGROUP_ROOT / "cgroup.controllers").exists() else "") / "dockyard" / cid
    ).exists()


def test_conmon_is_the_only_process_besides_the_container(ex):
    """No runtime process stays behind after start: conmon is the container's parent, and its only helper."""
    cid = ex.start(["sleep", "1000"])
    pid = ex.exec.state(cid).pid
    parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    assert Path(f"/proc/{parent}/comm").read_text().strip() == "conmon"
    assert int((ex.root / cid / "conmon.pid").read_text()) == parent
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    assert children == [str(pid)]


@pytest.mark.requires_crun
def test_crun_sees_a_legacy_host_through_its_wrapper(tmp_path):
    if not hybrid_host():
        pytest.skip("the host's cgroups are not hybrid (v1 with v2 beside): there is no wrapper to see through")
    from dockyard.plugins.exec_oci.driver import OciDriver

    driver = OciDriver(tmp_path / "root", {"runtime": "crun"})
    crun = driver.runtimes["crun"]
    assert crun.program != crun.path and os.access(crun.program, os.X_OK)
    assert "umount -l /sys/fs/cgroup/unified" in Path(crun.program).read_text()
    assert driver.runtimes.get("runc") is None or driver.runtimes["runc"].program == driver.runtimes["runc"].path


def test_unknown_options_and_runtimes_are_refused(tmp_path):
    from dockyard.plugins.exec_oci.driver import OciDriver

    with pytest.raises(InvalidParameter, match="no option seccomp"):
        OciDriver(tmp_path / "a", {"seccomp": "x"})
    with pytest.raises(InvalidParameter, match="unknown runtime"):
        OciDriver(tmp_path / "b", {"runtime": "nosuch"})
    driver = OciDriver(tmp_path / "c", {})
    harness = ExecHarness(
        lambda root: (driver, driver.close), tmp_path / "c", build_busybox_rootfs(tmp_path / "fs"), tmp_path / "logs"
    )
    try:
        with pytest.raises(InvalidParameter, match="Unknown runtime specified nosuch"):
            harness.create(["true"], runtime="nosuch")
    finally:
        harness.finish()


def test_exec_failure_is_written_into_the_stream_with_dockers_code(ex):
    cid = ex.start(["sleep", "1000"])
    code, data = ex.exec_run(cid, ["/no/such/binary"])
    assert code == 127
    err = demux(data)[1]
    assert err.startswith(b"OCI runtime exec failed: ") and err.endswith(b": unknown\r\n")
    assert ex.exec_run(cid, ["true"])[0] == 0  # the container is unharmed
