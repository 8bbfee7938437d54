"""API coverage: every v1.41 endpoint and parameter, and what the daemon does with it.

The rows come from the Engine API spec (``moby-api-v1.41.yaml``): each query
parameter, and each field of a JSON body, nested objects included
(``HostConfig.RestartPolicy.Name``; ``*`` stands for a map key, and a list's
items have their fields under the list's name).  The status of a row comes
from the daemon's own tables: the routes of :func:`dockyard.daemon.app.make_app`
and the query and body models each route declares
(:class:`~dockyard.daemon.params.Endpoint`):

``implemented``
    declared by the route's model without a marker;
``values``
    implemented for the values listed; others are refused with a 400
    (:class:`~dockyard.models.api.Allowed`);
``refused``
    a non-default value is refused with a 400 naming it
    (:class:`~dockyard.models.api.Refused`);
``no-op``
    Docker itself does nothing with it in a request (:class:`~dockyard.models.api.NoOp`);
``endpoint 501`` / ``endpoint 503``
    the whole endpoint answers that error (a feature dockyard does not have;
    swarm endpoints on a node in no swarm);
``ignored``
    the route does not declare it: accepted and ignored.  Never allowed: the
    test suite fails on any such row (``tests/unit/test_api_coverage.py``);
``missing``
    no route serves the endpoint at all (a 404).  Never allowed either.

``docs/api-coverage.md`` is written by ``contrib/api_coverage.py`` with
:func:`render`; :func:`parse` reads it back, so the committed document is the
inventory the tests check the daemon against even where the spec is not at hand.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from dockyard.daemon.params import Endpoint
from dockyard.models.api import Allowed, NoOp, Refused, marker_of

__all__ = [
    "Row",
    "STATUSES",
    "app_endpoints",
    "daemon_endpoints",
    "find_spec",
    "load_spec",
    "parse",
    "render",
    "spec_rows",
    "statuses",
]

STATUSES = ("implemented", "values", "refused", "no-op", "endpoint 501", "endpoint 503", "ignored", "missing")
ALLOWED_STATUSES = STATUSES[:-2]


@dataclass(frozen=True)
class Row:
    method: str
    path: str
    where: str  # "query", "body" or "" (the endpoint itself)
    param: str  # "" for the endpoint row
    kind: str  # the spec's type
    status: str = "ignored"
    note: str = ""

    @property
    def key(self) -> tuple[str, str, str, str]:
        return self.method, self.path, self.where, self.param


# -- the spec side ------------------------------------------------------------------------------


def spec_rows(spec: dict) -> list[Row]:
    """Every endpoint of the spec (one row each) and every query parameter and JSON body field."""
    definitions = spec.get("definitions", {})
    rows: list[Row] = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            method = method.upper()
            rows.append(Row(method, path, "", "", "endpoint"))
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query":
                    rows.append(Row(method, path, "query", parameter["name"], _kind(parameter)))
                elif parameter["in"] == "body":
                    schema = parameter.get("schema", {})
                    for name, kind in _fields(schema, definitions, ""):
                        rows.append(Row(method, path, "body", name, kind))
    return rows


def _resolve(schema: dict, definitions: dict) -> dict:
    while "$ref" in schema:
        schema = definitions[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _properties(schema: dict, definitions: dict) -> dict[str, dict]:
    schema = _resolve(schema, definitions)
    found: dict[str, dict] = {}
    for part in schema.get("allOf", []):
        found.update(_properties(part, definitions))
    found.update(schema.get("properties", {}))
    return found


def _kind(schema: dict) -> str:
    kind = schema.get("type") or ("object" if "$ref" in schema else "")
    if kind == "array":
        items = schema.get("items", {})
        return f"array of {items.get('type') or 'object'}"
    return kind or "object"


def _fields(schema: dict, definitions: dict, prefix: str, depth: int = 0) -> list[tuple[str, str]]:
    """(dotted name, type) of every field of an object schema, nested objects included."""
    result: list[tuple[str, str]] = []
    if depth > 6:
        return result
    for name, field in _properties(schema, definitions).items():
        dotted = prefix + name
        resolved = _resolve(field, definitions)
        result.append((dotted, _kind(resolved)))
        if resolved.get("type") == "array":
            items = _resolve(resolved.get("items", {}), definitions)
            if _properties(items, definitions):
                result += _fields(items, definitions, dotted + ".", depth + 1)
        elif _properties(resolved, definitions):
            result += _fields(resolved, definitions, dotted + ".", depth + 1)
        elif isinstance(resolved.get("additionalProperties"), dict):
            values = _resolve(resolved["additionalProperties"], definitions)
            if _properties(values, definitions):
                result += _fields(values, definitions, dotted + ".*.", depth + 1)
    return result


# -- the daemon side ----------------------------------------------------------------------------


def _template(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def daemon_endpoints(app: web.Application) -> dict[tuple[str, str], Endpoint]:
    """(method, path template) -> the route's declaration, for every unversioned route of ``app``."""
    found: dict[tuple[str, str], Endpoint] = {}
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter") or ""
        if not path or path.startswith("/v{version"):
            continue
        endpoint = getattr(route.handler, "endpoint", None)
        found[(route.method, _template(path))] = endpoint if isinstance(endpoint, Endpoint) else Endpoint()
    return found


def statuses(rows: Iterable[Row], endpoints: dict[tuple[str, str], Endpoint]) -> list[Row]:
    """``rows`` with the status and note the daemon's declarations give them."""
    result = []
    for row in rows:
        endpoint = endpoints.get((row.method, _template(row.path)))
        status, note = _status(row, endpoint)
        result.append(Row(row.method, row.path, row.where, row.param, row.kind, status, note))
    return result


def _status(row: Row, endpoint: Endpoint | None) -> tuple[str, str]:
    if endpoint is None:
        return "missing", "no route"
    if endpoint.refused is not None:
        return f"endpoint {endpoint.refused.status}", endpoint.refused.message if row.where == "" else ""
    if row.where == "":
        return "implemented", _filters_note(endpoint)
    if row.where == "query":
        if endpoint.query is None:
            return "ignored", ""
        for name, info in endpoint.query.model_fields.items():
            if (info.alias or name) == row.param:
                return _marker_status(endpoint.query, name)
        return "ignored", ""
    if endpoint.binary_body and endpoint.body is None:
        return "ignored", "binary body route has no JSON model"
    if endpoint.body is None:
        return "ignored", ""
    return _body_status(endpoint.body, row.param.split("."))


def _filters_note(endpoint: Endpoint) -> str:
    from dockyard.daemon.params import FilterKeys

    if endpoint.query is None:
        return ""
    for info in endpoint.query.model_fields.values():
        for item in info.metadata:
            if isinstance(item, FilterKeys):
                return "filters: " + ", ".join(f"`{k}`" for k in item.keys)
    return ""


def _marker_status(model: type[BaseModel], name: str) -> tuple[str, str]:
    marker = marker_of(model, name)
    if isinstance(marker, Refused):
        return "refused", marker.why
    if isinstance(marker, Allowed):
        shown = ", ".join(f"`{v}`" if v != "" else '`""`' for v in marker.values if v is not None)
        return "values", shown + (f" ({marker.why})" if marker.why else "")
    if isinstance(marker, NoOp):
        return "no-op", marker.why
    return "implemented", ""


def _model_in(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The pydantic model an annotation holds (directly, in a list or as dict values), and whether it
    is a container of something else (handled as a whole)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _model_in(typing.get_args(annotation)[0])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (list, tuple) and args:
        return _model_in(args[0])
    if origin is dict and len(args) == 2:
        return _model_in(args[1])
    for arg in args:  # Optional / unions
        model, _ = _model_in(arg)
        if model is not None:
            return model, False
    return None, True


def _body_status(model: type[BaseModel], parts: list[str]) -> tuple[str, str]:
    head, rest = parts[0], parts[1:]
    if head == "*":
        return _body_status(model, rest) if rest else ("implemented", "")
    for name, info in model.model_fields.items():
        if (info.alias or name) != head:
            continue
        status, note = _marker_status(model, name)
        if status != "implemented" or not rest:
            return status, note
        inner, _ = _model_in(info.annotation)
        if inner is None:
            return "implemented", "handled as a whole"
        return _body_status(inner, rest[1:] if rest[0] == "*" else rest)
    return "ignored", ""


# -- the document -------------------------------------------------------------------------------

_HEADER = """# Engine API v1.41 coverage

Generated by `contrib/api_coverage.py` from the v1.41 spec (`moby-api-v1.41.yaml`) and the
daemon's route and model declarations (`dockyard.daemon.coverage`); do not edit by hand.
Every query parameter and JSON body field is listed with what the daemon does with it:

| status | meaning |
|---|---|
| implemented | as Docker implements it |
| values | implemented for the values listed; any other value is a 400 naming the field |
| refused | not implemented: any value but the default is a 400 naming the field |
| no-op | Docker itself does nothing with it in a request (inspect output echoed back); dropped |
| endpoint 501 / 503 | the whole endpoint answers that error |
| ignored | accepted and ignored: **must not occur** (the tests fail on it) |
| missing | no route: **must not occur** |

Default values (what the docker CLI sends for options not given: `""`, `0`, `false`, `null`,
`[]`, `{}`) are always accepted.  An unknown `filters` key is a 400 `Invalid filter 'key'`.
"""


def render(rows: list[Row]) -> str:
    counts = {s: sum(1 for r in rows if r.status == s and r.where) for s in STATUSES}
    lines = [_HEADER, "## Summary", "", "| status | parameters |", "|---|---|"]
    lines += [f"| {s} | {counts[s]} |" for s in STATUSES]
    current = None
    for row in rows:
        if (row.method, row.path) != current:
            current = (row.method, row.path)
            lines += [
                "",
                f"## {row.method} {row.path}",
                "",
                f"Endpoint: **{row.status}**" + (f" — {row.note}" if row.note else ""),
                "",
                "| parameter | in | type | status | notes |",
                "|---|---|---|---|---|",
            ]
            continue
        lines.append(f"| `{row.param}` | {row.where} | {row.kind} | {row.status} | {_cell(row.note)} |")
    text = "\n".join(lines) + "\n"
    return re.sub(
        r"\n\| parameter \| in \| type \| status \| notes \|\n\|---\|---\|---\|---\|---\|\n(?=\n|$)",
        "\n(no parameters)\n",
        text,
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


_ENDPOINT = re.compile(r"^## (GET|POST|PUT|DELETE|HEAD) (\S+)$")
_STATUS = re.compile(r"^Endpoint: \*\*(.+?)\*\*(?: — (.*))?$")
_ROW = re.compile(r"^\| `(.+?)` \| (query|body) \| (.*?) \| (.*?) \| (.*) \|$")


def parse(text: str) -> list[Row]:
    """The rows of a document :func:`render` wrote."""
    rows: list[Row] = []
    method = path = ""
    for line in text.splitlines():
        if m := _ENDPOINT.match(line):
            method, path = m.groups()
        elif (m := _STATUS.match(line)) and method:
            rows.append(Row(method, path, "", "", "endpoint", m.group(1), m.group(2) or ""))
        elif (m := _ROW.match(line)) and method:
            param, where, kind, status, note = m.groups()
            rows.append(Row(method, path, where, param, kind, status, note.replace("\\|", "|")))
    return rows


SPEC_NAME = Path("docs") / "reference" / "moby-api-v1.41.yaml"


def find_spec(checkout: Path) -> Path:
    """The v1.41 spec kept in a checkout (``docs/reference/``), or where ``DOCKYARD_API_SPEC`` says."""
    import os

    return Path(os.environ.get("DOCKYARD_API_SPEC") or checkout / SPEC_NAME)


def load_spec(path: Path) -> dict:
    import yaml  # only where the spec is read: a development dependency

    spec: dict = yaml.safe_load(path.read_text())
    return spec


def app_endpoints() -> dict[tuple[str, str], Endpoint]:
    """The declarations of the daemon's application (built without an engine: nothing is served)."""
    from dockyard.daemon.app import make_app

    return daemon_endpoints(make_app(None))  # type: ignore[arg-type]
