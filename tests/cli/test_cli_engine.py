"""The client's HTTP-level logic against a tiny fake Engine API (see fake_engine.py).

Only the CLI's side is under test here: request order and shapes, stream
handling and output.  End-to-end behaviour is tested against the real daemon.
"""

from __future__ import annotations

import json

from typer.testing import CliRunner

from dockyard.cli.main import app
from .fake_engine import IMAGE_ID, FakeEngine


def invoke(runner: CliRunner, engine: FakeEngine, *argv: str, input: bytes | str | None = None):
    return runner.invoke(app, ["-H", engine.host, *argv], input=input)


def test_run_foreground_flow_and_output(runner: CliRunner, engine: FakeEngine) -> None:
    result = invoke(runner, engine, "run", "--name", "fg", "busybox", "echo", "hello", "world")
    assert result.exit_code == 0, result.output
    assert result.stdout == "hello world\n"
    cid = engine.find("fg").id
    calls = [p for p in engine.paths() if p != "GET /_ping"]
    assert calls == [
        "POST /v1.41/containers/create",
        f"POST /v1.41/containers/{cid}/attach",
        f"POST /v1.41/containers/{cid}/wait",
        f"POST /v1.41/containers/{cid}/start",
    ]
    queries = {p: q for _, p, q, _ in engine.requests}
    assert queries[f"/v1.41/containers/{cid}/attach"] == {"stream": "1", "stdout": "1", "stderr": "1"}
    assert queries[f"/v1.41/containers/{cid}/wait"] == {"condition": "next-exit"}
    assert queries["/v1.41/containers/create"] == {"name": "fg"}


def test_run_exit_code_and_stderr(runner: CliRunner, engine: FakeEngine) -> None:
    result = invoke(runner, engine, "run", "--rm", "busybox", "fail")
    assert result.exit_code == 3
    assert result.stderr == "oops\n"
    assert result.stdout == ""
    wait = [q for _, p, q, _ in engine.requests if p.endswith("/wait")]
    assert wait == [{"condition": "removed"}]
    body = json.loads(next(b for _, p, _, b in engine.requests if p.endswith("/create")))
    assert body["HostConfig"]["AutoRemove"] is True


def test_run_interactive_pipes_stdin_and_half_closes(runner: CliRunner, engine: FakeEngine) -> None:
    result = invoke(runner, engine, "run", "-i", "busybox", "cat", input=b"line1\nline2\n")
    assert result.exit_code == 0, result.output
    assert result.stdout == "line1\nline2\n"
    assert result.stderr == "done\n"
    attach = [q for _, p, q, _ in engine.requests if p.endswith("/attach")]
    assert attach == [{"stream": "1", "stdin": "1", "stdout": "1", "stderr": "1"}]


def test_run_detached_prints_full_id(runner: CliRunner, engine: FakeEngine) -> None:
    result = invoke(runner, engine, "run", "-d", "--name", "bg", "busybox", "echo", "x")
    assert result.exit_code == 0
    cid = engine.find("bg").id
    assert result.stdout == cid + "\n"
    assert not any(p.endswith("/attach") for p in engine.paths())


def test_run_unknown_image(runner: CliRunner, engine: FakeEngine) -> None:
    result = invoke(runner, engine, "run", "missing", "true")
    assert result.exit_code == 125
    # docker's flow: report, pull (the fake "pulls" nothing usable), retry once, fail
    assert "Using default tag: latest" in result.stdout
    assert result.stderr.startswith(
        "Unable to find image 'missing:latest' locally\n"
        "dockyard: Error response from daemon: No such image: missing:latest\n"
    )


def test_run_start_failure_exit_127(runner: CliRunner, engine: FakeEngine) -> None:
    result = invoke(runner, engine, "run", "busybox", "nope")
    assert result.exit_code == 127
    assert "executable file not found" in result.stderr


def test_create_then_start_attach(runner: CliRunner, engine: FakeEngine) -> None:
    result = invoke(runner, engine, "create", "--name", "c1", "busybox", "fail")
    assert result.exit_code == 0
    assert result.stdout.strip() == engine.find("c1").id
    result = invoke(runner, engine, "start", "-a", "c1")
    assert result.exit_code == 3
    assert result.stderr == "oops\n"


def test_start_prints_names(runner: CliRunner, engine: FakeEngine) -> None:
    invoke(runner, engine, "create", "--name", "s1", "busybox", "echo", "x")
    invoke(runner, engine, "create", "--name", "s2", "busybox", "echo", "x")
    result = invoke(runner, engine, "start", "s1", "s2")
    assert result.exit_code == 0
    assert result.stdout == "s1\ns2\n"


def test_ps_and_quiet(runner: CliRunner, engine: FakeEngine) -> None:
    invoke(runner, engine, "create", "--name", "p1", "busybox", "echo", "a very long command line here")
    result = invoke(runner, engine, "ps", "-a")
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert '"echo a very long co…"' in lines[1]
    assert lines[1].endswith("p1")
    assert "3 seconds ago" in lines[1]
    query = [q for _, p, q, _ in engine.requests if p.endswith("/containers/json")][-1]
    assert query == {"all": "1"}
    result = invoke(runner, engine, "ps", "-q", "-n", "1", "-f", "name=p")
    assert result.stdout == engine.find("p1").id[:12] + "\n"
    query = [q for _, p, q, _ in engine.requests if p.endswith("/containers/json")][-1]
    assert query == {"all": "1", "limit": "1", "filters": '{"name":{"p":true}}'}


def test_images(runner: CliRunner, engine: FakeEngine) -> None:
    result = invoke(runner, engine, "images")
    lines = result.stdout.splitlines()
    assert lines[0] == "REPOSITORY   TAG       IMAGE ID       CREATED          SIZE"
    assert lines[1].split() == ["busybox", "latest", IMAGE_ID[7:19], "30", "minutes", "ago", "1.98MB"]
    assert [line.split()[:2] for line in lines[2:]] == [["alpine", "3.10"], ["alpine", "latest"], ["<none>", "<none>"]]
    result = invoke(runner, engine, "images", "-q", "alpine")
    assert result.stdout == ("cd" * 6 + "\n") * 2
    query = [q for _, p, q, _ in engine.requests if p.endswith("/images/json")][-1]
    assert query == {"filters": '{"reference":{"alpine":true}}'}


def test_logs_demux_and_params(runner: CliRunner, engine: FakeEngine) -> None:
    invoke(runner, engine, "create", "--name", "l1", "busybox")
    result = invoke(runner, engine, "logs", "-t", "--tail", "3", "l1")
    assert result.stdout == "line 1\nline 2\n"
    assert result.stderr == "err 1\n"
    query = [q for _, p, q, _ in engine.requests if p.endswith("/logs")][-1]
    assert query == {"stderr": "1", "stdout": "1", "tail": "3", "timestamps": "1"}


def test_logs_tty_is_raw(runner: CliRunner, engine: FakeEngine) -> None:
    invoke(runner, engine, "create", "-t", "--name", "t1", "busybox")
    result = invoke(runner, engine, "logs", "t1")
    assert result.stdout == "line 1\nerr 1\nline 2\n"
    query = [q for _, p, q, _ in engine.requests if p.endswith("/logs")][-1]
    assert query["tail"] == "all"


def test_inspect_container_image_fallback_and_missing(runner: CliRunner, engine: FakeEngine) -> None:
    invoke(runner, engine, "create", "--name", "i1", "busybox")
    result = invoke(runner, engine, "inspect", "i1", "busybox", "nope")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert [d["Id"] for d in data] == [engine.find("i1").id, IMAGE_ID]
    assert result.stdout.startswith('[\n    {\n        "Id": ')
    assert result.stderr == "Error: No such object: nope\n"
    result = invoke(runner, engine, "inspect", "nope")
    assert (result.stdout, result.stderr) == ("[]\n", "Error: No such object: nope\n")
    result = invoke(runner, engine, "inspect", "-f", "{{.State.Status}} {{.Id}}", "i1")
    assert result.stdout == f"created {engine.find('i1').id}\n"
    result = invoke(runner, engine, "container", "inspect", "busybox")
    assert result.stderr == "Error: No such container: busybox\n"
    result = invoke(runner, engine, "image", "inspect", "-f", "{{json .RepoTags}}", "busybox")
    assert result.stdout == '["busybox:latest"]\n'


def test_import_from_stdin_streams_body(runner: CliRunner, engine: FakeEngine) -> None:
    payload = b"x" * 200_000
    result = invoke(runner, engine, "import", "-", "h4-imported:v2", input=payload)
    assert result.exit_code == 0, result.output
    _, _, query, body = next(r for r in engine.requests if r[1].endswith("/images/create"))
    assert query == {"fromSrc": "-", "repo": "h4-imported", "tag": "v2"}
    assert body == payload
    assert result.stdout.startswith("sha256:") and len(result.stdout.strip()) == 71


def test_rmi_prints_untagged_and_deleted(runner: CliRunner, engine: FakeEngine) -> None:
    result = invoke(runner, engine, "rmi", "busybox", "nope:latest")
    assert result.exit_code == 1
    assert result.stdout == f"Untagged: busybox\nDeleted: {IMAGE_ID}\n"
    assert result.stderr == "Error response from daemon: No such image: nope:latest\n"


def test_kill_stop_restart_rm_wait(runner: CliRunner, engine: FakeEngine) -> None:
    invoke(runner, engine, "run", "--name", "k1", "busybox", "fail")
    assert invoke(runner, engine, "kill", "-s", "KILL", "k1").stdout == "k1\n"
    assert invoke(runner, engine, "stop", "-t", "1", "k1").stdout == "k1\n"
    assert invoke(runner, engine, "restart", "-t", "1", "k1").stdout == "k1\n"
    assert invoke(runner, engine, "wait", "k1").stdout == "3\n"
    assert invoke(runner, engine, "rm", "-f", "-v", "k1").stdout == "k1\n"
    queries = {p.rsplit("/", 1)[-1]: q for _, p, q, _ in engine.requests}
    assert queries["kill"] == {"signal": "KILL"}
    assert queries["stop"] == {"t": "1"}
    assert queries["restart"] == {"t": "1"}
    assert queries["wait"] == {}
    assert ("DELETE", {"force": "1", "v": "1"}) in [(m, q) for m, p, q, _ in engine.requests if m == "DELETE"]


def test_version_and_info(runner: CliRunner, engine: FakeEngine) -> None:
    result = invoke(runner, engine, "version")
    assert result.exit_code == 0
    assert "Server:\n Engine:\n  Version:          0.1.0\n" in result.stdout
    assert "  API version:      1.41 (minimum version 1.24)\n" in result.stdout
    assert "  Built:            Thu May  7 21:09:36 2026\n" in result.stdout
    assert invoke(runner, engine, "version", "-f", "{{.Server.ApiVersion}}").stdout == "1.41\n"
    result = invoke(runner, engine, "info")
    assert result.exit_code == 0
    assert " Storage Driver: vfs\n" in result.stdout
    assert " Total Memory: 23.54GiB\n" in result.stdout
    assert result.stderr == "WARNING: fake engine\n"
    assert invoke(runner, engine, "system", "info", "-f", "{{.Driver}}").stdout == "vfs\n"
