"""The oci exec driver end to end: runtimes picked per container, as Docker's ``runtimes`` config does.

The rest of the end-to-end suites run on the oci driver too (contrib/test.sh, DOCKYARD_TEST_EXEC_DRIVER=oci);
this module starts its own oci daemon whatever the environment says.
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.helpers.daemon import busybox_daemon

pytestmark = [
    pytest.mark.requires_root,
    pytest.mark.requires_oci,
    pytest.mark.integration,
    pytest.mark.requires_docker_cli,
    pytest.mark.requires_runc,
    pytest.mark.requires_crun,
]

RUNC = shutil.which("runc")
CRUN = shutil.which("crun")


@pytest.fixture(scope="module")
def oci(tmp_path_factory):
    extra = ("--exec-driver", "oci", "--runtime", "crun", "--add-runtime", f"runc-again={RUNC}")
    with busybox_daemon(tmp_path_factory.mktemp("oci"), extra) as d:
        yield d


def test_info_lists_the_configured_runtimes_and_the_default(oci):
    info = json.loads(oci.docker("info", "--format", "{{json .}}").stdout)
    assert info["DefaultRuntime"] == "crun"
    assert set(info["Runtimes"]) == {"runc", "crun", "runc-again"}
    assert info["Runtimes"]["runc-again"]["path"] == RUNC


@pytest.mark.parametrize("runtime", ["", "runc", "crun", "runc-again"])
def test_run_picks_the_runtime_per_container(oci, runtime):
    name = f"rt-{runtime or 'default'}"
    args = (
        ["run", "--name", name]
        + (["--runtime", runtime] if runtime else [])
        + ["busybox", "sh", "-c", "echo out; echo err >&2; exit 7"]
    )
    result = oci.docker(*args)
    assert (result.returncode, result.stdout, result.stderr) == (7, b"out\n", b"err\n")
    host_config = json.loads(oci.docker("inspect", name).stdout)[0]["HostConfig"]
    assert host_config["Runtime"] == (runtime or "crun")
    logs = oci.docker("logs", "-t", name)
    assert logs.stdout.decode().split(" ", 1)[1] == "out\n" and logs.stderr.decode().endswith(" err\n")
    assert oci.docker("rm", name).returncode == 0


def test_an_unknown_runtime_is_refused_at_create(oci):
    result = oci.docker("run", "--rm", "--runtime", "nosuch", "busybox", "true")
    assert result.returncode == 125
    assert "Unknown runtime specified nosuch" in result.stderr.decode()


def test_logs_follow_and_partial_lines_through_the_cri_log(oci):
    result = oci.docker("run", "--name", "partial", "busybox", "sh", "-c", "printf 'no newline'; echo; printf end")
    assert result.returncode == 0
    assert oci.docker("logs", "partial").stdout == b"no newline\nend"
    assert oci.docker("rm", "partial").returncode == 0
