"""``dockyard image ...``: ls, import, inspect, rm."""

from __future__ import annotations

import fnmatch
import os
import sys
from collections.abc import Iterator
from typing import Annotated, Any, BinaryIO

import typer

from . import formatting as fmt
from .client import CliError, iter_json_messages, quote_ref
from .context import Failures, client
from .filters import parse_filters
from .inspect import FormatOption, Kind, inspect_objects
from .listformat import IMAGE, ListFormat, image_row, render_listing

__all__ = ["app", "split_reference", "image_rows"]

#: ``dockyard image``: the sub-app's own settings; its commands are listed in cli/commands.py
app = typer.Typer(name="image", help="Manage images", no_args_is_help=True)

Images = Annotated[list[str], typer.Argument(metavar="IMAGE...", help="Images (name, name:tag or ID)")]
CHUNK = 64 * 1024


def split_reference(ref: str) -> tuple[str, str]:
    """``host:5000/repo:tag`` -> (``host:5000/repo``, ``tag``); the tag defaults to ``latest``."""
    if "@" in ref:
        raise CliError(f"refusing to create a tag with a digest reference: {ref}")
    name, sep, tag = ref.rpartition(":")
    if sep and "/" not in tag:
        return name, tag
    return ref, "latest"


# -- ls -----------------------------------------------------------------------------------------


def _matches(pattern: str, repo: str, tag: str) -> bool:
    """docker's ``reference`` filter: match ``repo:tag`` or just ``repo``."""
    return fnmatch.fnmatchcase(f"{repo}:{tag}", pattern) or fnmatch.fnmatchcase(repo, pattern)


def listed_names(image: dict[str, Any], reference: str | None = None) -> list[tuple[str, str]]:
    """The (repository, tag) rows ``images`` shows for ``image``: none when ``reference`` matches no tag."""
    tags = [t for t in image.get("RepoTags") or [] if t != "<none>:<none>"]
    pairs = [split_reference(t) for t in tags]
    if reference is not None:
        return [(r, t) for r, t in pairs if _matches(reference, r, t)]
    if not pairs:
        digests = [d for d in image.get("RepoDigests") or [] if d != "<none>@<none>"]
        repo = digests[0].partition("@")[0] if digests else "<none>"
        pairs = [(repo, "<none>")]
    return pairs


def image_rows(
    images: list[dict[str, Any]], *, no_trunc: bool, reference: str | None = None, now: float | None = None
) -> list[list[str]]:
    """One row per repository:tag (``<none>`` for untagged images)."""
    rows = []
    for image in images:
        pairs = listed_names(image, reference)
        image_id = image.get("Id", "")
        for repo, tag in pairs:
            rows.append(
                [
                    repo,
                    tag,
                    image_id if no_trunc else fmt.short_id(image_id),
                    fmt.time_ago(image.get("Created"), now),
                    fmt.human_size(image.get("Size") or 0),
                ]
            )
    return rows


IMAGE_HEADERS = ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]


def image_graph(images: list[dict[str, Any]], *, viz: bool) -> str:
    """The image parent graph as Docker 0.x printed it: a tree, or graphviz ``dot``."""
    by_parent: dict[str, list[dict[str, Any]]] = {}
    ids = {image["Id"] for image in images}
    for image in images:
        parent = image.get("ParentId") or ""
        by_parent.setdefault(parent if parent in ids else "", []).append(image)

    def tags(image: dict[str, Any]) -> list[str]:
        return [t for t in image.get("RepoTags") or [] if t != "<none>:<none>"]

    lines: list[str] = []
    if viz:
        lines.append("digraph docker {")
        for parent, children in sorted(by_parent.items()):
            for child in children:
                source = f'"{fmt.short_id(parent)}"' if parent else "base"
                lines.append(f' {source} -> "{fmt.short_id(child["Id"])}"')
                if tags(child):
                    label = "\\n".join([fmt.short_id(child["Id"]), *tags(child)])
                    lines.append(
                        f' "{fmt.short_id(child["Id"])}" [label="{label}",shape=box,'
                        'fillcolor="paleturquoise",style="filled,rounded"];'
                    )
        lines.append(" base [style=invisible]")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def walk(parent: str, indent: str) -> None:
        children = by_parent.get(parent, [])
        for n, child in enumerate(children):
            last = n == len(children) - 1
            text = (
                f"{indent}{'└─' if last else '├─'}{fmt.short_id(child['Id'])} Virtual Size: "
                f"{fmt.human_size(child.get('VirtualSize') or child.get('Size') or 0)}"
            )
            if tags(child):
                text += f" Tags: {', '.join(tags(child))}"
            lines.append(text)
            walk(child["Id"], indent + ("  " if last else "│ "))

    walk("", "")
    return "\n".join(lines) + ("\n" if lines else "")


def ls(
    ctx: typer.Context,
    repository: Annotated[
        str | None, typer.Argument(metavar="[REPOSITORY[:TAG]]", help="Only show images matching this reference")
    ] = None,
    all: Annotated[
        bool, typer.Option("-a", "--all", help="Show all images (default hides intermediate images)")
    ] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only show image IDs")] = False,
    no_trunc: Annotated[bool, typer.Option("--no-trunc", help="Don't truncate output")] = False,
    filter: Annotated[
        list[str] | None, typer.Option("-f", "--filter", help="Filter output based on conditions provided")
    ] = None,
    tree: Annotated[
        bool, typer.Option("--tree", "-t", help="Output graph in tree format (Docker 0.x's images -tree)")
    ] = False,
    viz: Annotated[
        bool,
        typer.Option("--viz", "-v", help="Output graph in graphviz format (Docker 0.x's `images -viz | dot -Tpng`)"),
    ] = False,
    format: ListFormat = None,
) -> None:
    """List images."""
    filters = parse_filters(filter) or {}
    if repository:
        filters.setdefault("reference", {})[repository] = True
    if tree or viz:
        everything = client(ctx).get_json("/images/json", all=True)
        typer.echo(image_graph(everything, viz=viz), nl=False)
        return
    images = client(ctx).get_json("/images/json", all=all, filters=filters or None)
    if format and not quiet:
        rows_ = (
            image_row(image, repo, tag, no_trunc) for image in images for repo, tag in listed_names(image, repository)
        )
        typer.echo(render_listing(IMAGE, format, rows_), nl=False)
        return
    rows = image_rows(images, no_trunc=no_trunc, reference=repository)
    if quiet:
        for row in rows:
            typer.echo(row[2])
        return
    typer.echo(fmt.render_table(IMAGE_HEADERS, rows), nl=False)


# -- import -------------------------------------------------------------------------------------


def _chunks(source: BinaryIO) -> Iterator[bytes]:
    while data := source.read(CHUNK):
        yield data


def import_(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(metavar="file|URL|-", help="Tarball: a file, a URL, or - for stdin")],
    repository: Annotated[
        str | None, typer.Argument(metavar="[REPOSITORY[:TAG]]", help="Name for the new image")
    ] = None,
    message: Annotated[
        str | None, typer.Option("-m", "--message", help="Set commit message for imported image")
    ] = None,
    change: Annotated[
        list[str] | None, typer.Option("-c", "--change", help="Apply Dockerfile instruction to the created image")
    ] = None,
) -> None:
    """Import the contents from a tarball to create a filesystem image."""
    repo, tag = split_reference(repository) if repository else (None, None)
    params: dict[str, Any] = {"repo": repo, "tag": tag, "message": message, "changes": change}
    body: Any = None
    opened: BinaryIO | None = None
    if source == "-":
        params["fromSrc"] = "-"
        stdin = sys.stdin.buffer if hasattr(sys.stdin, "buffer") else sys.stdin
        body = _chunks(stdin)
    elif "://" in source:
        params["fromSrc"] = source
    else:
        params["fromSrc"] = "-"
        try:
            opened = open(source, "rb")
        except OSError as exc:
            raise CliError(f"open {source}: {exc.strerror.lower() if exc.strerror else exc}") from None
        body = _chunks(opened)
    from .progress import Transfer

    progress = Transfer(f"Importing {source}", os.fstat(opened.fileno()).st_size if opened is not None else None)
    try:
        with (
            progress,
            client(ctx).stream(
                "POST",
                "/images/create",
                params=params,
                content=progress.wrap(body) if body is not None else None,
                headers={"Content-Type": "text/plain"},
            ) as response,
        ):
            for message_ in iter_json_messages(response):
                if message_.get("error") or message_.get("errorDetail"):
                    detail = message_.get("errorDetail") or {}
                    raise CliError(str(message_.get("error") or detail.get("message")))
                status = message_.get("status")
                if status:
                    prefix = f"{message_['id']}: " if message_.get("id") else ""
                    typer.echo(f"{prefix}{status}")
    finally:
        if opened is not None:
            opened.close()


# -- inspect / rm -------------------------------------------------------------------------------


def inspect(ctx: typer.Context, images: Images, format: FormatOption = None) -> None:
    """Display detailed information on one or more images."""
    inspect_objects(client(ctx), images, [Kind.image], format)


def rm(
    ctx: typer.Context,
    images: Images,
    force: Annotated[bool, typer.Option("-f", "--force", help="Force removal of the image")] = False,
    no_prune: Annotated[bool, typer.Option("--no-prune", help="Do not delete untagged parents")] = False,
) -> None:
    """Remove one or more images."""
    api = client(ctx)
    failures = Failures()
    for name in images:
        try:
            answer = api.delete(f"/images/{quote_ref(name)}", force=force, noprune=no_prune).json()
        except CliError as exc:
            failures.report(exc)
            continue
        for item in answer or []:
            if item.get("Untagged"):
                typer.echo(f"Untagged: {item['Untagged']}")
            if item.get("Deleted"):
                typer.echo(f"Deleted: {item['Deleted']}")
    failures.exit_if_any()
