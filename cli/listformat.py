"""``--format`` for listings (``ps``, ``images``, ``network ls``, ``history``), as docker/cli's formatter does it.

Each row is a *context*: the fields docker documents for that listing
(``{{.ID}}``, ``{{.Names}}``, ``{{.Ports}}``..., all strings as docker prints
them), rendered through :mod:`dockyard.cli.template`.  A format starting with
``table`` prints a header, made by rendering the same template against the
listing's header names, and aligns the cells (tab-separated, as ``\\t`` in the
format) the way docker's tabwriter does; ``table`` alone is the listing's
default table, and ``json`` alone is ``{{json .}}``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Annotated, Any

import typer

from . import formatting as fmt
from .client import CliError
from .template import TemplateError, compile_template

__all__ = ["CONTAINER", "HISTORY", "IMAGE", "NETWORK", "ListFormat", "Listing", "render_listing"]

ListFormat = Annotated[
    str | None,
    typer.Option(
        "--format", help="Format output using a Go template: 'table {{.ID}}\\t{{.Names}}', '{{json .}}', 'json'"
    ),
]


class Listing:
    """One listing's fields: their header names and its default table."""

    def __init__(self, headers: dict[str, str], default: str) -> None:
        self.headers, self.default = headers, default


def _created_at(value: Any) -> str:
    """Go's ``time.Time.String()`` of a unix time, in UTC (docker prints local time; the daemon's is UTC)."""
    ts = fmt.parse_timestamp(value)
    if ts is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(ts))


def _labels(labels: dict[str, str] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items()))


def _label_of(labels: dict[str, str] | None) -> Callable[[str], str]:
    return lambda key: (labels or {}).get(key, "")


def container_row(c: dict[str, Any], no_trunc: bool = False, now: float | None = None) -> dict[str, Any]:
    command = c.get("Command") or ""
    image = c.get("Image") or ""
    if not no_trunc:
        command = fmt.ellipsis(command, 20)
        if image.startswith("sha256:"):
            image = fmt.short_id(image)
    names = [n[1:] if n.startswith("/") else n for n in c.get("Names") or []]
    if not no_trunc:
        names = [n for n in names if "/" not in n][:1] or names[:1]
    size = ""
    if "SizeRw" in c or "SizeRootFs" in c:
        size = f"{fmt.human_size(c.get('SizeRw') or 0)} (virtual {fmt.human_size(c.get('SizeRootFs') or 0)})"
    mounts = [m.get("Name") or m.get("Source") or "" for m in c.get("Mounts") or []]
    networks = sorted(((c.get("NetworkSettings") or {}).get("Networks") or {}).keys())
    return {
        "ID": fmt.short_id(c.get("Id", ""), no_trunc),
        "Names": ",".join(names),
        "Image": image,
        "Command": fmt.go_quote(command),
        "CreatedAt": _created_at(c.get("Created")),
        "RunningFor": fmt.time_ago(c.get("Created"), now),
        "Ports": fmt.format_ports(c.get("Ports")),
        "State": c.get("State") or "",
        "Status": c.get("Status") or "",
        "Size": size,
        "Labels": _labels(c.get("Labels")),
        "Label": _label_of(c.get("Labels")),
        "Mounts": ",".join(mounts),
        "LocalVolumes": str(sum(1 for m in c.get("Mounts") or [] if m.get("Type") == "volume")),
        "Networks": ",".join(networks),
    }


CONTAINER = Listing(
    {
        "ID": "CONTAINER ID",
        "Names": "NAMES",
        "Image": "IMAGE",
        "Command": "COMMAND",
        "CreatedAt": "CREATED AT",
        "RunningFor": "CREATED",
        "Ports": "PORTS",
        "State": "STATE",
        "Status": "STATUS",
        "Size": "SIZE",
        "Labels": "LABELS",
        "Label": "LABEL",
        "Mounts": "MOUNTS",
        "LocalVolumes": "LOCAL VOLUMES",
        "Networks": "NETWORKS",
    },
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}",
)


def image_row(
    image: dict[str, Any], repository: str, tag: str, no_trunc: bool = False, now: float | None = None
) -> dict[str, Any]:
    """The row of one repository:tag of an image (``images`` lists an image once per name)."""
    digests = [d.partition("@")[2] for d in image.get("RepoDigests") or []]
    image_id = image.get("Id", "")
    size = fmt.human_size(image.get("Size") or 0)
    return {
        "Repository": repository,
        "Tag": tag,
        "ID": image_id if no_trunc else fmt.short_id(image_id),
        "Digest": digests[0] if digests else "<none>",
        "CreatedSince": fmt.time_ago(image.get("Created"), now),
        "CreatedAt": _created_at(image.get("Created")),
        "Size": size,
        "VirtualSize": size,
        "SharedSize": "N/A" if (image.get("SharedSize") or -1) < 0 else fmt.human_size(image["SharedSize"]),
        "UniqueSize": "N/A",
        "Containers": "N/A" if (image.get("Containers") or -1) < 0 else str(image["Containers"]),
        "Labels": _labels(image.get("Labels")),
        "Label": _label_of(image.get("Labels")),
    }


IMAGE = Listing(
    {
        "Repository": "REPOSITORY",
        "Tag": "TAG",
        "ID": "IMAGE ID",
        "Digest": "DIGEST",
        "CreatedSince": "CREATED",
        "CreatedAt": "CREATED AT",
        "Size": "SIZE",
        "VirtualSize": "VIRTUAL SIZE",
        "SharedSize": "SHARED SIZE",
        "UniqueSize": "UNIQUE SIZE",
        "Containers": "CONTAINERS",
        "Labels": "LABELS",
        "Label": "LABEL",
    },
    "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}",
)


def network_row(n: dict[str, Any], no_trunc: bool = False, now: float | None = None) -> dict[str, Any]:
    return {
        "ID": n.get("Id", "") if no_trunc else n.get("Id", "")[:12],
        "Name": n.get("Name", ""),
        "Driver": n.get("Driver", ""),
        "Scope": n.get("Scope", ""),
        "IPv6": "true" if n.get("EnableIPv6") else "false",
        "Internal": "true" if n.get("Internal") else "false",
        "Labels": _labels(n.get("Labels")),
        "Label": _label_of(n.get("Labels")),
        "CreatedAt": n.get("Created", ""),
    }


NETWORK = Listing(
    {
        "ID": "NETWORK ID",
        "Name": "NAME",
        "Driver": "DRIVER",
        "Scope": "SCOPE",
        "IPv6": "IPV6",
        "Internal": "INTERNAL",
        "Labels": "LABELS",
        "Label": "LABEL",
        "CreatedAt": "CREATED AT",
    },
    "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
)


def history_row(entry: dict[str, Any], no_trunc: bool = False, now: float | None = None) -> dict[str, Any]:
    created_by = entry.get("CreatedBy") or ""
    if not no_trunc and len(created_by) > 45:
        created_by = created_by[:44] + "…"
    image_id = entry["Id"] if entry["Id"] == "<missing>" else fmt.short_id(entry["Id"], no_trunc)
    return {
        "ID": image_id,
        "CreatedSince": fmt.time_ago(entry.get("Created"), now),
        "CreatedAt": _created_at(entry.get("Created")),
        "CreatedBy": created_by,
        "Size": fmt.human_size(entry.get("Size") or 0),
        "Comment": entry.get("Comment") or "",
    }


HISTORY = Listing(
    {
        "ID": "IMAGE",
        "CreatedSince": "CREATED",
        "CreatedAt": "CREATED AT",
        "CreatedBy": "CREATED BY",
        "Size": "SIZE",
        "Comment": "COMMENT",
    },
    "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}",
)


def render_listing(listing: Listing, format: str, rows: Iterable[dict[str, Any]]) -> str:
    """The text of ``rows`` under ``format`` (see the module docstring)."""
    text = format.strip()
    if text == "json":
        text = "{{json .}}"
    table = text == "table" or text.startswith("table ")
    if text == "table":
        text = listing.default
    if table:
        text = text[len("table") :]
    # docker/cli Context.preFormat: the literal escapes \t and \n users type in a shell
    text = text.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    try:
        template = compile_template(text)
        lines = [template.render(row) for row in rows]
        if not table:
            return "".join(line + "\n" for line in lines)
        header = template.render(listing.headers)
    except TemplateError as exc:
        raise CliError(f"template: {exc}") from None
    return _tabwrite([header, *lines])


def _tabwrite(lines: list[str]) -> str:
    """Go's ``tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)``: tab-separated cells padded by 3, at least 10 wide."""
    table = [line.split("\t") for line in lines]
    columns = max(len(row) for row in table)
    widths = [max([len(row[i]) + 3 for row in table if i < len(row) - 1] + [10]) for i in range(columns)]
    out = []
    for row in table:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        out.append("".join(cells) + row[-1])
    return "\n".join(out) + "\n"
