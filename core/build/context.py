"""The build context: a directory under ``<data-root>/tmp`` the builder copies from.

Where it comes from (``POST /build``):

* the request body: a tar (plain, gzip, bzip2 or xz), streamed to a file by
  the route and unpacked here chroot-style (:func:`dockyard.archive.apply_layer`);
  a body that is not a tar is taken as the Dockerfile itself, with no context
  (``docker build - < Dockerfile`` from clients that do not wrap it);
* ``remote=``: a git repository (``git://``, ``git@``, ``ssh://``, ``github.com/``,
  ``http(s)://....git``; ``#ref:subdir`` fragments), or an http(s) URL of a tar
  (a context) or of a plain Dockerfile.  ``file://`` URLs, local paths and git's
  other transports (``ext::`` runs a command) are refused: a client chooses the
  URL and the ref, and neither may make git read the daemon's files or run
  anything (git runs with ``protocol.allow=never`` plus the network transports,
  refs are plain names, and ``--end-of-options`` or ``--`` ends every option list).

Then ``.dockerignore`` is applied (after the Dockerfile and the ignore file
have been read: both reach the builder even if they ignore themselves).
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from dockyard import archive, rootfs
from dockyard.build.dockerignore import PatternMatcher, apply_to_tree, read_patterns
from dockyard.errors import DockyardError, InvalidParameter, NotFound
from dockyard.images import decompressed

log = logging.getLogger(__name__)

__all__ = ["Context", "is_git_url", "prepare", "fetch_git", "unpack_body"]


@dataclass
class Context:
    root: Path  #: the files COPY and ADD read ("" context: an empty directory)
    dockerfile: bytes
    dockerfile_name: str
    has_context: bool = True  #: False when only a Dockerfile was sent
    ignore: PatternMatcher | None = None
    origin: str = ""  #: "", or the remote URL


def _is_tar(head: bytes) -> bool:
    if len(head) < 512:
        return False
    try:
        tarfile.TarInfo.frombuf(head[:512], "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return head[:512] == bytes(512)  # an empty archive
    return True


def unpack_body(raw: BinaryIO, target: Path) -> bytes | None:
    """Unpack a (compressed) tar into ``target``; if ``raw`` is no tar, return its bytes (a Dockerfile)."""
    raw.seek(0)
    stream = decompressed(raw)
    head = stream.read(512)
    if not head:
        return b""
    if not _is_tar(head):
        raw.seek(0)
        data = decompressed(raw).read((1 << 20) + 1)
        if len(data) > 1 << 20:
            raise InvalidParameter("the build context is neither a tar archive nor a Dockerfile")
        return data
    raw.seek(0)
    stream = decompressed(raw)
    archive.apply_layer(target, stream)
    return None


# -- remote contexts ------------------------------------------------------------------------------


def is_git_url(url: str) -> bool:
    if url.startswith(("git://", "git@", "github.com/", "file://", "ssh://")):
        return True
    return bool(re.match(r"^https?://", url)) and bool(re.search(r"\.git(?:#.+)?$", url))


#: the transports a remote context may use (git's protocol.<name>.allow); everything else is never
GIT_TRANSPORTS = ("https", "http", "ssh", "git")
#: a host name, an IPv4 address or (urlsplit strips the brackets) an IPv6 one; never an option
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*")
#: a branch, tag or commit: git's ref-name rules, and never an option
_REF = re.compile(r"(?!-)(?!.*\.\.)(?!.*//)(?!.*@\{)(?!.*\.lock(?:/|$))(?!.*/$)(?!.*\.$)[A-Za-z0-9._/+-]{1,255}")


def _git_remote(remote: str) -> str:
    """The repository URL to fetch, refusing local paths and transports other than :data:`GIT_TRANSPORTS`."""
    from urllib.parse import urlsplit

    if remote.startswith("github.com/"):
        remote = "https://" + remote
    if any(c in remote for c in "\0\n\r\t ") or remote.startswith("-"):
        raise InvalidParameter(f"unable to prepare context: invalid git URL {remote!r}")
    scp = re.fullmatch(r"([A-Za-z0-9._-]+)@([^:/]+):(.+)", remote)  # git@host:owner/repo.git (ssh)
    if scp:
        user, host, path = scp.groups()
        if user.startswith("-") or not _HOST.fullmatch(host) or path.startswith("-"):
            raise InvalidParameter(f"unable to prepare context: invalid git URL {remote!r}")
        return remote
    parts = urlsplit(remote)
    if parts.scheme not in GIT_TRANSPORTS:
        raise InvalidParameter(
            f"unable to prepare context: git transport {parts.scheme or 'local path'!r} is not "
            f"allowed (use one of {', '.join(GIT_TRANSPORTS)})"
        )
    if not _HOST.fullmatch(parts.hostname or "") or (parts.username or "").startswith("-"):
        raise InvalidParameter(f"unable to prepare context: invalid git URL {remote!r}")
    return remote


def _git(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        GIT_TERMINAL_PROMPT="0",
        GIT_ASKPASS="true",
        GIT_SSH_COMMAND="ssh -oBatchMode=yes",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL="/dev/null",
        GIT_PROTOCOL_FROM_USER="0",
    )
    allow = ["-c", "protocol.allow=never"] + [a for t in GIT_TRANSPORTS for a in ("-c", f"protocol.{t}.allow=always")]
    return subprocess.run(["git", *allow, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=600)


def fetch_git(url: str, target: Path) -> Path:
    """Clone ``url`` (with an optional ``#ref:subdir``) into ``target``; returns the context directory."""
    remote, _, fragment = url.partition("#")
    ref, _, subdir = fragment.partition(":")
    remote = _git_remote(remote)
    if ref and not _REF.fullmatch(ref):
        raise InvalidParameter(f"unable to prepare context: invalid git reference {ref!r}")
    target.mkdir(parents=True, exist_ok=True)
    steps = [["init", "-q"], ["remote", "add", "--", "origin", remote]]
    for step in steps:
        done = _git(step, target)
        if done.returncode:
            raise InvalidParameter(f"unable to prepare context: git {' '.join(step)}: {done.stderr.strip()}")
    wanted = ref or "HEAD"
    done = _git(["fetch", "-q", "--depth", "1", "--end-of-options", "origin", wanted], target)
    if done.returncode:  # dumb transports and some servers refuse shallow or by-commit fetches
        done = _git(["fetch", "-q", "--tags", "--end-of-options", "origin"], target)
        if done.returncode:
            raise InvalidParameter(f"unable to prepare context: unable to fetch {remote}: {done.stderr.strip()}")
        checkout = ref or "origin/HEAD"
        if ref and _git(["rev-parse", "-q", "--verify", "--end-of-options", f"origin/{ref}"], target).returncode == 0:
            checkout = f"origin/{ref}"
    else:
        checkout = "FETCH_HEAD"
    # checkout has no --end-of-options; "--" after the commit does it (validated refs never start with "-")
    done = _git(["checkout", "-q", checkout, "--"], target)
    if done.returncode:
        raise InvalidParameter(
            f"unable to prepare context: unable to checkout {ref or 'HEAD'} of {remote}: {done.stderr.strip()}"
        )
    done = _git(["submodule", "update", "--init", "--recursive", "--depth", "1"], target)
    if done.returncode:
        raise InvalidParameter(f"unable to prepare context: submodules of {remote}: {done.stderr.strip()}")
    if not subdir:
        return target
    parts = [p for p in subdir.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidParameter(f"unable to prepare context: subdirectory {subdir!r} leaves the repository")
    path = rootfs.resolve_in_root(target, subdir)
    if not path.is_dir():
        raise InvalidParameter(f"unable to prepare context: subdirectory {subdir!r} not found in {remote}")
    return path


def fetch_url(url: str, target: Path, scratch: Path) -> bytes | None:
    """Download an http(s) context: a tar is unpacked into ``target``, anything else is the Dockerfile."""
    import httpx

    path = scratch / "remote-context"
    try:
        with httpx.Client(follow_redirects=True, timeout=httpx.Timeout(60.0)) as client:
            with client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise InvalidParameter(
                        f"unable to prepare context: error downloading remote context {url}: "
                        f"HTTP {response.status_code}"
                    )
                with open(path, "wb") as out:
                    for chunk in response.iter_bytes(1 << 20):
                        out.write(chunk)
    except httpx.HTTPError as exc:
        raise InvalidParameter(f"unable to prepare context: error downloading remote context {url}: {exc}") from None
    with open(path, "rb") as raw:
        result = unpack_body(raw, target)
    path.unlink()
    return result


# -- the Dockerfile and .dockerignore ---------------------------------------------------------------


def _read_dockerfile(root: Path, name: str) -> tuple[bytes, str]:
    name = name or "Dockerfile"
    if os.path.normpath(name.lstrip("/")).startswith(".."):
        raise InvalidParameter(f"Cannot locate specified Dockerfile: {name} (it is outside the build context)")
    candidates = [name]
    if name == "Dockerfile":
        candidates.append("dockerfile")
    for candidate in candidates:
        path = rootfs.resolve_in_root(root, candidate)
        if path.is_file():
            return path.read_bytes(), candidate
    raise NotFound(f"Cannot locate specified Dockerfile: {name}")


def prepare(workdir: Path, body: BinaryIO | None, remote: str, dockerfile_name: str) -> Context:
    """Make the context directory under ``workdir`` and read the Dockerfile out of it."""
    root = workdir / "context"
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    dockerfile_text: bytes | None = None
    origin = ""
    if remote:
        origin = remote
        if is_git_url(remote):
            root = fetch_git(remote, workdir / "git")
        elif re.match(r"^https?://", remote):
            dockerfile_text = fetch_url(remote, root, workdir)
        else:
            raise InvalidParameter(
                f"unable to prepare context: remote {remote!r} is neither a git repository nor an http(s) URL"
            )
    elif body is not None:
        dockerfile_text = unpack_body(body, root)
    else:
        dockerfile_text = b""
    if dockerfile_text is not None:  # a lone Dockerfile: no context
        if not dockerfile_text.strip():
            raise InvalidParameter(
                "the build context is empty: send a tar of the context, a Dockerfile, or use remote="
            )
        return Context(
            root=root,
            dockerfile=dockerfile_text,
            dockerfile_name=dockerfile_name or "Dockerfile",
            has_context=False,
            origin=origin,
        )
    text, name = _read_dockerfile(root, dockerfile_name)
    matcher = None
    ignore = root / ".dockerignore"
    if ignore.is_file() and not ignore.is_symlink():
        try:
            matcher = PatternMatcher(read_patterns(ignore.read_text(errors="replace")))
        except ValueError as exc:
            raise InvalidParameter(f"error reading .dockerignore: {exc}") from None
        try:
            apply_to_tree(root, matcher)
        except OSError as exc:
            raise DockyardError(f"applying .dockerignore: {exc}") from exc
    return Context(root=root, dockerfile=text, dockerfile_name=name, has_context=True, ignore=matcher, origin=origin)
