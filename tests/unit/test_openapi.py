"""/openapi.json: generated from the route table and the models, valid OpenAPI 3.1, and consistent with the
Engine API v1.41 spec (every path, status and answer field is the spec's, with the spec's types)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import BaseModel, Field

from dockyard.daemon import coverage, openapi
from dockyard.daemon.app import make_app
from dockyard.daemon.http import json_response

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return openapi.document(make_app(object()))  # routes only: nothing here calls the engine


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return coverage.load_spec(coverage.find_spec(ROOT))


def test_every_route_is_documented(doc) -> None:
    """Each route the daemon serves has its answers in RESPONSES, unless it declares itself refused."""
    app = make_app(object())
    routes = {
        (method, path)
        for method, path, handler in openapi._routes(app)
        if getattr(getattr(handler, "endpoint", None), "refused", None) is None
    }
    assert sorted(routes - set(openapi.RESPONSES)) == []
    assert {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops} >= routes
    assert doc["servers"] == [{"url": "/v1.41"}]


@pytest.mark.requires_schemathesis
def test_the_document_is_valid_openapi(doc) -> None:
    import schemathesis

    schema = schemathesis.openapi.from_dict(doc)
    operations = [result.ok() for result in schema.get_all_operations()]  # .ok() raises on an invalid operation
    assert len(operations) == sum(len(methods) for methods in doc["paths"].values())


def test_route_declarations_become_parameters_and_bodies() -> None:
    """What a route declares (the ``endpoint`` its handler carries) is what the document says."""

    class ListQuery(BaseModel):
        all_: bool = Field(False, alias="all")
        limit: int = -1
        filters: dict[str, list[str]] = Field(default_factory=dict)

    class CreateBody(BaseModel):
        Image: str
        Cmd: list[str] | None = None

    class Declared:
        def __init__(self, **fields: Any) -> None:
            self.query, self.body, self.optional_body, self.binary_body, self.refused = None, None, False, False, None
            self.__dict__.update(fields)

    async def listing(request: web.Request) -> web.Response:
        """List things."""
        return json_response([])

    async def creating(request: web.Request) -> web.Response:
        return json_response({})

    listing.endpoint = Declared(query=ListQuery)  # type: ignore[attr-defined]
    creating.endpoint = Declared(body=CreateBody)  # type: ignore[attr-defined]
    app = web.Application()
    app.router.add_route("GET", "/containers/json", listing)
    app.router.add_route("POST", "/containers/create", creating)
    doc = openapi.document(app)
    get = doc["paths"]["/containers/json"]["get"]
    assert get["summary"] == "List things."
    assert [(p["name"], p["in"], p["schema"].get("type")) for p in get["parameters"]] == [
        ("all", "query", "boolean"),
        ("limit", "query", "integer"),
        ("filters", "query", "string"),
    ]
    post = doc["paths"]["/containers/create"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/CreateBody"}
    assert doc["components"]["schemas"]["CreateBody"]["required"] == ["Image"]
    assert post["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ContainerCreateResponse"
    }


# -- against the v1.41 spec --------------------------------------------------------------------------


def _resolve(schema: dict, definitions: dict, prefix: str) -> dict:
    while "$ref" in schema:
        schema = definitions[schema["$ref"].removeprefix(prefix)]
    if "allOf" in schema:
        merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
        for part in schema["allOf"]:
            part = _resolve(part, definitions, prefix)
            merged["properties"].update(part.get("properties", {}))
        merged["properties"].update(schema.get("properties", {}))
        return merged
    return schema


def _ours_type(schema: dict) -> tuple[str | None, dict]:
    """(JSON type, the schema without its null alternative)."""
    if "anyOf" in schema:
        options = [s for s in schema["anyOf"] if s.get("type") != "null"]
        if len(options) == 1:
            return _ours_type(options[0])
        return None, schema
    return schema.get("type"), schema


def _compare(ours: dict, theirs: dict, where: str, our_defs: dict, their_defs: dict, problems: list[str]) -> None:
    ours = _resolve(ours, our_defs, "#/components/schemas/")
    theirs = _resolve(theirs, their_defs, "#/definitions/")
    kind, ours = _ours_type(ours)
    if kind is None and "$ref" in ours:
        ours = _resolve(ours, our_defs, "#/components/schemas/")
        kind = ours.get("type")
    their_kind = theirs.get("type")
    if kind and their_kind and kind != their_kind and not (kind == "integer" and their_kind == "number"):
        problems.append(f"{where}: {kind} here, {their_kind} in the spec")
        return
    if kind == "array" and "items" in ours and "items" in theirs:
        _compare(ours["items"], theirs["items"], where + "[]", our_defs, their_defs, problems)
    if kind == "object" and ours.get("properties") and theirs.get("properties"):
        for name, field in ours["properties"].items():
            if name not in theirs["properties"]:
                problems.append(f"{where}.{name}: not in the spec")
                continue
            _compare(field, theirs["properties"][name], f"{where}.{name}", our_defs, their_defs, problems)


def test_paths_and_statuses_are_the_specs(doc, spec) -> None:
    problems = [
        f"{method} {path}: documented, not in the spec"
        for method, path in openapi.RESPONSES
        if method.lower() not in spec["paths"].get(path, {})
    ]
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            theirs = spec["paths"].get(path, {}).get(method)
            if theirs is None:
                problems.append(f"{method.upper()} {path}: not in the spec")
                continue
            ours_ok = {int(s) for s, answer in operation["responses"].items() if "$ref" not in answer}
            extra = ours_ok - {int(s) for s in theirs["responses"]}
            if extra:
                problems.append(f"{method.upper()} {path}: statuses {sorted(extra)} are not the spec's")
            path_params = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            spec_params = {p["name"] for p in theirs.get("parameters", []) if p["in"] == "path"}
            if path_params != spec_params:
                problems.append(f"{method.upper()} {path}: path parameters {path_params} vs {spec_params}")
    assert problems == []


def test_answers_have_the_specs_fields_and_types(doc, spec) -> None:
    problems: list[str] = []
    checked = 0
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            theirs = spec["paths"].get(path, {}).get(method, {}).get("responses", {})
            for status, answer in operation["responses"].items():
                schema = answer.get("content", {}).get("application/json", {}).get("schema")
                their_schema = theirs.get(int(status), {}).get("schema")
                if not schema or not their_schema or "$ref" in answer or answer.get("x-stream"):
                    continue
                checked += 1
                _compare(
                    schema,
                    their_schema,
                    f"{method.upper()} {path} {status}",
                    doc["components"]["schemas"],
                    spec["definitions"],
                    problems,
                )
    assert checked >= 25
    assert problems == []


# -- serving -------------------------------------------------------------------------------------------------


def _get(paths: list[tuple[str, str]]) -> list[tuple[int, dict, bytes]]:
    async def main():
        async with TestClient(TestServer(make_app(object()), host="127.0.0.1")) as client:
            out = []
            for method, path in paths:
                response = await client.request(method, path)
                out.append((response.status, dict(response.headers), await response.read()))
            return out

    return asyncio.run(main())


def test_served_documents_and_405() -> None:
    (spec_json, docs, bundle, css, init, missing, trace, options, unknown, deep) = _get(
        [
            ("GET", "/openapi.json"),
            ("GET", "/docs"),
            ("GET", "/docs/swagger-ui-bundle.js"),
            ("GET", "/docs/swagger-ui.css"),
            ("GET", "/docs/init.js"),
            ("GET", "/docs/../app.py"),
            ("TRACE", "/v1.41/volumes"),
            ("OPTIONS", "/v1.41/containers/json"),
            ("GET", "/nothing/here"),
            ("GET", "/v1.41/containers/127.0.0.1:5000/app:1/logs"),
        ]
    )
    assert spec_json[0] == 200 and spec_json[1]["Content-Type"] == "application/json"
    assert (
        docs[0] == 200
        and b"swagger-ui-bundle.js" in docs[2]
        and "script-src 'self'" in docs[1]["Content-Security-Policy"]
    )
    assert bundle[0] == 200 and len(bundle[2]) > 100_000 and css[0] == 200
    assert b'url: "/openapi.json"' in init[2]
    assert missing[0] == 404
    # a path served under other methods: 405 naming them (moby's router), the most specific path deciding
    assert trace[0] == 405 and trace[1]["Allow"] == "GET"
    assert options[0] == 405 and options[1]["Allow"] == "GET"  # not DELETE of /containers/{id}
    assert unknown[0] == 404 and b"page not found" in unknown[2]
    # a GET deeper than any container route is a 404, not a 405 from DELETE /containers/{id} (which takes a
    # name or a legacy link's /<parent>/<alias>)
    assert deep[0] == 404
