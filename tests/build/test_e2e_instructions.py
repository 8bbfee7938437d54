"""Every instruction with an observable effect, built for real and checked by running the result."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from tests.helpers.build import (
    api_build,
    docker_build,
    dockyard_build,
    inspect,
    run,
    stream_text,
    tar_of,
    write_context,
)

pytestmark = [pytest.mark.requires_root, pytest.mark.requires_lxc, pytest.mark.integration]


def test_classic_docker_cli_build(daemon, tmp_path):
    """What the trace shows: steps, ids, Successfully built/tagged, and a cached second build."""
    ctx = write_context(
        tmp_path / "ctx",
        {
            "greeting.txt": "hello\n",
            "Dockerfile": "FROM busybox:latest\nCOPY greeting.txt /greeting.txt\nRUN echo built > /built.txt\n"
            'ENV H4=1\nCMD ["cat", "/greeting.txt"]\n',
        },
    )
    first = docker_build(daemon, "-t", "h4-built:v1", str(ctx))
    assert first.returncode == 0, first.stderr.decode()
    out = first.stdout.decode()
    for line in (
        "Step 1/5 : FROM busybox:latest",
        "Step 3/5 : RUN echo built > /built.txt",
        " ---> Running in ",
        "Removing intermediate container",
        "Successfully built ",
        "Successfully tagged h4-built:v1",
    ):
        assert line in out
    assert "Using cache" not in out
    assert run(daemon, "h4-built:v1") == "hello\n"
    assert run(daemon, "h4-built:v1", "sh", "-c", "cat /built.txt; echo $H4") == "built\n1\n"
    second = docker_build(daemon, "-t", "h4-built:v1", str(ctx))
    assert second.returncode == 0, second.stderr.decode()
    out2 = second.stdout.decode()
    assert out2.count(" ---> Using cache") == 4
    assert "Running in" not in out2
    assert out.splitlines()[-2] == out2.splitlines()[-2]  # the same image


def test_quiet_and_several_tags(daemon, tmp_path):
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nLABEL q=1\n"})
    result = docker_build(daemon, "-q", "-t", "qa:1", "-t", "qb", str(ctx))
    assert result.returncode == 0, result.stderr.decode()
    image_id = result.stdout.decode().strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    assert inspect(daemon, "qa:1")["Id"] == image_id == inspect(daemon, "qb:latest")["Id"]


def test_metadata_instructions(daemon, dockerpy, tmp_path):
    ctx = write_context(
        tmp_path / "ctx",
        {
            "Dockerfile": """\
FROM busybox
ENV A=1 B="two words"
ENV C=${A}-$B
WORKDIR /srv
WORKDIR app
USER nobody
EXPOSE 80 53/udp 8000-8001
LABEL org.example.name="dockyard test" plain=yes
VOLUME ["/data"]
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --timeout=2s --retries=3 CMD echo ok
MAINTAINER Someone <someone@example.com>
CMD ["sh", "-c", "echo $A/$B/$C; pwd; id -u"]
"""
        },
    )
    image, _ = dockerpy.images.build(path=str(ctx), tag="meta:1", rm=True)
    config = inspect(daemon, "meta:1")["Config"]
    assert "A=1" in config["Env"] and "B=two words" in config["Env"] and "C=1-two words" in config["Env"]
    assert config["WorkingDir"] == "/srv/app"
    assert config["User"] == "nobody"
    assert set(config["ExposedPorts"]) == {"80/tcp", "53/udp", "8000/tcp", "8001/tcp"}
    assert config["Labels"] == {"org.example.name": "dockyard test", "plain": "yes"}
    assert config["Volumes"] == {"/data": {}}
    assert config["StopSignal"] == "SIGINT"
    assert config["Healthcheck"] == {
        "Test": ["CMD-SHELL", "echo ok"],
        "Interval": 5_000_000_000,
        "Timeout": 2_000_000_000,
        "Retries": 3,
    }
    assert inspect(daemon, "meta:1")["Author"] == "Someone <someone@example.com>"
    assert run(daemon, "meta:1") == "1/two words/1-two words\n/srv/app\n65534\n"
    history = dockerpy.images.get("meta:1").history()
    assert any("ENV A=1" in h["CreatedBy"] for h in history)


@pytest.mark.parametrize(
    "entrypoint, cmd, expected",
    [
        # Docker's "how CMD and ENTRYPOINT interact" table (run with no arguments)
        (None, '["echo", "c1"]', "c1"),
        (None, "echo c2", "c2"),
        ('["echo", "e1"]', None, "e1"),
        ('["echo", "e2"]', '["c"]', "e2 c"),
        ('["echo", "e3"]', "echo c", "e3 /bin/sh -c echo c"),
        ("echo e4", '["c"]', "e4"),
        ("echo e5", "echo c", "e5"),
    ],
)
def test_entrypoint_cmd_table(daemon, tmp_path, entrypoint, cmd, expected):
    lines = ["FROM busybox"]
    if entrypoint:
        lines.append(f"ENTRYPOINT {entrypoint}")
    if cmd:
        lines.append(f"CMD {cmd}")
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": "\n".join(lines) + "\n"})
    tag = f"ep{abs(hash((entrypoint, cmd))) % 10**8}"
    result = docker_build(daemon, "-q", "-t", tag, str(ctx))
    assert result.returncode == 0, result.stderr.decode()
    assert run(daemon, tag).strip() == expected


def test_entrypoint_resets_inherited_cmd(daemon, tmp_path):
    base = write_context(tmp_path / "base", {"Dockerfile": 'FROM busybox\nCMD ["inherited"]\n'})
    assert docker_build(daemon, "-q", "-t", "cmdbase", str(base)).returncode == 0
    child = write_context(tmp_path / "child", {"Dockerfile": 'FROM cmdbase\nENTRYPOINT ["echo", "own"]\n'})
    assert docker_build(daemon, "-q", "-t", "cmdchild", str(child)).returncode == 0
    assert inspect(daemon, "cmdchild")["Config"]["Cmd"] is None
    assert run(daemon, "cmdchild") == "own\n"


def test_copy_and_add_rules(daemon, tmp_path):
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as tar:
        data = b"from the archive\n"
        info = tarfile.TarInfo("pkg/readme")
        info.size, info.uid, info.gid = len(data), 7, 8
        tar.addfile(info, io.BytesIO(data))
    ctx = write_context(
        tmp_path / "ctx",
        {
            "a.txt": "a\n",
            "b.txt": "b\n",
            "c.md": "c\n",
            "dir/one": "1\n",
            "dir/sub/two": "2\n",
            "run.sh": ("#!/bin/sh\necho script\n", 0o755),
            "pkg.tar.gz": inner.getvalue(),
            "Dockerfile": """\
FROM busybox
WORKDIR /w
COPY a.txt .
COPY a.txt renamed
COPY *.txt /glob/
COPY dir /dircontents
COPY dir/ /dirslash/
COPY run.sh /usr/local/bin/
COPY --chown=nobody:nogroup b.txt /owned/deep/
COPY --chown=1234 c.md /numeric
ADD pkg.tar.gz /unpacked/
COPY pkg.tar.gz /notunpacked/
RUN ls -n /owned/deep/b.txt /numeric /unpacked/pkg/readme | awk '{print $3":"$4" "$9}' && \\
    cat /w/a.txt /w/renamed /glob/a.txt /glob/b.txt /dircontents/one /dircontents/sub/two /dirslash/sub/two && \\
    ls /glob && ls /notunpacked && run.sh && stat -c '%a %U' /owned /owned/deep
""",
        },
    )
    result = docker_build(daemon, "-t", "copyrules", str(ctx))
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    out = result.stdout.decode()
    assert "65534:65534 /owned/deep/b.txt" in out
    assert "1234:1234 /numeric" in out
    assert "7:8 /unpacked/pkg/readme" in out
    assert "a\na\na\nb\n1\n2\n2\n" in out
    assert "a.txt\nb.txt\npkg.tar.gz\n" in out
    assert "script\n" in out
    assert "755 nobody\n755 nobody\n" in out


def test_copy_errors(daemon, tmp_path):
    cases = {
        "COPY a.txt b.txt /notadir": "the destination must be a directory and end with a /",
        "COPY missing /x": "file not found in build context",
        "COPY ../outside /x": "forbidden path outside the build context",
        "COPY *.nothing /x/": "no source files were specified",
        "COPY --chown=nosuchuser a.txt /x": "no such user: nosuchuser",
        "COPY --from=nosuchstage /x /y": "invalid from flag value nosuchstage",
    }
    for line, fragment in cases.items():
        ctx = write_context(
            tmp_path / f"c{abs(hash(line))}", {"a.txt": "a", "b.txt": "b", "Dockerfile": f"FROM busybox\n{line}\n"}
        )
        result = docker_build(daemon, str(ctx))
        assert result.returncode != 0, line
        assert fragment in result.stderr.decode(), (line, result.stderr.decode())


def test_multistage_copy_from_and_scratch(daemon, tmp_path):
    ctx = write_context(
        tmp_path / "ctx",
        {
            "Dockerfile": """\
FROM busybox AS build
RUN mkdir /out && echo compiled > /out/bin && chmod 750 /out/bin
FROM busybox AS unused
RUN echo never-needed > /never
FROM scratch AS final
COPY --from=build /out/bin /app/bin
COPY --from=0 /bin/busybox /bin/
COPY --from=busybox /etc/passwd /etc/
CMD ["/bin/busybox", "cat", "/app/bin"]
"""
        },
    )
    result = docker_build(daemon, "-t", "ms:1", str(ctx))
    assert result.returncode == 0, result.stderr.decode()
    assert run(daemon, "ms:1") == "compiled\n"
    assert run(daemon, "ms:1", "/bin/busybox", "stat", "-c", "%a", "/app/bin") == "750\n"
    assert len(inspect(daemon, "ms:1")["RootFS"]["Layers"]) == 3
    target = docker_build(daemon, "--target", "build", "-t", "ms:build", str(ctx))
    assert target.returncode == 0
    assert "Step 2/2" in target.stdout.decode()
    assert run(daemon, "ms:build", "cat", "/out/bin") == "compiled\n"
    missing = docker_build(daemon, "--target", "nope", str(ctx))
    assert missing.returncode != 0 and "failed to reach build target nope" in missing.stderr.decode()


def test_build_args(daemon, tmp_path):
    ctx = write_context(
        tmp_path / "ctx",
        {
            "Dockerfile": """\
ARG TAG=latest
FROM busybox:${TAG}
ARG TAG
ARG WHO=world
ARG UNSETARG
ENV FROM_ENV=env
RUN echo "hello $WHO tag=$TAG unset=[$UNSETARG] $FROM_ENV" > /greeting
"""
        },
    )
    default = docker_build(daemon, "-t", "args:1", str(ctx))
    assert default.returncode == 0, default.stderr.decode()
    assert run(daemon, "args:1", "cat", "/greeting") == "hello world tag=latest unset=[] env\n"
    # build args are not kept in the image's environment
    assert "WHO" not in run(daemon, "args:1", "env")
    changed = docker_build(daemon, "--build-arg", "WHO=you", "--build-arg", "EXTRA=1", "-t", "args:2", str(ctx))
    assert changed.returncode == 0, changed.stderr.decode()
    out = changed.stdout.decode()
    assert "Running in" in out  # a different value is a cache miss for the RUN
    assert "[Warning] One or more build-args [EXTRA] were not consumed" in out
    assert run(daemon, "args:2", "cat", "/greeting") == "hello you tag=latest unset=[] env\n"
    history = json.loads(
        daemon.docker("history", "--no-trunc", "--format", "{{json .CreatedBy}}", "args:2")
        .stdout.decode()
        .splitlines()[0]
    )
    assert history.startswith("|3 TAG=latest UNSETARG= WHO=you") or "WHO=you" in history


def test_onbuild_triggers_run_in_the_child(daemon, tmp_path):
    parent = write_context(
        tmp_path / "parent",
        {"Dockerfile": "FROM busybox\nONBUILD COPY marker /marker\nONBUILD RUN echo triggered > /trig\n"},
    )
    assert docker_build(daemon, "-q", "-t", "onbuild-parent", str(parent)).returncode == 0
    assert inspect(daemon, "onbuild-parent")["Config"]["OnBuild"] == [
        "COPY marker /marker",
        "RUN echo triggered > /trig",
    ]
    child = write_context(tmp_path / "child", {"marker": "m\n", "Dockerfile": "FROM onbuild-parent\n"})
    result = docker_build(daemon, "-t", "onbuild-child", str(child))
    assert result.returncode == 0, result.stderr.decode()
    assert "# Executing 2 build triggers" in result.stdout.decode()
    assert run(daemon, "onbuild-child", "cat", "/marker", "/trig") == "m\ntriggered\n"
    assert not inspect(daemon, "onbuild-child")["Config"].get("OnBuild")


def test_shell_instruction(daemon, tmp_path):
    ctx = write_context(
        tmp_path / "ctx",
        {"Dockerfile": 'FROM busybox\nSHELL ["/bin/sh", "-ec"]\nRUN echo $0 > /shell\nCMD echo via-shell\n'},
    )
    assert docker_build(daemon, "-q", "-t", "shell:1", str(ctx)).returncode == 0
    assert inspect(daemon, "shell:1")["Config"]["Cmd"] == ["/bin/sh", "-ec", "echo via-shell"]
    assert run(daemon, "shell:1") == "via-shell\n"


def test_escape_directive_and_continuations(daemon, tmp_path):
    ctx = write_context(
        tmp_path / "ctx",
        {"Dockerfile": "# escape=`\nFROM busybox\nRUN echo one `\n# comment in between\n    two > /x\n"},
    )
    result = docker_build(daemon, "-t", "esc:1", str(ctx))
    assert result.returncode == 0, result.stderr.decode()
    assert "Step 2/2 : RUN echo one     two > /x" in result.stdout.decode()
    assert run(daemon, "esc:1", "cat", "/x") == "one two\n"


def test_labels_option_and_docker_py(daemon, dockerpy, tmp_path):
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN echo py > /py\n"})
    image, logs = dockerpy.images.build(path=str(ctx), tag="py:1", labels={"built.by": "docker-py"}, rm=True, gzip=True)
    logs = list(logs)
    assert any("aux" in m for m in logs)
    assert image.labels == {"built.by": "docker-py"}
    assert dockerpy.containers.run("py:1", "cat /py", remove=True) == b"py\n"
    image2, _ = dockerpy.images.build(fileobj=io.BytesIO(b"FROM busybox\nCMD echo fileobj\n"), tag="py:2")
    assert dockerpy.containers.run("py:2", remove=True) == b"fileobj\n"


def test_dockyard_cli_build(daemon, tmp_path):
    ctx = write_context(tmp_path / "ctx", {"f": "x\n", "Dockerfile": "FROM busybox\nCOPY f /f\nRUN cat /f\n"})
    result = dockyard_build(daemon, "-t", "dycli:1", str(ctx))
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    assert "Step 3/3 : RUN cat /f" in out and "\nx\n" in out and "Successfully tagged dycli:1" in out
    quiet = dockyard_build(daemon, "-q", str(ctx))
    assert quiet.returncode == 0
    assert quiet.stdout.decode().strip() == inspect(daemon, "dycli:1")["Id"]
    other = write_context(tmp_path / "elsewhere", {"My.Dockerfile": "FROM busybox\nCOPY f /g\n"})
    outside = dockyard_build(daemon, "-q", "-f", str(other / "My.Dockerfile"), "-t", "dycli:2", str(ctx))
    assert outside.returncode == 0, outside.stderr.decode()
    assert run(daemon, "dycli:2", "cat", "/g") == "x\n"


def test_stdin_forms(daemon, tmp_path):
    lone = dockyard_build(daemon, "-t", "stdin:1", "-", input=b"FROM busybox\nRUN echo lone > /lone\n")
    assert lone.returncode == 0, lone.stderr.decode()
    assert run(daemon, "stdin:1", "cat", "/lone") == "lone\n"
    copy = dockyard_build(daemon, "-", input=b"FROM busybox\nCOPY x /x\n")
    assert copy.returncode == 1
    assert "no build context" in copy.stderr.decode()
    tarred = dockyard_build(
        daemon, "-t", "stdin:2", "-", input=tar_of({"Dockerfile": "FROM busybox\nCOPY x /x\n", "x": "from tar\n"})
    )
    assert tarred.returncode == 0, tarred.stderr.decode()
    assert run(daemon, "stdin:2", "cat", "/x") == "from tar\n"
    docker_stdin = docker_build(daemon, "-t", "stdin:3", "-", input=b"FROM busybox\nLABEL via=docker-stdin\n")
    assert docker_stdin.returncode == 0, docker_stdin.stderr.decode()


def test_raw_api_stream_format(daemon):
    status, messages = api_build(daemon, tar_of({"Dockerfile": "FROM busybox\nENV X=1\n"}), t="rawapi:1")
    assert status == 200
    assert messages[0] == {"stream": "Step 1/2 : FROM busybox"}
    assert messages[1] == {"stream": "\n"}
    assert any(m.get("aux", {}).get("ID", "").startswith("sha256:") for m in messages)
    assert stream_text(messages).endswith("Successfully tagged rawapi:1\n")
