"""Build options clients send, as Docker's classic builder implements them: ``extrahosts``
(``--add-host``, docker-py ``extra_hosts``), ``cachefrom`` (``--cache-from``), ``/build/prune``, and
errors reported in the stream, where docker-py and the docker CLI read them."""

from __future__ import annotations

import io
import tarfile

import docker as dockerpy_module
import pytest

from tests.helpers.build import docker_build

pytestmark = [pytest.mark.requires_root, pytest.mark.requires_lxc, pytest.mark.integration]


def context(dockerfile: str, files: dict[str, bytes] | None = None) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in {"Dockerfile": dockerfile.encode(), **(files or {})}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def messages(dockerpy, **kwargs) -> list[dict]:
    return list(dockerpy.api.build(decode=True, custom_context=True, rm=True, **kwargs))


def test_extra_hosts(daemon, dockerpy, tmp_path):
    image, logs = dockerpy.images.build(
        fileobj=context("FROM busybox\nRUN grep myhost /etc/hosts > /found\n"),
        custom_context=True,
        rm=True,
        extra_hosts={"myhost": "10.1.2.3", "other": "10.1.2.4"},
        tag="xh:1",
    )
    out = dockerpy.containers.run("xh:1", "cat /found", remove=True)
    assert out.split() == [b"10.1.2.3", b"myhost"]
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN grep -q 'cli-host' /etc/hosts\n")
    result = docker_build(daemon, tmp_path, "--add-host", "cli-host:10.9.8.7", "-t", "xh:2")
    assert result.returncode == 0, result.stderr.decode()


def test_cache_from(daemon, dockerpy):
    dockerfile = "FROM busybox\nENV STAGE=one\nRUN echo built > /marker\nLABEL done=yes\n"
    first, _ = dockerpy.images.build(fileobj=context(dockerfile), custom_context=True, rm=True, tag="cf-source:1")
    # forget every build cache entry: only the image remains (as after a pull of it elsewhere)
    report = dockerpy.api.prune_builds()
    assert report["SpaceReclaimed"] == 0 and report["CachesDeleted"]
    log = messages(dockerpy, fileobj=context(dockerfile), cache_from=["cf-source:1"], tag="cf-again:1")
    text = "".join(m.get("stream", "") for m in log)
    assert text.count("Using cache") == 3, text
    assert dockerpy.images.get("cf-again:1").id == first.id
    # with the cache entries forgotten again and no --cache-from, the RUN step runs again
    dockerpy.api.prune_builds()
    log = messages(dockerpy, fileobj=context(dockerfile), tag="cf-fresh:1")
    assert "Using cache" not in "".join(m.get("stream", "") for m in log)
    # an image given for --cache-from that does not exist is skipped, as Docker skips it
    log = messages(dockerpy, fileobj=context(dockerfile), cache_from=["no-such-image:9"], tag="cf-other:1")
    assert not any("error" in m for m in log)


def test_errors_come_in_the_stream(daemon, dockerpy, tmp_path):
    with pytest.raises(dockerpy_module.errors.BuildError) as caught:
        dockerpy.images.build(
            fileobj=context("FROM busybox\nRUN echo about to fail; exit 3\n"), custom_context=True, rm=True
        )
    assert caught.value.msg == "The command '/bin/sh -c echo about to fail; exit 3' returned a non-zero code: 3"
    build_log = list(caught.value.build_log)
    streamed = "".join(m.get("stream", "") for m in build_log)
    assert "about to fail" in streamed
    last = build_log[-1]
    assert last["errorDetail"] == {"code": 3, "message": caught.value.msg} and last["error"] == caught.value.msg
    log = messages(dockerpy, fileobj=context("FROM busybox\nCOPY missing.txt /\n"))
    assert "missing.txt" in log[-1]["error"] and log[-1]["errorDetail"]["message"] == log[-1]["error"]
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN exit 7\n")
    result = docker_build(daemon, tmp_path)
    assert result.returncode == 7  # the CLI exits with the failed command's code, as with Docker
    assert "The command '/bin/sh -c exit 7' returned a non-zero code: 7" in result.stderr.decode()
    # refused options: a 400 naming them, before anything is built
    with pytest.raises(dockerpy_module.errors.APIError) as caught:
        messages(dockerpy, fileobj=context("FROM busybox\n"), shmsize=1 << 20)
    assert caught.value.status_code == 400 and "shmsize" in str(caught.value)
