"""Commands built on layers: ``diff``, ``commit``, ``export`` (containers) and
``history``, ``tag``, ``save``, ``load`` (images)."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any, BinaryIO

import typer

from . import formatting as fmt, image
from .client import CliError, iter_json_messages, quote_ref
from .context import client, stdout_bytes
from .listformat import HISTORY, ListFormat, history_row, render_listing

__all__ = ["commit", "diff", "export", "history", "load", "save", "tag"]

CHUNK = 1 << 20
KINDS = {0: "C", 1: "A", 2: "D"}


def _output(path: str | None) -> BinaryIO:
    if path:
        try:
            return open(path, "wb")
        except OSError as exc:
            raise CliError(f"failed to open {path}: {exc.strerror}") from None
    if sys.stdout.isatty():
        raise CliError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    return stdout_bytes()


def _download(ctx: typer.Context, path: str, params: dict[str, Any], output: str | None, label: str) -> None:
    from .progress import Transfer

    out = _output(output)
    try:
        with client(ctx).stream("GET", path, params=params) as response, Transfer(label) as progress:
            for chunk in progress.wrap(response.iter_bytes(CHUNK)):
                out.write(chunk)
        out.flush()
    finally:
        if output:
            out.close()


def diff(ctx: typer.Context, name: Annotated[str, typer.Argument(metavar="CONTAINER")]) -> None:
    """Inspect changes to files or directories on a container's filesystem."""
    for change in client(ctx).get_json(f"/containers/{quote_ref(name)}/changes") or []:
        typer.echo(f"{KINDS.get(change['Kind'], '?')} {change['Path']}")


def commit(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="CONTAINER")],
    repository: Annotated[str | None, typer.Argument(metavar="[REPOSITORY[:TAG]]")] = None,
    author: Annotated[str | None, typer.Option("-a", "--author", help='Author (e.g., "John <j@x.org>")')] = None,
    message: Annotated[str | None, typer.Option("-m", "--message", help="Commit message")] = None,
    change: Annotated[
        list[str] | None, typer.Option("-c", "--change", help="Apply Dockerfile instruction to the created image")
    ] = None,
    run: Annotated[str | None, typer.Option("--run", help="Config JSON to merge (Docker 0.x's -run)")] = None,
) -> None:
    """Create a new image from a container's changes."""
    repo, tag = image.split_reference(repository) if repository else (None, None)
    params = {
        "container": name,
        "repo": repo,
        "tag": tag if repository else None,
        "author": author,
        "comment": message,
        "changes": change,
    }
    body = None
    if run:
        import json

        try:
            overrides = json.loads(run)
        except json.JSONDecodeError as exc:
            raise CliError(f"--run must be a JSON object: {exc}") from None
        body = {**client(ctx).inspect_container(name)["Config"], **overrides}
    answer = client(ctx).post("/commit", body, **params).json()
    typer.echo(answer["Id"])


def export(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="CONTAINER")],
    output: Annotated[str | None, typer.Option("-o", "--output", help="Write to a file, instead of STDOUT")] = None,
) -> None:
    """Export a container's filesystem as a tar archive."""
    _download(ctx, f"/containers/{quote_ref(name)}/export", {}, output, f"Exporting {name}")


def history(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="IMAGE")],
    no_trunc: Annotated[bool, typer.Option("--no-trunc", help="Don't truncate output")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only show image IDs")] = False,
    format: ListFormat = None,
) -> None:
    """Show the history of an image."""
    rows = []
    entries = client(ctx).get_json(f"/images/{quote_ref(name)}/history")
    if format and not quiet:
        typer.echo(render_listing(HISTORY, format, (history_row(e, no_trunc) for e in entries)), nl=False)
        return
    for entry in entries:
        image_id = entry["Id"] if entry["Id"] == "<missing>" else fmt.short_id(entry["Id"], no_trunc)
        if quiet:
            typer.echo(image_id)
            continue
        created_by = entry.get("CreatedBy") or ""
        if not no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        rows.append(
            [
                image_id,
                fmt.time_ago(entry.get("Created")),
                created_by,
                fmt.human_size(entry.get("Size") or 0),
                entry.get("Comment") or "",
            ]
        )
    if not quiet:
        typer.echo(fmt.render_table(["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"], rows), nl=False)


def tag(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(metavar="SOURCE_IMAGE[:TAG]")],
    target: Annotated[str, typer.Argument(metavar="TARGET_IMAGE[:TAG]")],
    force: Annotated[bool, typer.Option("-f", "--force", help="Accepted for compatibility", hidden=True)] = False,
) -> None:
    """Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE."""
    repo, tag_ = image.split_reference(target)
    client(ctx).post(f"/images/{quote_ref(source)}/tag", None, repo=repo, tag=tag_)


def save(
    ctx: typer.Context,
    names: Annotated[list[str], typer.Argument(metavar="IMAGE...")],
    output: Annotated[str | None, typer.Option("-o", "--output", help="Write to a file, instead of STDOUT")] = None,
) -> None:
    """Save one or more images to a tar archive (docker-archive format)."""
    _download(ctx, "/images/get", {"names": names}, output, f"Saving {' '.join(names)}")


def load(
    ctx: typer.Context,
    input: Annotated[
        str | None, typer.Option("-i", "--input", help="Read from tar archive file, instead of STDIN")
    ] = None,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Suppress the load output")] = False,
) -> None:
    """Load an image from a tar archive or STDIN."""
    source: BinaryIO = open(input, "rb") if input else (sys.stdin.buffer if hasattr(sys.stdin, "buffer") else sys.stdin)
    if not input and os.isatty(source.fileno()):
        raise CliError("requested load from stdin, but stdin is empty")

    from .progress import Transfer

    def chunks():
        while data := source.read(CHUNK):
            yield data

    size = os.fstat(source.fileno()).st_size if input else None
    try:
        with (
            Transfer(f"Loading {input or 'stdin'}", size or None) as progress,
            client(ctx).stream(
                "POST",
                "/images/load",
                params={"quiet": int(quiet)},
                content=progress.wrap(chunks()),
                headers={"Content-Type": "application/x-tar"},
            ) as response,
        ):
            for message in iter_json_messages(response):
                if message.get("error"):
                    raise CliError(message["error"])
                if message.get("stream") and not quiet:
                    typer.echo(message["stream"], nl=False)
    finally:
        if input:
            source.close()
