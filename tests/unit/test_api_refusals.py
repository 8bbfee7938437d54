"""Walk docs/api-coverage.md and send every refused parameter with a value other than its default:
each gets a 400 naming it (a refused endpoint: its 501 or 503), before the handler does anything."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from dockyard.daemon import coverage
from dockyard.daemon.params import Endpoint
from dockyard.engine import Engine
from dockyard.models.api import Allowed, marker_of
from tests.helpers.api import call_api
from tests.helpers.drivers import StubExec, StubNetwork, use_drivers

DOC = Path(__file__).resolve().parents[2] / "docs" / "api-coverage.md"
ENDPOINTS = coverage.app_endpoints()
ROWS = [
    r
    for r in coverage.statuses(coverage.parse(DOC.read_text()), ENDPOINTS)
    if r.status in ("refused", "values") or (r.status.startswith("endpoint ") and not r.where)
]


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    monkeypatch = pytest.MonkeyPatch()
    use_drivers(monkeypatch, exec={"stub": StubExec}, network={"stub": StubNetwork})
    engine = Engine.open(tmp_path_factory.mktemp("refusals"), storage="vfs", execution="stub", network="stub")
    yield engine
    engine.close()
    monkeypatch.undo()


def _model_field(model: type[BaseModel], parts: list[str]) -> tuple[type[BaseModel], str, int]:
    """The model class and attribute a dotted API path ends at (``*``: a map's values), and how many
    parts of the path that is: the fields of a field refused as a whole are sent inside it."""
    head, rest = parts[0], parts[1:]
    for name, info in model.model_fields.items():
        if (info.alias or name) == head:
            inner = _inner_model(info.annotation)
            if not rest or inner is None or marker_of(model, name) is not None:
                return model, name, 1
            skip = 1 if rest[0] == "*" else 0
            found, field, used = _model_field(inner, rest[skip:])
            return found, field, used + 1 + skip
    raise AssertionError(f"{model.__name__} has no field {head}")


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
        if typing.get_args(arg):
            found = _inner_model(arg)
            if found is not None:
                return found
    return None


def _bad_value(model: type[BaseModel], name: str) -> Any:
    """A value of the field's type that is not its default (nor, for restricted fields, allowed)."""
    info = model.model_fields[name]
    marker = marker_of(model, name)
    text = str(info.annotation)
    if isinstance(marker, Allowed):
        if any(isinstance(v, bool) for v in marker.values):
            return False if True in marker.values else True
        return "not-a-supported-value"
    if text.startswith("list[dict") or "list[dict" in text:
        return [{"Path": "/dev/null"}]
    if "list[" in text:
        return ["x"]
    if "dict" in text:
        return {"x": "y"}
    if "bool" in text:
        return True
    if "int" in text:
        return 7
    return "x"


def _nest(parts: list[str], value: Any, model: type[BaseModel] | None) -> dict:
    """``HostConfig.Mounts.Type`` = v -> {"HostConfig": {"Mounts": [{"Type": v}]}}."""
    head, rest = parts[0], parts[1:]
    if not rest:
        return {head: value}
    annotation: Any = dict
    inner = None
    for name, info in model.model_fields.items() if model is not None else []:
        if (info.alias or name) == head:
            annotation, inner = info.annotation, _inner_model(info.annotation)
    if rest[0] == "*":
        return {head: {"net1": _nest(rest[1:], value, inner)}}
    child = _nest(rest, value, inner)
    return {head: [child] if "list[" in str(annotation) else child}


def _required_query(endpoint: Endpoint) -> dict[str, str]:
    found = {}
    for name, info in endpoint.query.model_fields.items() if endpoint.query else []:
        if info.is_required():
            found[info.alias or name] = "1" if info.annotation is int else "/"
    return found


def _request(row: coverage.Row) -> tuple[str, str, dict, Any, str]:
    """method, path, query, JSON body, and the name the message must carry."""
    endpoint = ENDPOINTS[(row.method, coverage._template(row.path))]
    path = "/v1.41" + row.path.replace("{id}", "dyt-target").replace("{name}", "dyt-target")
    if row.where == "query":
        model, name, _ = _model_field(endpoint.query, [row.param])
        value = _bad_value(model, name)
        query = {
            **_required_query(endpoint),
            row.param: str(value).lower()
            if isinstance(value, bool)
            else (value[0] if isinstance(value, list) else str(value)),
        }
        return row.method, path, query, None, row.param
    if row.where == "body":
        parts = row.param.split(".")
        model, name, used = _model_field(endpoint.body, parts)
        value = _bad_value(model, name)
        if used < len(parts):  # a field inside one refused as a whole: sent inside it
            inner = _nest(parts[used:], "x", None)
            value = [inner] if isinstance(value, list) else inner
        body = _nest(parts[:used], value, endpoint.body)
        return row.method, path, _required_query(endpoint), body, ".".join(parts[:used]).replace("*", "net1")
    return row.method, path, {}, {} if row.method in ("POST", "PUT") else None, ""


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r.method} {r.path} {r.param or '(endpoint)'}")
def test_refused_parameter_is_a_4xx_naming_it(engine, row):
    method, path, query, body, named = _request(row)

    async def script(client):
        response = await client.request(method, path, params=query, json=body)
        return response.status, response.headers.get("Content-Type"), await response.json()

    status, content_type, answer = call_api(engine, script)
    expected = int(row.status.split()[1]) if row.status.startswith("endpoint") else 400
    assert (status, content_type) == (expected, "application/json"), answer
    assert named in answer["message"], answer


def test_every_kind_of_refusal_is_walked():
    kinds = {r.status for r in ROWS}
    assert {"refused", "values", "endpoint 501", "endpoint 503"} <= kinds
    assert len([r for r in ROWS if r.where]) > 100
