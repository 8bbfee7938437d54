"""Done when: a multi-stage Dockerfile gives the same image (files and config) through the
dockyard CLI and through the docker CLI against our daemon, and docker-py agrees."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest

from tests.helpers.build import docker_build, dockyard_build, inspect, write_context

pytestmark = [pytest.mark.requires_root, pytest.mark.requires_lxc, pytest.mark.integration]

DOCKERFILE = """\
# a two-stage build with most instructions
ARG BASE=busybox
FROM ${BASE} AS build
ARG VERSION=1.0
WORKDIR /src
COPY src/ ./
COPY --chown=nobody:nogroup conf/app.conf /etc/app/
RUN mkdir -p /out && cat *.c > /out/app && echo "version $VERSION" >> /out/app && chmod 755 /out/app && \\
    ln -s app /out/app-link
FROM busybox
LABEL org.example.stage=final
ENV APP_HOME=/opt/app PATH=/opt/app:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY --from=build /out/ $APP_HOME/
COPY --from=build /etc/app /etc/app
ADD data.tar /opt/data/
EXPOSE 8080
USER nobody
WORKDIR $APP_HOME
ENTRYPOINT ["cat"]
CMD ["app"]
"""


def _context(tmp_path):
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        for name, text in (("d/one", b"1\n"), ("d/two", b"2\n")):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(text), 1700000000
            tar.addfile(info, io.BytesIO(text))
    return write_context(
        tmp_path / "ctx",
        {
            "Dockerfile": DOCKERFILE,
            "src/main.c": "int main;\n",
            "src/util.c": "int util;\n",
            "conf/app.conf": "key=value\n",
            "data.tar": data.getvalue(),
            ".dockerignore": "*.md\n",
            "README.md": "x",
        },
    )


def _tree(daemon, image: str) -> dict[str, tuple]:
    """Every path of the image's file system: (type, mode, uid, gid, size, link, content digest)."""
    created = daemon.docker("create", image)
    assert created.returncode == 0, created.stderr.decode()
    cid = created.stdout.decode().strip()
    try:
        exported = daemon.docker("export", cid)
        assert exported.returncode == 0, exported.stderr.decode()
    finally:
        daemon.docker("rm", cid)
    tree = {}
    with tarfile.open(fileobj=io.BytesIO(exported.stdout)) as tar:
        for member in tar:
            if member.name.split("/")[0] in ("etc",) and member.name in (
                "etc/hostname",
                "etc/hosts",
                "etc/resolv.conf",
            ):
                continue
            digest = ""
            if member.isreg():
                digest = hashlib.sha256(tar.extractfile(member).read()).hexdigest()
            tree[member.name] = (member.type, member.mode, member.uid, member.gid, member.size, member.linkname, digest)
    return tree


def _history(daemon, image: str) -> list[str]:
    out = daemon.docker("history", "--no-trunc", "--format", "{{json .CreatedBy}}", image)
    return [json.loads(line) for line in out.stdout.decode().splitlines()]


def test_same_image_through_dockyard_cli_docker_cli_and_docker_py(daemon, dockerpy, tmp_path):
    ctx = _context(tmp_path)
    ours = dockyard_build(daemon, "--no-cache", "-t", "same:dockyard", str(ctx))
    assert ours.returncode == 0, ours.stderr.decode()
    theirs = docker_build(daemon, "--no-cache", "-t", "same:docker", str(ctx))
    assert theirs.returncode == 0, theirs.stderr.decode()
    dockerpy.images.build(path=str(ctx), tag="same:py", nocache=True, rm=True)
    a, b, c = (inspect(daemon, f"same:{t}") for t in ("dockyard", "docker", "py"))
    assert a["Id"] != b["Id"]  # built separately (created times differ) ...
    assert a["Config"] == b["Config"] == c["Config"]  # ... with the same config
    assert a["Config"]["Entrypoint"] == ["cat"] and a["Config"]["User"] == "nobody"
    assert len(a["RootFS"]["Layers"]) == len(b["RootFS"]["Layers"]) == len(c["RootFS"]["Layers"])
    # (layer digests differ: files made by RUN carry the time of each build, as with Docker)
    assert _history(daemon, "same:dockyard") == _history(daemon, "same:docker")
    tree_a, tree_b = _tree(daemon, "same:dockyard"), _tree(daemon, "same:docker")
    assert tree_a == tree_b
    assert tree_a["opt/app/app"][1] == 0o755
    assert tree_a["opt/app/app-link"][5] == "app"
    assert tree_a["etc/app/app.conf"][2:4] == (0, 0)  # classic COPY --from: owned by root unless --chown
    assert "opt/data/d/one" in tree_a
    assert daemon.docker("run", "--rm", "same:docker").stdout == b"int main;\nint util;\nversion 1.0\n"
