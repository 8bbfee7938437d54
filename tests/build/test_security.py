"""Issue 13, hole 1: a build's remote context cannot make the daemon run commands or read its files.

Each test performs the attack and checks that it failed: a 4xx naming the problem,
and no trace of the attack on the host.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.helpers.build import api_build, docker_build, git, write_context

pytestmark = [pytest.mark.requires_root, pytest.mark.requires_lxc, pytest.mark.integration]


def _repo(path, files):
    repo = write_context(path, files)
    git("init", "-q", cwd=repo)
    git("add", "-A", cwd=repo)
    git("commit", "-qm", "init", cwd=repo)
    return repo


@pytest.mark.parametrize(
    "remote",
    [
        "git@x/y#--upload-pack=touch {marker};",
        "file://{repo}#--upload-pack=touch {marker};",
        "git://127.0.0.1:1/r#--upload-pack=touch {marker};",
        "https://example.invalid/r.git#-c core.sshCommand=touch {marker}",
        "ext::sh -c touch% {marker}",
        "ssh://-oProxyCommand=touch% {marker}/r",
        "git@-oProxyCommand=touch {marker}:r",
    ],
)
def test_remote_context_cannot_run_host_commands(daemon, tmp_path, remote):
    marker = tmp_path / "pwned"
    repo = _repo(tmp_path / "repo", {"Dockerfile": "FROM busybox\n"})
    status, messages = api_build(daemon, b"", remote=remote.format(marker=marker, repo=repo))
    assert status == 400, messages
    assert "unable to prepare context" in messages[0]["message"]
    assert not marker.exists()


def test_file_urls_and_local_paths_are_refused(daemon, tmp_path):
    """A file:// context would read any repository on the daemon's host."""
    repo = _repo(tmp_path / "secret", {"Dockerfile": "FROM busybox\nCOPY secret /secret\n", "secret": "s3cret\n"})
    for remote in (f"file://{repo}", f"file://{repo}#master", f"{repo}.git"):
        status, messages = api_build(daemon, b"", remote=remote, t="stolen:file")
        assert status == 400, (remote, messages)
        assert "not allowed" in messages[0]["message"] or "neither" in messages[0]["message"]


def test_the_docker_cli_attack_is_refused(daemon, tmp_path):
    marker = tmp_path / "pwned"
    result = docker_build(daemon, f"git@x/y#--upload-pack=touch {marker};")
    assert result.returncode != 0 and not marker.exists()


def test_submodules_cannot_use_file_urls(daemon, tmp_path, git_server):  # noqa: F811
    """A repository served over git:// whose submodule points at a repository of the daemon's host."""
    base, server = git_server
    secret = _repo(tmp_path / "secret", {"secret": "s3cret\n"})
    main = _repo(base / "main", {"Dockerfile": "FROM busybox\nCOPY sub /sub\n"})
    subprocess.run(
        ["git", "-c", "protocol.file.allow=always", "submodule", "add", "-q", f"file://{secret}", "sub"],
        cwd=main,
        check=True,
        capture_output=True,
    )
    git("commit", "-qm", "submodule", cwd=main)
    status, messages = api_build(daemon, b"", remote=f"{server}/main", t="stolen:sub")
    assert status == 400, messages
    assert "submodules" in messages[0]["message"] and "file" in messages[0]["message"]
