"""Healthchecks end to end, as Docker documents them: ``HEALTHCHECK`` in a Dockerfile, ``--health-*`` flags
and docker-py's ``healthcheck``, probes run in the container on their interval with retries, a start
period and a timeout, ``State.Health`` (status, failing streak, the last five results), ``health_status``
events, ``(healthy)`` in ``docker ps`` and ``--filter health=``."""

from __future__ import annotations

import io
import json
import tarfile
import time

import docker as dockerpy_module
import pytest

from tests.helpers.waiting import wait_for

pytestmark = [
    pytest.mark.requires_root,
    pytest.mark.requires_lxc,
    pytest.mark.integration,
    pytest.mark.requires_docker_cli,
]

SECOND = 1_000_000_000


def ok(result) -> str:
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def health(dockerpy, name: str) -> dict | None:
    return dockerpy.api.inspect_container(name)["State"].get("Health")


def test_flags_probes_status_events_and_ps(daemon, dockerpy):
    since = f"{time.time() - 1:.3f}"
    ok(
        daemon.docker(
            "run",
            "-d",
            "--name",
            "hc-flags",
            "--health-cmd",
            "test -e /tmp/ok",
            "--health-interval",
            "1s",
            "--health-retries",
            "2",
            "busybox",
            "sleep",
            "300",
        )
    )
    assert health(dockerpy, "hc-flags")["Status"] == "starting"
    assert "(health: starting)" in ok(daemon.docker("ps", "--filter", "name=hc-flags", "--format", "{{.Status}}"))
    state = wait_for(lambda: (h := health(dockerpy, "hc-flags"))["Status"] == "unhealthy" and h, 30)
    assert state and state["FailingStreak"] >= 2
    assert all(entry["ExitCode"] == 1 for entry in state["Log"])
    assert "(unhealthy)" in ok(daemon.docker("ps", "--filter", "name=hc-flags", "--format", "{{.Status}}"))
    assert ok(daemon.docker("ps", "--filter", "health=unhealthy", "--format", "{{.Names}}")).split() == ["hc-flags"]
    ok(daemon.docker("exec", "hc-flags", "touch", "/tmp/ok"))
    state = wait_for(lambda: (h := health(dockerpy, "hc-flags"))["Status"] == "healthy" and h, 30)
    assert state and state["FailingStreak"] == 0 and state["Log"][-1]["ExitCode"] == 0
    assert ok(daemon.docker("ps", "--filter", "health=healthy", "--format", "{{.Names}}")).split() == ["hc-flags"]
    assert ok(daemon.docker("ps", "--filter", "name=hc-flags", "--format", "{{.Status}}")).strip().endswith("(healthy)")
    # the log keeps the last five results
    assert wait_for(
        lambda: (
            len(health(dockerpy, "hc-flags")["Log"]) == 5 and health(dockerpy, "hc-flags")["Log"][0]["ExitCode"] == 0
        ),
        30,
    )
    assert len(health(dockerpy, "hc-flags")["Log"]) == 5
    events = ok(
        daemon.docker(
            "events",
            "--since",
            since,
            "--until",
            f"{time.time():.3f}",
            "--filter",
            "container=hc-flags",
            "--filter",
            "event=health_status",
            "--format",
            "{{.Action}}",
        )
    )
    assert events.split("\n")[:2] == ["health_status: unhealthy", "health_status: healthy"]
    ok(daemon.docker("rm", "-f", "hc-flags"))


def test_start_period_and_timeout(daemon, dockerpy):
    ok(
        daemon.docker(
            "run",
            "-d",
            "--name",
            "hc-start",
            "--health-cmd",
            "false",
            "--health-interval",
            "1s",
            "--health-retries",
            "1",
            "--health-start-period",
            "120s",
            "busybox",
            "sleep",
            "300",
        )
    )
    ok(
        daemon.docker(
            "run",
            "-d",
            "--name",
            "hc-slow",
            "--health-cmd",
            "sleep 30",
            "--health-interval",
            "1s",
            "--health-timeout",
            "1s",
            "--health-retries",
            "1",
            "busybox",
            "sleep",
            "300",
        )
    )
    assert wait_for(lambda: len(health(dockerpy, "hc-start")["Log"]) >= 2, 30)
    state = health(dockerpy, "hc-start")
    assert (state["Status"], state["FailingStreak"]) == ("starting", 0)  # failures inside the start period
    state = wait_for(lambda: (h := health(dockerpy, "hc-slow"))["Status"] == "unhealthy" and h, 30)
    assert state["Log"][-1]["ExitCode"] == -1
    assert state["Log"][-1]["Output"] == "Health check exceeded timeout (1s)"
    ok(daemon.docker("rm", "-f", "hc-start", "hc-slow"))


def test_dockerfile_healthcheck_no_healthcheck_and_docker_py(daemon, dockerpy):
    dockerfile = b'FROM busybox\nHEALTHCHECK --interval=1s --retries=1 CMD ["true"]\n'
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    image, _ = dockerpy.images.build(fileobj=io.BytesIO(context.getvalue()), custom_context=True, tag="hc-image:1")
    assert image.attrs["Config"]["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": SECOND, "Retries": 1}
    ok(daemon.docker("run", "-d", "--name", "hc-image", "hc-image:1", "sleep", "300"))
    assert wait_for(lambda: health(dockerpy, "hc-image")["Status"] == "healthy", 30)
    ok(daemon.docker("run", "-d", "--name", "hc-off", "--no-healthcheck", "hc-image:1", "sleep", "300"))
    inspected = dockerpy.api.inspect_container("hc-off")
    assert inspected["Config"]["Healthcheck"]["Test"] == ["NONE"] and "Health" not in inspected["State"]
    assert "(health" not in ok(daemon.docker("ps", "--filter", "name=hc-off", "--format", "{{.Status}}"))
    assert ok(
        daemon.docker("ps", "--filter", "health=none", "--filter", "name=hc-", "--format", "{{.Names}}")
    ).split() == ["hc-off"]
    c = dockerpy.containers.run(
        "busybox",
        "sleep 300",
        detach=True,
        name="hc-py",
        healthcheck={"test": ["CMD-SHELL", "echo probe-output"], "interval": SECOND},
    )
    state = wait_for(lambda: (h := health(dockerpy, "hc-py"))["Status"] == "healthy" and h, 30)
    assert state["Log"][-1]["Output"] == "probe-output\n"
    with pytest.raises(dockerpy_module.errors.APIError) as caught:
        dockerpy.containers.create("busybox", "true", healthcheck={"test": ["CMD", "true"], "interval": 1000})
    assert caught.value.status_code == 400 and "Interval in Healthcheck cannot be less than 1ms" in str(caught.value)
    c.remove(force=True)
    ok(daemon.docker("rm", "-f", "hc-image", "hc-off"))


def test_health_survives_in_inspect_after_stop(daemon, dockerpy):
    ok(
        daemon.docker(
            "run",
            "-d",
            "--name",
            "hc-stop",
            "--health-cmd",
            "true",
            "--health-interval",
            "1s",
            "busybox",
            "sleep",
            "300",
        )
    )
    assert wait_for(lambda: health(dockerpy, "hc-stop")["Status"] == "healthy", 30)
    ok(daemon.docker("stop", "-t", "0", "hc-stop"))
    assert health(dockerpy, "hc-stop")["Status"] == "healthy"  # kept, as Docker keeps it
    assert "(healthy)" not in ok(daemon.docker("ps", "-a", "--filter", "name=hc-stop", "--format", "{{.Status}}"))
    inspect = json.loads(ok(daemon.docker("inspect", "hc-stop")))[0]
    assert inspect["Config"]["Healthcheck"]["Test"] == ["CMD-SHELL", "true"]
    ok(daemon.docker("rm", "hc-stop"))
