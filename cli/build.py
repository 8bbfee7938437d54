"""``dockyard build [OPTIONS] PATH | URL | -``: build an image from a Dockerfile.

The context is streamed to the daemon as a tar made on the fly (a writer
thread and a pipe: never held whole in memory), with ``.dockerignore`` applied
on this side as the docker CLI does (the Dockerfile and ``.dockerignore``
always go, the daemon drops them from COPY when ignored).

* ``PATH``: a directory; ``-f`` may name a Dockerfile inside it, outside it
  (sent under a hidden name), or ``-`` (read from stdin);
* ``-``: stdin holds a tar of the context (plain or compressed), or just a
  Dockerfile (then there is no context, and COPY/ADD of local files fail);
* ``URL``: a git repository (``git://``, ``git@``, ``github.com/``,
  ``https://...git``, ``file://``, with ``#ref:subdir``) or an http(s) URL of a
  tar or a Dockerfile, fetched by the daemon (``remote=``).

Progress is printed as it arrives; the last line names the image.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from .client import CliError, iter_json_messages

__all__ = ["build"]

CHUNK = 1 << 16


def _is_remote(value: str) -> bool:
    return value.startswith(("http://", "https://", "git://", "git@", "github.com/", "file://", "ssh://"))


def _ignore_matcher(context: Path):
    from dockyard.build.dockerignore import PatternMatcher, read_patterns

    path = context / ".dockerignore"
    if not path.is_file():
        return None
    try:
        return PatternMatcher(read_patterns(path.read_text(errors="replace")))
    except ValueError as exc:
        raise CliError(f"error reading .dockerignore: {exc}") from None


def _walk(context: Path, matcher, always: set[str]) -> Iterator[tuple[str, str]]:
    """(host path, archive name) of every entry to send, in tree order."""
    top = os.fspath(context)
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, top)
        keep_dirs = []
        for name in dirnames:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            path = os.path.join(dirpath, name)
            if matcher is not None and matcher.matches(rel) and not matcher.has_exclusions:
                continue  # nothing below can be re-included
            if os.path.islink(path):  # os.walk does not descend into links: send the link itself
                if matcher is None or not matcher.matches(rel):
                    yield path, rel
                continue
            keep_dirs.append(name)
            if matcher is None or not matcher.matches(rel):
                yield path, rel
        dirnames[:] = keep_dirs
        for name in sorted(filenames):
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if matcher is not None and matcher.matches(rel) and rel not in always:
                continue
            yield os.path.join(dirpath, name), rel


def _context_tar(context: Path, dockerfile_rel: str | None, extra: tuple[str, bytes] | None) -> Iterator[bytes]:
    """The context as a stream of tar chunks (made in a thread, read through a pipe)."""
    matcher = _ignore_matcher(context)
    always = {".dockerignore"} | ({dockerfile_rel} if dockerfile_rel else set())
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            with (
                os.fdopen(write_fd, "wb") as out,
                tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar,
            ):
                for path, name in _walk(context, matcher, always):
                    info = tar.gettarinfo(path, name)
                    if info is None:
                        continue
                    info.uid = info.gid = 0  # as the docker CLI sends it
                    info.uname = info.gname = ""
                    if info.isreg():
                        with open(path, "rb") as f:
                            tar.addfile(info, f)
                    else:
                        tar.addfile(info)
                if extra is not None:
                    import io

                    name, data = extra
                    info = tarfile.TarInfo(name)
                    info.size, info.mode = len(data), 0o600
                    tar.addfile(info, io.BytesIO(data))
        except BaseException as exc:  # reported after the upload
            failure.append(exc)

    thread = threading.Thread(target=produce, name="build-context", daemon=True)
    thread.start()
    with os.fdopen(read_fd, "rb") as stream:
        while chunk := stream.read(CHUNK):
            yield chunk
    thread.join()
    if failure:
        raise CliError(f"error sending the build context: {failure[0]}")


def _is_tar(head: bytes) -> bool:
    """A tar header block (its checksum checks out), or an empty archive."""
    if len(head) < 512:
        return False
    try:
        tarfile.TarInfo.frombuf(head[:512], "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return head[:512] == bytes(512)
    return True


def _stdin_chunks(first: bytes, stdin) -> Iterator[bytes]:
    if first:
        yield first
    while chunk := stdin.read(CHUNK):
        yield chunk


def _build_args(values: list[str]) -> dict[str, str | None]:
    result: dict[str, str | None] = {}
    for value in values:
        key, sep, val = value.partition("=")
        result[key] = val if sep else os.environ.get(key)
    return result


def _labels(values: list[str]) -> dict[str, str]:
    result = {}
    for value in values:
        key, _, val = value.partition("=")
        result[key] = val
    return result


def build(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(metavar="PATH | URL | -", help="Build context")],
    tag: Annotated[
        list[str] | None,
        typer.Option("-t", "--tag", help="Name and optionally a tag (name:tag); may be given several times"),
    ] = None,
    file: Annotated[
        str | None, typer.Option("-f", "--file", help="Name of the Dockerfile (default: PATH/Dockerfile)")
    ] = None,
    quiet: Annotated[
        bool, typer.Option("-q", "--quiet", help="Suppress the build output and print image ID on success")
    ] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not use cache when building the image")] = False,
    pull: Annotated[bool, typer.Option("--pull", help="Always attempt to pull a newer version of the image")] = False,
    rm: Annotated[
        bool, typer.Option("--rm/--no-rm", help="Remove intermediate containers after a build (default true)")
    ] = True,
    force_rm: Annotated[bool, typer.Option("--force-rm", help="Always remove intermediate containers")] = False,
    build_arg: Annotated[
        list[str] | None,
        typer.Option("--build-arg", help="Set build-time variables (KEY=VALUE, or KEY from the environment)"),
    ] = None,
    label: Annotated[list[str] | None, typer.Option("--label", help="Set metadata for an image")] = None,
    target: Annotated[str | None, typer.Option("--target", help="Set the target build stage to build")] = None,
    network: Annotated[str | None, typer.Option("--network", help="Networking mode for the RUN instructions")] = None,
    add_host: Annotated[
        list[str] | None, typer.Option("--add-host", help="Add a custom host-to-IP mapping (host:ip)")
    ] = None,
    iidfile: Annotated[str | None, typer.Option("--iidfile", help="Write the image ID to the file")] = None,
) -> None:
    """Build an image from a Dockerfile."""
    from .context import client

    params: dict[str, Any] = {
        "t": tag or None,
        "q": quiet,
        "nocache": no_cache,
        "pull": pull,
        "rm": "1" if rm else "0",
        "forcerm": force_rm,
        "target": target,
        "networkmode": network,
        "extrahosts": ",".join(add_host) if add_host else None,
        "buildargs": json.dumps(_build_args(build_arg or [])) if build_arg else None,
        "labels": json.dumps(_labels(label or [])) if label else None,
    }
    headers = {"Content-Type": "application/x-tar"}
    body: Any = None
    stdin = sys.stdin.buffer if hasattr(sys.stdin, "buffer") else sys.stdin
    if path == "-":
        if file == "-":
            raise CliError("invalid argument: can't use stdin for both build context and dockerfile")
        first = stdin.read(CHUNK)
        compressed = first.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00"))
        if not compressed and not _is_tar(first[:512]):
            headers["Content-Type"] = "text/plain"  # a lone Dockerfile: no context
        body = _stdin_chunks(first, stdin)
        if file:
            params["dockerfile"] = file
    elif _is_remote(path):
        params["remote"] = path
        if file:
            params["dockerfile"] = file
    else:
        context = Path(path)
        if not context.is_dir():
            raise CliError(f'unable to prepare context: path "{path}" not found')
        extra = None
        dockerfile_rel = None
        if file == "-":
            name = f".dockerfile.{secrets.token_hex(10)}"
            extra = (name, stdin.read())
            params["dockerfile"] = name
        else:
            dockerfile = Path(file) if file else context / "Dockerfile"
            if file and not dockerfile.is_absolute() and not dockerfile.exists():
                dockerfile = context / file
            if not dockerfile.exists() and not file and (context / "dockerfile").exists():
                dockerfile = context / "dockerfile"
            if not dockerfile.is_file():
                raise CliError(
                    f"unable to prepare context: unable to evaluate symlinks in Dockerfile path: "
                    f"lstat {dockerfile.absolute()}: no such file or directory"
                )
            try:
                dockerfile_rel = os.path.relpath(dockerfile.resolve(), context.resolve())
            except ValueError:
                dockerfile_rel = ".."
            if dockerfile_rel.startswith(".."):
                name = f".dockerfile.{secrets.token_hex(10)}"
                extra = (name, dockerfile.read_bytes())
                params["dockerfile"] = name
                dockerfile_rel = None
            else:
                params["dockerfile"] = dockerfile_rel
        from .progress import Transfer

        body = Transfer("Sending build context to dockyard daemon").wrap(_context_tar(context, dockerfile_rel, extra))
    image_id = _send(client(ctx), params, body, headers, quiet)
    if iidfile:
        Path(iidfile).write_text(image_id)


def _send(api, params: dict[str, Any], body: Any, headers: dict[str, str], quiet: bool) -> str:
    image_id = ""
    last_stream = ""
    progress_shown = False
    tty = sys.stdout.isatty()
    with api.stream("POST", "/build", params=params, content=body, headers=headers) as response:
        for message in iter_json_messages(response):
            if message.get("error") or message.get("errorDetail"):
                detail = message.get("errorDetail") or {}
                if progress_shown:
                    typer.echo()
                code = detail.get("code") or 1
                raise CliError(str(message.get("error") or detail.get("message")), exit_code=int(code))
            aux = message.get("aux")
            if isinstance(aux, dict) and aux.get("ID"):
                image_id = aux["ID"]
                continue
            if "stream" in message:
                text = message["stream"]
                last_stream = text
                if progress_shown:
                    typer.echo()
                    progress_shown = False
                if not quiet:
                    sys.stdout.write(text)
                    sys.stdout.flush()
                continue
            status = message.get("status")
            if status and not quiet:
                line = f"{status} {message.get('progress') or ''}".rstrip()
                if tty:
                    sys.stdout.write("\r\x1b[2K" + line)
                    progress_shown = True
                else:
                    sys.stdout.write(line + "\n")
                sys.stdout.flush()
    if progress_shown:
        typer.echo()
    if quiet:
        image_id = last_stream.strip() or image_id
        typer.echo(image_id)
    return image_id
