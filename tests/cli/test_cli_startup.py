"""The start-up budget: what a command imports and builds, counted (never timed).

Each case runs the real ``dockyard`` entry point in a fresh interpreter against the
fake engine and records, when the process ends, every module in ``sys.modules``
and every command the CLI built.  Time and memory are measured in
bench/cli_startup.py; this test only fails when something heavy is loaded, or
more than the command that runs is built, which is what makes start-up slow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .fake_engine import FakeEngine

#: Runs ``main()`` as the console script does; at exit, writes what was imported and built.
PROBE = """
import atexit, gc, json, sys
out, sys.argv = sys.argv[1], ["dockyard", *sys.argv[2:]]
from dockyard.cli import lazy
built = []
build = lazy.LazyGroup.build
lazy.LazyGroup.build = lambda self, name, entry: (built.append(name), build(self, name, entry))[1]

@atexit.register
def report():
    with open(out, "w") as f:
        json.dump({"modules": sorted(sys.modules), "built": built, "gc": gc.isenabled()}, f)

from dockyard.cli.main import main
main()
"""

#: Never on the way of a client command that lists or asks for versions.
HEAVY = (
    "httpx",
    "httpcore",
    "anyio",
    "ssl",
    "email",
    "http.client",  # an HTTP stack beyond h11 over a socket
    "rich",
    "pygments",
    "markdown_it",  # help and progress rendering
    "pydantic",
    "pydantic_core",
    "typer._adapters",  # models, and typer's pydantic-based coercion
    "pluggy",
    "stevedore",
    "aiohttp",
    "pyroute2",  # the daemon's machinery
    "tarfile",
    "logging",  # build context packing; logging only for --log-level debug
    "_hashlib",  # OpenSSL: ~4 MB of resident memory
    "dockyard.hookspecs",
    "dockyard.drivers",
    "dockyard.engine",
    "dockyard.store",
    "dockyard.models",
    "dockyard.daemon",
    "dockyard.plugins",
    "dockyard.registry",
    "dockyard.build",
    "dockyard.cli.build",
    "dockyard.cli.registry",
    "dockyard.cli.layers",
    "dockyard.cli.exec_commands",
    "dockyard.cli.copy",
    "dockyard.cli.events",
    "dockyard.cli.daemon",
)


def probe(tmp_path: Path, *argv: str) -> dict:
    out = tmp_path / "probe.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    result = subprocess.run([sys.executable, "-c", PROBE, str(out), *argv], capture_output=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(out.read_text())


def heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]


@pytest.mark.parametrize(
    ("argv", "built", "module", "request_path"),
    [
        (["ps"], ["ps"], "dockyard.cli.container", "/v1.41/containers/json"),
        (["ps", "-a", "-n", "3", "--filter", "name=x"], ["ps"], "dockyard.cli.container", "/v1.41/containers/json"),
        (["version"], ["version"], "dockyard.cli.system", "/v1.41/version"),
        (["images"], ["images"], "dockyard.cli.image", "/v1.41/images/json"),
        (["container", "ls"], ["container", "ls"], "dockyard.cli.container", "/v1.41/containers/json"),
        (["run", "--rm", "busybox", "echo", "hi"], ["run"], "dockyard.cli.container", "/v1.41/containers/create"),
    ],
)
def test_client_command_loads_only_what_it_uses(
    tmp_path: Path, engine: FakeEngine, argv, built, module, request_path
) -> None:
    seen = probe(tmp_path, "-H", engine.host, *argv)
    assert heavy(seen["modules"]) == []
    assert seen["built"] == built
    others = {"dockyard.cli.container", "dockyard.cli.image", "dockyard.cli.system", "dockyard.cli.network"}
    assert [m for m in seen["modules"] if m in others] == sorted(
        {module} | ({"dockyard.cli.network"} if module == "dockyard.cli.container" else set())
    )
    assert request_path in [path for _, path, _, _ in engine.requests]  # it did talk to the daemon
    assert seen["gc"] is True  # paused for the start-up only


def test_help_lists_commands_without_building_or_importing_them(tmp_path: Path) -> None:
    seen = probe(tmp_path, "--help")
    assert seen["built"] == []
    assert [m for m in seen["modules"] if m.startswith("dockyard.cli.")] == [
        "dockyard.cli.app",
        "dockyard.cli.client",
        "dockyard.cli.commands",
        "dockyard.cli.context",
        "dockyard.cli.lazy",
        "dockyard.cli.main",
    ]
    assert "pydantic" not in seen["modules"] and "h11" not in seen["modules"]


def test_a_group_builds_only_the_command_that_runs(tmp_path: Path) -> None:
    seen = probe(tmp_path, "image", "history", "--help")
    assert seen["built"] == ["image", "history"]
    assert "dockyard.cli.layers" in seen["modules"] and "dockyard.cli.build" not in seen["modules"]


def test_daemon_help_loads_no_client_machinery(tmp_path: Path) -> None:
    # `daemon --help` goes through the same lazy path without any client machinery.
    seen = probe(tmp_path, "daemon", "--help")
    assert seen["built"] == ["daemon"]
    assert "h11" not in seen["modules"] and "dockyard.cli.transport" not in seen["modules"]


def dockyard(*argv: str, input: bytes = b"") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    return subprocess.run(
        [sys.executable, "-m", "dockyard.cli", *argv], input=input, capture_output=True, env=env, timeout=60
    )


def test_a_client_leaves_at_once_with_its_output_and_status(tmp_path: Path, engine: FakeEngine) -> None:
    """cli/main.py ``leave``: no interpreter tear-down, but every byte and the exit status get out."""
    images = dockyard("-H", engine.host, "images")
    assert images.returncode == 0 and images.stdout.decode().splitlines()[0].split() == [
        "REPOSITORY",
        "TAG",
        "IMAGE",
        "ID",
        "CREATED",
        "SIZE",
    ]
    failed = dockyard("-H", engine.host, "run", "--rm", "busybox", "fail")
    assert (failed.returncode, failed.stdout, failed.stderr) == (3, b"", b"oops\n")
    catted = dockyard("-H", engine.host, "run", "-i", "busybox", "cat", input=b"x" * 300_000)
    assert catted.returncode == 0 and catted.stdout == b"x" * 300_000
    unreachable = dockyard("-H", f"unix://{tmp_path}/none.sock", "ps")
    assert unreachable.returncode == 1 and b"Is the daemon running?" in unreachable.stderr
    usage = dockyard("ps", "--no-such-flag")
    assert usage.returncode == 2 and b"No such option" in usage.stderr
