"""Argument parsing: what each command would send, without a daemon."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from dockyard.cli import container
from dockyard.cli.container import build_create_body, parse_filters, timestamp_arg
from dockyard.cli.image import split_reference
from dockyard.cli.main import app


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Stub create/attach so `run` only records the body and flow it would use."""
    seen: dict[str, Any] = {}

    def fake_create(api, body, name, *, command, pull=None):
        seen.update(body=body, name=name, command=command, host=api.host.url)
        return "c0ffee"

    def fake_attach(api, cid, **kwargs):
        seen.update(attach=kwargs, id=cid)
        return 7

    monkeypatch.setattr(container, "create_container", fake_create)
    monkeypatch.setattr(container, "attach_and_wait", fake_attach)
    return seen


def test_run_passes_everything_after_image_to_the_command(runner: CliRunner, captured) -> None:
    result = runner.invoke(app, ["run", "--name", "web", "busybox", "ls", "-l", "--color", "-e", "X"])
    assert result.exit_code == 7  # the container's exit status
    body = captured["body"]
    assert body["Image"] == "busybox"
    assert body["Cmd"] == ["ls", "-l", "--color", "-e", "X"]
    assert captured["name"] == "web"
    assert body["Env"] is None
    assert captured["attach"] == {"tty": False, "stdin": False, "condition": "next-exit", "sig_proxy": True}


def test_run_flags_shape_the_create_body(runner: CliRunner, captured, monkeypatch) -> None:
    monkeypatch.setenv("FROM_HOST", "yes")
    result = runner.invoke(
        app,
        [
            "run",
            "--rm",
            "-i",
            "-e",
            "A=1",
            "-e",
            "FROM_HOST",
            "-e",
            "UNSET_XYZ",
            "-h",
            "box",
            "-w",
            "/tmp",
            "-u",
            "1000:1000",
            "--entrypoint",
            "",
            "busybox",
            "cat",
        ],
    )
    assert result.exit_code == 7, result.output
    body = captured["body"]
    assert body["Env"] == ["A=1", "FROM_HOST=yes", "UNSET_XYZ"]
    assert body["Hostname"] == "box"
    assert body["WorkingDir"] == "/tmp"
    assert body["User"] == "1000:1000"
    assert body["Entrypoint"] == [""]
    assert body["HostConfig"]["AutoRemove"] is True
    assert (body["AttachStdin"], body["OpenStdin"], body["StdinOnce"]) == (True, True, True)
    assert captured["attach"]["condition"] == "removed"
    assert captured["attach"]["stdin"] is True


def test_run_log_flags_shape_the_log_config(runner: CliRunner, captured) -> None:
    result = runner.invoke(
        app,
        ["run", "--log-driver", "json-file", "--log-opt", "max-size=1m", "--log-opt", "max-file=3", "busybox", "true"],
    )
    assert result.exit_code == 7, result.output
    assert captured["body"]["HostConfig"]["LogConfig"] == {
        "Type": "json-file",
        "Config": {"max-size": "1m", "max-file": "3"},
    }
    result = runner.invoke(app, ["create", "--log-opt", "max-size", "busybox"])
    assert result.exit_code != 0 and "--log-opt" in result.output


def test_run_combined_short_flags(runner: CliRunner, captured) -> None:
    result = runner.invoke(app, ["run", "-di", "busybox"])
    assert result.exit_code != 2, result.output
    body = captured["body"]
    assert body["Cmd"] is None
    assert (body["AttachStdin"], body["AttachStdout"], body["OpenStdin"], body["StdinOnce"]) == (
        False,
        False,
        True,
        False,
    )


def test_run_it_requires_a_terminal(runner: CliRunner, captured) -> None:
    result = runner.invoke(app, ["run", "-it", "busybox", "sh"])
    assert result.exit_code == 1
    assert "the input device is not a TTY" in result.stderr


def test_global_host_first_wins_and_env(runner: CliRunner, captured) -> None:
    runner.invoke(app, ["-H", "tcp://:9999", "-H", "tcp://:1", "run", "busybox"])
    assert captured["host"] == "tcp://127.0.0.1:9999"
    runner.invoke(app, ["run", "busybox"], env={"DOCKYARD_HOST": "unix:///tmp/x.sock"})
    assert captured["host"] == "unix:///tmp/x.sock"
    runner.invoke(app, ["run", "busybox"], env={"DOCKYARD_HOST": ""})
    assert captured["host"] == "unix:///var/run/dockyard.sock"


def test_container_subapp_and_alias_are_the_same(runner: CliRunner, captured) -> None:
    result = runner.invoke(app, ["container", "run", "busybox", "echo", "-n", "x"])
    assert result.exit_code == 7
    assert captured["body"]["Cmd"] == ["echo", "-n", "x"]


def test_create_body_defaults_match_docker() -> None:
    body = build_create_body("busybox", ["sh", "-c", "echo hello; echo oops >&2"])
    assert body["AttachStdout"] is body["AttachStderr"] is True
    assert body["AttachStdin"] is body["OpenStdin"] is body["StdinOnce"] is body["Tty"] is False
    assert body["Env"] is None and body["Entrypoint"] is None
    assert body["HostConfig"]["AutoRemove"] is False
    assert body["HostConfig"]["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}


def test_parse_filters() -> None:
    assert parse_filters(["name=h4-", "status=exited", "name=web"]) == {
        "name": {"h4-": True, "web": True},
        "status": {"exited": True},
    }
    assert parse_filters(None) is None


def test_split_reference() -> None:
    assert split_reference("h4-imported:v2") == ("h4-imported", "v2")
    assert split_reference("busybox") == ("busybox", "latest")
    assert split_reference("127.0.0.1:5080/h4-busybox") == ("127.0.0.1:5080/h4-busybox", "latest")
    assert split_reference("127.0.0.1:5080/h4-busybox:v1") == ("127.0.0.1:5080/h4-busybox", "v1")


def test_timestamp_arg() -> None:
    assert timestamp_arg(None) is None
    assert timestamp_arg("1795931392") == "1795931392"
    assert timestamp_arg("10m", now=1000.0) == "400.000000000"
    assert timestamp_arg("1h30m", now=10000.0) == "4600.000000000"
    assert timestamp_arg("2026-11-29T05:49:52Z") == "1795931392.000000000"


@pytest.mark.parametrize("argv", [["run"], ["rm"], ["stop"], ["logs"], ["import"]])
def test_missing_arguments_are_usage_errors(runner: CliRunner, argv) -> None:
    result = runner.invoke(app, argv)
    assert result.exit_code == 2


def test_help_lists_docker_aliases(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in [
        "run",
        "ps",
        "images",
        "version",
        "info",
        "create",
        "import",
        "inspect",
        "kill",
        "logs",
        "restart",
        "rm",
        "rmi",
        "start",
        "stop",
        "wait",
        "container",
        "image",
        "system",
    ]:
        assert f" {name} " in result.output


def test_daemon_command_is_registered_and_ignores_client_host(runner: CliRunner) -> None:
    result = runner.invoke(app, ["daemon", "--help"], env={"DOCKYARD_HOST": "bogus://x"})
    assert result.exit_code == 0
    assert "--data-root" in result.output


def test_log_level_only_touches_the_client_logger(runner: CliRunner, captured) -> None:
    import logging

    runner.invoke(app, ["--log-level", "debug", "run", "busybox"])
    assert logging.getLogger("dockyard.cli").level == logging.DEBUG
    assert logging.getLogger("dockyard").level == logging.NOTSET
