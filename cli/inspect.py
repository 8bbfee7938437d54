"""``inspect``: low-level JSON of containers and images.

The top-level command tries each kind in turn (container, then image) the way
docker's ``inspect`` does, and a name no kind knows is reported as ``Error: No
such object: NAME``.  Output is a JSON array indented by 4 spaces, or one line
per object rendered with ``-f/--format``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Annotated, Any

import typer

from .client import APIClient, CliError, DaemonError
from .context import Failures, client
from .template import TemplateError, render

__all__ = ["inspect", "inspect_objects", "dump_json"]


class Kind(str, Enum):
    container = "container"
    image = "image"


LOOKUPS: dict[Kind, Callable[[APIClient, str], dict[str, Any]]] = {
    Kind.container: APIClient.inspect_container,
    Kind.image: APIClient.inspect_image,
}

FormatOption = Annotated[
    str | None,
    typer.Option("-f", "--format", help="Format output using a Go template subset, e.g. '{{.State.ExitCode}}'"),
]


def dump_json(objects: Sequence[Any]) -> str:
    """docker's indented inspect output (``json.Indent`` with 4 spaces)."""
    return json.dumps(list(objects), indent=4, ensure_ascii=False)


def inspect_objects(api: APIClient, names: Sequence[str], kinds: Sequence[Kind], fmt: str | None) -> None:
    """Look each name up as each kind in turn, print the results, exit 1 if any failed."""
    failures = Failures()
    found: list[dict[str, Any]] = []
    for name in names:
        last_not_found: DaemonError | None = None
        for kind in kinds:
            try:
                found.append(LOOKUPS[kind](api, name))
                break
            except DaemonError as exc:
                if exc.status != 404:
                    failures.report(exc)
                    break
                last_not_found = exc
        else:
            if len(kinds) == 1 and last_not_found is not None:
                failures.report(f"Error: {last_not_found.daemon_message}")
            else:
                failures.report(f"Error: No such object: {name}")
    if fmt:
        for obj in found:
            try:
                text = render(fmt, obj)
            except TemplateError as exc:
                raise CliError(f"template: {exc}") from None
            typer.echo(text)
    else:
        typer.echo(dump_json(found))
    failures.exit_if_any()


def inspect(
    ctx: typer.Context,
    names: Annotated[list[str], typer.Argument(metavar="NAME|ID...", help="Containers or images")],
    format: FormatOption = None,
    type: Annotated[Kind | None, typer.Option("--type", help="Only inspect objects of this type")] = None,
) -> None:
    """Return low-level information on dockyard objects."""
    kinds = [type] if type else [Kind.container, Kind.image]
    inspect_objects(client(ctx), names, kinds, format)
