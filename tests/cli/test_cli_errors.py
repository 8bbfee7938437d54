"""What users see when things go wrong: one sentence, an exit status, no traceback."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from dockyard.cli.main import app


@pytest.mark.parametrize(
    "argv",
    [
        ["ps"],
        ["images"],
        ["info"],
        ["rm", "x"],
        ["logs", "x"],
        ["inspect", "x"],
        ["run", "busybox"],
        ["start", "-a", "x"],
        ["import", "-", "x:y"],
    ],
)
def test_daemon_down_unix(runner: CliRunner, tmp_path, argv) -> None:
    sock = tmp_path / "nothing.sock"
    result = runner.invoke(app, ["-H", f"unix://{sock}", *argv], input="")
    assert result.exit_code in (1, 125), result.output
    assert f"Cannot connect to the dockyard daemon at unix://{sock}. Is the daemon running?" in result.stderr
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_daemon_down_tcp(runner: CliRunner) -> None:
    result = runner.invoke(app, ["-H", "tcp://127.0.0.1:1", "ps"])
    assert result.exit_code == 1
    assert result.stderr == "Cannot connect to the dockyard daemon at tcp://127.0.0.1:1. Is the daemon running?\n"


def test_version_prints_client_then_error(runner: CliRunner, tmp_path) -> None:
    result = runner.invoke(app, ["-H", f"unix://{tmp_path}/no.sock", "version"])
    assert result.exit_code == 1
    assert result.stdout.startswith("Client:\n Version:")
    assert "Is the daemon running?" in result.stderr


def test_bad_host(runner: CliRunner) -> None:
    result = runner.invoke(app, ["-H", "ftp://x", "ps"])
    assert result.exit_code == 1
    assert "Invalid bind address format: ftp://x" in result.stderr


def test_daemon_error_message(runner: CliRunner, engine) -> None:
    result = runner.invoke(app, ["-H", engine.host, "logs", "nope"])
    assert result.exit_code == 1
    assert result.stderr == "Error response from daemon: No such container: nope\n"


def test_multi_item_errors_continue_then_exit_1(runner: CliRunner, engine) -> None:
    runner.invoke(app, ["-H", engine.host, "create", "--name", "a", "busybox"])
    result = runner.invoke(app, ["-H", engine.host, "stop", "nope", "a"])
    assert result.exit_code == 1
    assert result.stdout == "a\n"
    assert result.stderr == "Error response from daemon: No such container: nope\n"
