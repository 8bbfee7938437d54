"""Building images through the dockyard CLI, the docker CLI (classic builder), docker-py and the raw API."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from tests.helpers.daemon import DOCKER, Daemon, start_daemon


def start_build_daemon(root: Path) -> Daemon:
    return start_daemon(root, extra=("--network-driver", "none"))


def write_context(root: Path, files: dict) -> Path:
    """Files of a context: name -> text | bytes | (content, mode)."""
    root.mkdir(parents=True, exist_ok=True)
    for name, value in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = None
        if isinstance(value, tuple):
            value, mode = value
        if isinstance(value, str):
            value = value.encode()
        path.write_bytes(value)
        if mode is not None:
            path.chmod(mode)
    return root


def tar_of(files: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, value in files.items():
            data = value.encode() if isinstance(value, str) else value
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1700000000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def dockyard_build(d: Daemon, *args: str, input: bytes | None = None, timeout: float = 180):
    return subprocess.run(
        [sys.executable, "-m", "dockyard.cli", "build", *args],
        input=input,
        capture_output=True,
        env=d.env(),
        timeout=timeout,
    )


def docker_build(d: Daemon, *args: str, input: bytes | None = None, timeout: float = 180):
    assert DOCKER, "the docker CLI is needed"
    env = dict(d.env(), DOCKER_BUILDKIT="0")
    return subprocess.run([DOCKER, "build", *args], input=input, capture_output=True, env=env, timeout=timeout)


def api_build(d: Daemon, body: bytes, content_type: str = "application/x-tar", **params):
    """POST /build over the unix socket; returns (status, [messages])."""
    import httpx

    query = []
    for key, value in params.items():
        for v in value if isinstance(value, list) else [value]:
            query.append((key, v if isinstance(v, str) else json.dumps(v)))
    transport = httpx.HTTPTransport(uds=str(d.socket))
    with httpx.Client(transport=transport, base_url="http://localhost", timeout=180) as client:
        response = client.post("/v1.41/build", params=query, content=body, headers={"Content-Type": content_type})
    text = response.text
    if response.status_code != 200:
        return response.status_code, [response.json()]
    messages = [json.loads(line) for line in text.splitlines() if line.strip()]
    return 200, messages


def stream_text(messages: list[dict]) -> str:
    return "".join(m.get("stream", "") for m in messages)


def run(d: Daemon, *args: str) -> str:
    result = d.docker("run", "--rm", *args, timeout=120)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def inspect(d: Daemon, image: str) -> dict:
    result = d.docker("image", "inspect", image)
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout)[0]


def git(*args: str, cwd: Path) -> None:
    """A git command in ``cwd`` as a fixed author (for remote build contexts)."""
    subprocess.run(
        ["git", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        env=dict(
            os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@e", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@e"
        ),
    )
