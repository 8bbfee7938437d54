"""docker-py drives dockyard."""

from __future__ import annotations


import docker
import pytest

from tests.helpers.daemon import STORAGE_DRIVER
from tests.helpers.waiting import wait_for

pytestmark = [pytest.mark.requires_root, pytest.mark.requires_lxc, pytest.mark.integration]


def test_version_and_info(dockerpy):
    assert dockerpy.version()["ApiVersion"] == "1.41"
    assert dockerpy.info()["Driver"] == STORAGE_DRIVER
    assert dockerpy.ping() is True


def test_run_returns_output(dockerpy):
    assert dockerpy.containers.run("busybox", ["echo", "from docker-py"], remove=True) == b"from docker-py\n"


def test_run_failure_raises_container_error(dockerpy):
    with pytest.raises(docker.errors.ContainerError) as info:
        dockerpy.containers.run("busybox", ["sh", "-c", "echo bad >&2; exit 4"], name="py-fail")
    assert info.value.exit_status == 4
    dockerpy.containers.get("py-fail").remove()


def test_detached_lifecycle(dockerpy):
    c = dockerpy.containers.run(
        "busybox",
        ["sh", "-c", "echo ready; sleep 60"],
        detach=True,
        name="py-d",
        environment={"GREETING": "hi"},
        working_dir="/work",
        hostname="pyhost",
    )
    c.reload()
    assert c.status == "running"
    assert "GREETING=hi" in c.attrs["Config"]["Env"] and c.attrs["Config"]["WorkingDir"] == "/work"
    assert wait_for(lambda: c.logs() == b"ready\n")
    assert "py-d" in [x.name for x in dockerpy.containers.list()]
    c.kill()
    assert c.wait()["StatusCode"] == 137
    c.reload()
    assert c.status == "exited" and c.attrs["State"]["ExitCode"] == 137
    c.remove()
    with pytest.raises(docker.errors.NotFound):
        dockerpy.containers.get("py-d")


def test_env_workdir_user_hostname_inside(dockerpy):
    output = dockerpy.containers.run(
        "busybox",
        ["sh", "-c", "echo $GREETING; pwd; id -u; hostname"],
        environment=["GREETING=hello"],
        working_dir="/made/here",
        user="nobody",
        hostname="inside",
        remove=True,
    )
    assert output.decode().split() == ["hello", "/made/here", "65534", "inside"]


def test_images_and_errors(dockerpy):
    image = dockerpy.images.get("busybox")
    assert "busybox:latest" in image.tags
    with pytest.raises(docker.errors.ImageNotFound):
        dockerpy.images.get("nope-not-here")
    with pytest.raises(docker.errors.NotFound):
        dockerpy.containers.get("nope-not-here")
