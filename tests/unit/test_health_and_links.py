"""The healthcheck state machine (dockyard.health) and legacy link variables (dockyard.links), as moby has them."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from dockyard import health, links
from dockyard.errors import InvalidParameter
from dockyard.models.container import ContainerConfig, ContainerState, Health, HealthConfig
from dockyard.timefmt import iso

SECOND = 1_000_000_000


class Recorder:
    def __init__(self) -> None:
        self.events: list[str] = []

    def set_health(self, c, value: Health) -> None:
        before = c.state.health.status if c.state.health else None
        c.state = c.state.model_copy(update={"health": value})
        if value.status != before:
            self.events.append(value.status)


def container(**check) -> SimpleNamespace:
    config = ContainerConfig(healthcheck=HealthConfig(test=["CMD", "true"], **check))
    return SimpleNamespace(
        id="c" * 64, config=config, state=ContainerState(running=True, started_at=iso(1000), health=Health())
    )


def test_retries_make_it_unhealthy_and_one_success_healthy():
    recorder = Recorder()
    monitor = health.HealthMonitor(recorder, probe=lambda c, argv: (0, ""))
    c = container(retries=2)
    monitor.record(c, 1001, 1001.5, 1, "no")
    assert (c.state.health.status, c.state.health.failing_streak) == ("starting", 1)
    monitor.record(c, 1002, 1002.5, 1, "no")
    assert (c.state.health.status, c.state.health.failing_streak) == ("unhealthy", 2)
    monitor.record(c, 1003, 1003.5, 0, "yes")
    assert (c.state.health.status, c.state.health.failing_streak) == ("healthy", 0)
    assert recorder.events == ["unhealthy", "healthy"]
    for t in range(10):
        monitor.record(c, 1004 + t, 1004.5 + t, 0, f"run {t}")
    assert [entry.output for entry in c.state.health.log] == [f"run {t}" for t in range(5, 10)]


def test_failures_in_the_start_period_do_not_count_until_healthy_once():
    monitor = health.HealthMonitor(Recorder(), probe=lambda c, argv: (0, ""))
    c = container(retries=1, start_period=60 * SECOND)
    monitor.record(c, 1010, 1010.1, 1, "")
    assert (c.state.health.status, c.state.health.failing_streak) == ("starting", 0)
    monitor.record(c, 1020, 1020.1, 0, "")
    monitor.record(c, 1030, 1030.1, 1, "")  # healthy once: inside the start period or not, it counts
    assert c.state.health.status == "unhealthy"
    monitor.record(c, 1100, 1100.1, 1, "")
    assert c.state.health.failing_streak == 2


def test_probe_commands_and_config_checks():
    assert health.probe_of(ContainerConfig(healthcheck=HealthConfig(test=["CMD", "curl", "-f", "x"]))) == [
        "curl",
        "-f",
        "x",
    ]
    assert health.probe_of(ContainerConfig(healthcheck=HealthConfig(test=["CMD-SHELL", "exit 0"]))) == [
        "/bin/sh",
        "-c",
        "exit 0",
    ]
    assert health.probe_of(
        ContainerConfig(shell=["/bin/bash", "-c"], healthcheck=HealthConfig(test=["CMD-SHELL", "x"]))
    ) == ["/bin/bash", "-c", "x"]
    assert health.probe_of(ContainerConfig(healthcheck=HealthConfig(test=["NONE"]))) is None
    assert health.probe_of(ContainerConfig()) is None
    with pytest.raises(InvalidParameter, match="Interval in Healthcheck cannot be less than 1ms"):
        health.check_config(HealthConfig(test=["CMD", "x"], interval=1000))
    with pytest.raises(InvalidParameter, match="Retries in Healthcheck cannot be negative"):
        health.check_config(HealthConfig(test=["CMD", "x"], retries=-1))
    # Go's omitempty: only the durations that are set are shown
    assert HealthConfig(test=["CMD", "x"], interval=SECOND).api() == {"Test": ["CMD", "x"], "Interval": SECOND}


def test_link_environment_is_docker_s():
    child = SimpleNamespace(
        name="db",
        config=ContainerConfig(
            hostname="abc",
            env=["PATH=/bin", "PASSWORD=x"],
            exposed_ports={"5432/tcp": {}, "5433/tcp": {}, "53/udp": {}},
        ),
    )
    env = links.env("web", "my-db", child, "10.0.0.2")
    assert env[0] == "MY_DB_PORT=udp://10.0.0.2:53"
    assert "MY_DB_PORT_5432_TCP_START=tcp://10.0.0.2:5432" in env and "MY_DB_PORT_5432_TCP_PORT_END=5433" in env
    assert "MY_DB_PORT_5433_TCP_ADDR=10.0.0.2" in env and "MY_DB_PORT_53_UDP_PROTO=udp" in env
    assert "MY_DB_NAME=/web/my-db" in env and "MY_DB_ENV_PASSWORD=x" in env
    assert not any(e.startswith("MY_DB_ENV_PATH") for e in env)
    assert links.hosts_line("10.0.0.2", "my-db", child) == "10.0.0.2\tmy-db abc db"
    assert links.parse("/db:/web/my-db") == ("db", "my-db")
