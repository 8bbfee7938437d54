"""The cache, .dockerignore, remote contexts (git, http), ADD of URLs and failures."""

from __future__ import annotations

import functools
import http.server
import io
import os
import re
import tarfile
import threading
import time

import pytest

from tests.helpers.build import (
    api_build,
    docker_build,
    dockyard_build,
    git,
    inspect,
    run,
    stream_text,
    tar_of,
    write_context,
)

pytestmark = [pytest.mark.requires_root, pytest.mark.requires_lxc, pytest.mark.integration]

CACHED = " ---> Using cache"


def steps_rerun(output: str) -> list[int]:
    """Numbers of the steps that were not taken from the cache."""
    rerun = []
    blocks = re.split(r"^Step (\d+)/\d+ : ", output, flags=re.M)
    for number, body in zip(blocks[1::2], blocks[2::2], strict=True):
        if CACHED not in body and not body.splitlines()[0].startswith("FROM"):
            rerun.append(int(number))
    return rerun


# -- cache ------------------------------------------------------------------------------------------


def test_cache_hits_and_misses(daemon, tmp_path):
    ctx = write_context(
        tmp_path / "ctx",
        {
            "a.txt": "one\n",
            "b.txt": "bee\n",
            "Dockerfile": "FROM busybox\nRUN echo early > /early\nCOPY a.txt /a.txt\nRUN cat /a.txt > /copy\n"
            'COPY b.txt /b.txt\nCMD ["cat", "/copy"]\n',
        },
    )
    first = docker_build(daemon, "-t", "cache:1", str(ctx))
    assert first.returncode == 0, first.stderr.decode()
    assert steps_rerun(first.stdout.decode()) == [2, 3, 4, 5, 6]

    again = docker_build(daemon, "-t", "cache:1", str(ctx))
    assert steps_rerun(again.stdout.decode()) == []  # an unchanged context runs nothing
    assert "Running in" not in again.stdout.decode()

    os.utime(ctx / "a.txt", (time.time() + 100, time.time() + 100))  # times are not part of the key
    touched = docker_build(daemon, str(ctx))
    assert steps_rerun(touched.stdout.decode()) == []

    (ctx / "a.txt").write_text("two\n")  # a changed file re-runs from its COPY on, not before
    changed = docker_build(daemon, "-t", "cache:2", str(ctx))
    assert steps_rerun(changed.stdout.decode()) == [3, 4, 5, 6]
    assert run(daemon, "cache:2") == "two\n"

    (ctx / "b.txt").chmod(0o600)  # so does a changed mode
    chmod = docker_build(daemon, str(ctx))
    assert steps_rerun(chmod.stdout.decode()) == [5, 6]

    nocache = docker_build(daemon, "--no-cache", str(ctx))
    assert CACHED not in nocache.stdout.decode()

    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo early > /early\nRUN echo new-step\n")
    edited = docker_build(daemon, str(ctx))
    assert steps_rerun(edited.stdout.decode()) == [3]


def test_cache_survives_a_deleted_image(daemon, tmp_path):
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN echo x > /x\n"})
    first = docker_build(daemon, "-q", "-t", "gone:1", str(ctx))
    assert first.returncode == 0
    assert daemon.docker("rmi", "gone:1").returncode == 0
    second = docker_build(daemon, "-t", "gone:1", str(ctx))
    assert second.returncode == 0, second.stderr.decode()
    assert "Running in" in second.stdout.decode()  # the cached image is gone: rebuilt, not an error


def test_build_args_and_env_are_part_of_the_key(daemon, tmp_path):
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nARG V\nRUN echo $V > /v\n"})
    assert docker_build(daemon, "--build-arg", "V=1", str(ctx)).returncode == 0
    same = docker_build(daemon, "--build-arg", "V=1", str(ctx))
    assert steps_rerun(same.stdout.decode()) == []
    other = docker_build(daemon, "--build-arg", "V=2", "-t", "argkey", str(ctx))
    assert steps_rerun(other.stdout.decode()) == [3]
    assert run(daemon, "argkey", "cat", "/v") == "2\n"


# -- .dockerignore ----------------------------------------------------------------------------------

IGNORE_FILES = {
    ".dockerignore": "# comment\n*.log\n**/*.tmp\nbuild/\n!build/keep.txt\nsecret*\n/docs/private\n"
    "Dockerfile\n.dockerignore\n",
    "app.py": "code\n",
    "debug.log": "log\n",
    "sub/deep/x.tmp": "tmp\n",
    "sub/deep/y.txt": "y\n",
    "build/out.o": "obj\n",
    "build/keep.txt": "kept\n",
    "secret.key": "k\n",
    "docs/private/p.md": "p\n",
    "docs/public.md": "pub\n",
    "sub/debug.log": "nested log is kept: *.log is only at the top\n",
    "Dockerfile": 'FROM busybox\nCOPY . /ctx\nCMD ["sh", "-c", "cd /ctx && find . -type f | sort"]\n',
}
EXPECTED = ["./app.py", "./build/keep.txt", "./docs/public.md", "./sub/debug.log", "./sub/deep/y.txt"]


def test_dockerignore_through_the_docker_cli(daemon, tmp_path):
    ctx = write_context(tmp_path / "ctx", IGNORE_FILES)
    result = docker_build(daemon, "-t", "ignore:cli", str(ctx))
    assert result.returncode == 0, result.stderr.decode()
    assert run(daemon, "ignore:cli").split() == EXPECTED


def test_dockerignore_applied_by_the_daemon(daemon):
    """docker-py and raw clients may send everything: the daemon applies .dockerignore itself."""
    status, messages = api_build(daemon, tar_of(IGNORE_FILES), t="ignore:api")
    assert status == 200, messages
    assert run(daemon, "ignore:api").split() == EXPECTED


def test_dockerignore_through_the_dockyard_cli(daemon, tmp_path):
    ctx = write_context(tmp_path / "ctx", IGNORE_FILES)
    result = dockyard_build(daemon, "-q", "-t", "ignore:dy", str(ctx))
    assert result.returncode == 0, result.stderr.decode()
    assert run(daemon, "ignore:dy").split() == EXPECTED


def test_dockerignore_exception_only_inside_excluded_dir(daemon):
    files = {
        ".dockerignore": "*\n!keep\n!Dockerfile\n",
        "keep": "k",
        "drop": "d",
        "dir/x": "x",
        "Dockerfile": 'FROM busybox\nCOPY . /c\nCMD ["find", "/c", "-type", "f"]\n',
    }
    status, messages = api_build(daemon, tar_of(files), t="ignore:star")
    assert status == 200, messages
    assert sorted(run(daemon, "ignore:star").split()) == ["/c/Dockerfile", "/c/keep"]


# -- remote contexts -----------------------------------------------------------------------------------


def test_git_context(daemon, git_server):
    base, server = git_server
    repo = write_context(
        base / "repo",
        {
            "Dockerfile": "FROM busybox\nCOPY top /top\n",
            "top": "top\n",
            "app/Dockerfile": 'FROM busybox\nCOPY hello /hello\nCMD ["cat", "/hello"]\n',
            "app/hello": "v1\n",
        },
    )
    git("init", "-q", cwd=repo)
    git("add", "-A", cwd=repo)
    git("commit", "-qm", "one", cwd=repo)
    git("tag", "v1", cwd=repo)
    (repo / "app/hello").write_text("v2\n")
    git("commit", "-qam", "two", cwd=repo)
    url = f"{server}/repo"
    head = dockyard_build(daemon, "-t", "git:head", url + "#:app")
    assert head.returncode == 0, head.stderr.decode()
    assert run(daemon, "git:head") == "v2\n"
    tagged = dockyard_build(daemon, "-t", "git:v1", url + "#v1:app")
    assert tagged.returncode == 0, tagged.stderr.decode()
    assert run(daemon, "git:v1") == "v1\n"
    root = api_build(daemon, b"", remote=url, t="git:root")
    assert root[0] == 200 and "Successfully tagged git:root" in stream_text(root[1])
    bad = api_build(daemon, b"", remote=url + "#v1:nosuchdir")
    assert bad[0] >= 400 and "not found" in bad[1][0]["message"]


@pytest.fixture
def http_server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_url_contexts_and_add_url(daemon, http_server):
    root, base = http_server
    (root / "payload.bin").write_bytes(b"downloaded\n" * 1000)
    (root / "Dockerfile.txt").write_text(
        f"FROM busybox\nADD {base}/payload.bin /dl/\nADD {base}/payload.bin /renamed\n"
        "RUN stat -c '%a %s' /dl/payload.bin /renamed\n"
    )
    (root / "ctx.tar").write_bytes(tar_of({"Dockerfile": "FROM busybox\nCOPY f /f\n", "f": "from url tar\n"}))
    plain = dockyard_build(daemon, "-t", "url:df", f"{base}/Dockerfile.txt")
    assert plain.returncode == 0, plain.stderr.decode()
    out = plain.stdout.decode()
    assert "Downloading" in out
    assert "600 11000\n600 11000\n" in out
    assert run(daemon, "url:df", "head", "-1", "/renamed") == "downloaded\n"
    tarred = dockyard_build(daemon, "-t", "url:tar", f"{base}/ctx.tar")
    assert tarred.returncode == 0, tarred.stderr.decode()
    assert run(daemon, "url:tar", "cat", "/f") == "from url tar\n"
    missing = dockyard_build(daemon, f"{base}/nope")
    assert missing.returncode != 0 and "404" in missing.stderr.decode()


# -- failures -------------------------------------------------------------------------------------------


def test_bad_dockerfiles_are_refused_before_anything_runs(daemon, tmp_path):
    cases = [
        ("FROM busybox\nRUNN echo\n", "Dockerfile parse error line 2: unknown instruction: RUNN"),
        ("RUN echo\n", "Dockerfile parse error line 1: RUN: no build stage"),
        ('FROM busybox\nCMD ["a", b]\n', "Dockerfile parse error line 2: CMD: invalid JSON array"),
        ("FROM busybox\nCOPY justone\n", "line 2: COPY requires at least two arguments"),
    ]
    for text, fragment in cases:
        ctx = write_context(tmp_path / f"c{abs(hash(text))}", {"Dockerfile": text})
        result = docker_build(daemon, str(ctx))
        assert result.returncode == 1
        assert "Error response from daemon: Dockerfile parse error line" in result.stderr.decode()
        assert fragment in result.stderr.decode()
        assert "Step 1/" not in result.stdout.decode()
        status, messages = api_build(daemon, tar_of({"Dockerfile": text}))
        assert status == 400 and fragment in messages[0]["message"]
    missing = api_build(daemon, tar_of({"other": "x"}))
    assert missing[0] == 404 and "Cannot locate specified Dockerfile: Dockerfile" in missing[1][0]["message"]
    nofrom = api_build(daemon, tar_of({"Dockerfile": "FROM no-such-image\n"}))
    assert nofrom[0] == 200 and "no-such-image" in nofrom[1][-1]["error"]


def test_failed_run(daemon, tmp_path):
    ctx = write_context(
        tmp_path / "ctx",
        {"Dockerfile": "FROM busybox\nENV A=1\nRUN echo output before failing; exit 3\nRUN echo never\n"},
    )
    result = docker_build(daemon, str(ctx))
    assert result.returncode == 3
    out, err = result.stdout.decode(), result.stderr.decode()
    assert "output before failing" in out
    assert "The command '/bin/sh -c echo output before failing; exit 3' returned a non-zero code: 3" in err
    last_good = re.findall(r" ---> ([0-9a-f]{12})\n", out)[-1]
    assert inspect(daemon, last_good)["Config"]["Env"][-1] == "A=1"
    assert "never" not in out
    assert daemon.docker("ps", "-aq").stdout.strip() == b""  # the failed container is gone too
    dy = dockyard_build(daemon, str(ctx))
    assert dy.returncode == 3 and "returned a non-zero code: 3" in dy.stderr.decode()


def test_keep_intermediate_containers_when_asked(daemon, tmp_path):
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN echo kept\n"})
    result = docker_build(daemon, "--rm=false", "--no-cache", str(ctx))
    assert result.returncode == 0, result.stderr.decode()
    assert "Removing intermediate container" not in result.stdout.decode()
    left = daemon.docker("ps", "-aq").stdout.split()
    assert len(left) == 1
    assert daemon.docker("rm", left[0].decode()).returncode == 0


def test_add_local_archive_formats(daemon, tmp_path):
    files = {}
    for suffix, mode in (("tar", "w"), ("tgz", "w:gz"), ("tbz", "w:bz2"), ("txz", "w:xz")):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode=mode) as tar:
            data = suffix.encode()
            info = tarfile.TarInfo(f"inside-{suffix}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        files[f"a.{suffix}"] = buf.getvalue()
    files["Dockerfile"] = 'FROM busybox\nADD a.tar a.tgz a.tbz a.txz /x/\nCMD ["ls", "/x"]\n'
    ctx = write_context(tmp_path / "ctx", files)
    result = docker_build(daemon, "-t", "archives", str(ctx))
    assert result.returncode == 0, result.stderr.decode()
    assert run(daemon, "archives").split() == ["inside-tar", "inside-tbz", "inside-tgz", "inside-txz"]
