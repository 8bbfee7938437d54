"""``dockyard events``: the daemon's event stream, one line per event as docker prints it."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer

from dockyard.timefmt import iso_ns, parse_iso

from .client import CliError
from .context import client
from .filters import parse_filters


def _when(value: str | None) -> str | None:
    """``--since``/``--until``: unix seconds, RFC 3339, or a duration like ``10m`` back from now."""
    if not value:
        return None
    if value.replace(".", "", 1).isdigit():
        return value
    units = {"s": 1, "m": 60, "h": 3600}
    if value[-1] in units and value[:-1].replace(".", "", 1).isdigit():
        return str(int(time.time() - float(value[:-1]) * units[value[-1]]))
    try:
        return str(int(parse_iso(value)))
    except ValueError:
        raise CliError(f"invalid timestamp {value!r}: use unix seconds, RFC 3339 or a duration (10m)") from None


def format_event(event: dict) -> str:
    nanos = event.get("timeNano") or event.get("time", 0) * 1_000_000_000
    actor = event.get("Actor") or {}
    attributes = ", ".join(f"{k}={v}" for k, v in sorted((actor.get("Attributes") or {}).items()))
    line = f"{iso_ns(nanos)} {event.get('Type')} {event.get('Action')} {actor.get('ID', '')}"
    return f"{line} ({attributes})" if attributes else line


def events(
    ctx: typer.Context,
    since: Annotated[str | None, typer.Option("--since", help="Show all events created since timestamp")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Stream events until this timestamp")] = None,
    filter: Annotated[
        list[str] | None,
        typer.Option(
            "-f", "--filter", help="Filter output based on conditions provided (type=, event=, container=, image=)"
        ),
    ] = None,
    format: Annotated[str | None, typer.Option("--format", help="'{{json .}}' prints the raw JSON")] = None,
) -> None:
    """Get real time events from the server."""
    params = {"since": _when(since), "until": _when(until), "filters": parse_filters(filter)}
    with client(ctx).stream("GET", "/events", params=params) as response:
        for line in response.iter_lines():
            if not line.strip():
                continue
            event = json.loads(line)
            typer.echo(json.dumps(event) if format and "json" in format else format_event(event))
