"""The daemon describes its own API: ``/openapi.json`` (OpenAPI 3.1) and ``/docs`` (Swagger UI).

The document is generated, never written by hand:

* the **paths** are the daemon's route table (:func:`dockyard.daemon.app.make_app`),
  each unversioned route once, under the server URL ``/v1.41`` as Docker's spec
  has it (``basePath``);
* the **parameters and request bodies** are the query and body models each route
  declares (the ``endpoint`` a route handler carries, :class:`dockyard.daemon.params.Endpoint`,
  the same declarations ``docs/api-coverage.md`` is made from); a route that
  declares none documents none;
* the **answers** are the models of :mod:`dockyard.models.responses`, placed by
  :data:`RESPONSES`; every error is :class:`~dockyard.models.responses.ErrorResponse`.

Streams (logs, events, pulls, tar archives) are described by media type and
marked ``x-stream``, because no JSON schema describes a stream of them.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import BaseModel, TypeAdapter

from dockyard import API_VERSION, __version__
from dockyard.models import responses as r

__all__ = ["RESPONSES", "Answer", "document", "register"]

JSON = "application/json"
TAR = "application/x-tar"
RAW = "application/vnd.docker.raw-stream"


@dataclass(frozen=True)
class Answer:
    """One documented answer of an operation."""

    status: int
    description: str
    model: type[BaseModel] | None = None
    many: bool = False  # a JSON array of ``model``
    media: str | None = JSON  # None: no body
    stream: bool = False  # a stream of messages (JSON lines, raw output, tar)


def _ok(
    model: type[BaseModel] | None = None, *, status: int = 200, many: bool = False, description: str = "no error"
) -> tuple[Answer, ...]:
    return (Answer(status, description, model, many, JSON if model else None),)


def _no_content(description: str = "no error") -> tuple[Answer, ...]:
    return (Answer(204, description, media=None),)


def _stream(media: str, description: str) -> tuple[Answer, ...]:
    return (Answer(200, description, media=media, stream=True),)


_JSON_STREAM = _stream(JSON, "a stream of JSON messages, one a line (status, progress, errors)")

#: (method, path) -> the answers besides errors, for every route the daemon serves
RESPONSES: dict[tuple[str, str], tuple[Answer, ...]] = {
    ("GET", "/_ping"): (Answer(200, "OK", media="text/plain"),),
    ("HEAD", "/_ping"): (Answer(200, "OK", media=None),),
    ("GET", "/version"): _ok(r.SystemVersion),
    ("GET", "/info"): _ok(r.SystemInfo),
    ("GET", "/events"): _JSON_STREAM,
    ("POST", "/auth"): _ok(r.AuthResponse),
    # containers
    ("POST", "/containers/create"): _ok(r.ContainerCreateResponse, status=201, description="container created"),
    ("GET", "/containers/json"): _ok(r.ContainerSummary, many=True),
    ("GET", "/containers/{id}/json"): _ok(r.ContainerInspect),
    ("POST", "/containers/{id}/start"): (*_no_content(), Answer(304, "already started", media=None)),
    ("POST", "/containers/{id}/stop"): (*_no_content(), Answer(304, "already stopped", media=None)),
    ("POST", "/containers/{id}/kill"): _no_content(),
    ("POST", "/containers/{id}/restart"): _no_content(),
    ("POST", "/containers/{id}/pause"): _no_content(),
    ("POST", "/containers/{id}/unpause"): _no_content(),
    ("POST", "/containers/{id}/rename"): _no_content(),
    ("POST", "/containers/{id}/resize"): (Answer(200, "no error", media=None),),
    ("DELETE", "/containers/{id}"): _no_content(),
    ("POST", "/containers/{id}/wait"): _ok(r.ContainerWaitResponse),
    ("POST", "/containers/{id}/attach"): (
        Answer(101, "the connection, hijacked: stdin in, output out", media=RAW, stream=True),
    ),
    ("GET", "/containers/{id}/logs"): _stream(RAW, "the log, in frames (or raw for a TTY container)"),
    ("GET", "/containers/{id}/top"): _ok(r.ContainerTopResponse),
    ("GET", "/containers/{id}/stats"): (
        Answer(200, "one sample (stream=false) or one a line", media=JSON, stream=True),
    ),
    ("POST", "/containers/{id}/update"): _ok(r.ContainerUpdateResponse),
    ("GET", "/containers/{id}/changes"): _ok(r.FilesystemChange, many=True),
    ("GET", "/containers/{id}/export"): _stream(TAR, "the container's file system"),
    ("GET", "/containers/{id}/archive"): _stream(TAR, "the path, archived"),
    ("HEAD", "/containers/{id}/archive"): (Answer(200, "the path's stat in X-Docker-Container-Path-Stat", media=None),),
    ("PUT", "/containers/{id}/archive"): (Answer(200, "extracted", media=None),),
    ("POST", "/commit"): _ok(r.IdResponse, status=201),
    # execs
    ("POST", "/containers/{id}/exec"): _ok(r.IdResponse, status=201),
    ("POST", "/exec/{id}/start"): (
        Answer(200, "the exec's output (hijacked unless detached)", media=RAW, stream=True),
    ),
    ("GET", "/exec/{id}/json"): _ok(r.ExecInspect),
    ("POST", "/exec/{id}/resize"): (Answer(200, "resized", media=None),),
    # images
    ("GET", "/images/json"): _ok(r.ImageSummary, many=True),
    ("POST", "/images/create"): _JSON_STREAM,
    ("GET", "/images/{name}/json"): _ok(r.ImageInspect),
    ("GET", "/images/{name}/history"): _ok(r.HistoryResponseItem, many=True),
    ("POST", "/images/{name}/tag"): (Answer(201, "tagged", media=None),),
    ("DELETE", "/images/{name}"): _ok(r.ImageDeleteResponseItem, many=True),
    ("POST", "/images/{name}/push"): _JSON_STREAM,
    ("GET", "/images/search"): _ok(r.ImageSearchResponseItem, many=True),
    ("GET", "/images/get"): _stream(TAR, "the images, in docker-archive format"),
    ("POST", "/images/load"): _JSON_STREAM,
    ("POST", "/build"): _JSON_STREAM,
    # volumes and networks
    ("GET", "/volumes"): _ok(r.VolumeListResponse),
    ("POST", "/volumes/create"): _ok(r.Volume, status=201),
    ("GET", "/volumes/{name}"): _ok(r.Volume),
    ("DELETE", "/volumes/{name}"): _no_content(),
    ("POST", "/volumes/prune"): _ok(r.VolumePruneResponse),
    ("GET", "/networks"): _ok(r.Network, many=True),
    ("POST", "/networks/create"): _ok(r.NetworkCreateResponse, status=201),
    ("GET", "/networks/{id}"): _ok(r.Network),
    ("DELETE", "/networks/{id}"): _no_content(),
    ("POST", "/networks/{id}/connect"): (Answer(200, "connected", media=None),),
    ("POST", "/networks/{id}/disconnect"): (Answer(200, "disconnected", media=None),),
    ("POST", "/networks/prune"): _ok(r.NetworkPruneResponse),
    ("POST", "/containers/prune"): _ok(r.ContainerPruneResponse),
    ("POST", "/images/prune"): _ok(r.ImagePruneResponse),
    ("POST", "/build/prune"): _ok(r.BuildPruneResponse),
    ("GET", "/system/df"): _ok(r.SystemDataUsageResponse),
    ("GET", "/plugins"): _ok(r.Plugin, many=True),
    ("GET", "/images/{name}/get"): _stream(TAR, "the image, in docker-archive format"),
    ("GET", "/containers/{id}/attach/ws"): (
        Answer(101, "a websocket carrying the container's stdio", media=None, stream=True),
    ),
}

#: the errors any operation may answer, as Docker does: {"message": ...}
ERRORS = {
    400: "bad parameter",
    403: "refused (origin or host)",
    404: "no such object",
    409: "conflict",
    500: "server error",
    501: "not implemented by a driver",
    503: "unavailable",
}

_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")


def _routes(app: web.Application) -> list[tuple[str, str, Any]]:
    """(method, path template, handler) of each unversioned Engine API route."""
    found = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter") or ""
        if route.method == "*" or path.startswith(("/v{", "/ui", "/docs")) or path in ("/openapi.json",) or not path:
            continue
        found.append((route.method, _PARAM.sub(r"{\1}", path), route.handler))
    return found


class _Schemas:
    """Components: each model's JSON schema once, referenced by name."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def ref(self, model: type[BaseModel]) -> dict[str, Any]:
        if model.__name__ not in self.components:
            try:
                schema = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
            except Exception:  # noqa: BLE001 - a type without a JSON schema: an object is all we can say
                schema = {"type": "object", "title": model.__name__}
            for name, definition in schema.pop("$defs", {}).items():
                self.components.setdefault(name, definition)
            self.components[model.__name__] = schema
        return {"$ref": f"#/components/schemas/{model.__name__}"}


def _filter_keys(field: Any) -> tuple[str, ...] | None:
    """The ``filters`` keys a field declares (``dockyard.daemon.params.FilterKeys`` in its metadata)."""
    for item in field.metadata:
        if type(item).__name__ == "FilterKeys":
            return tuple(item.keys)
    return None


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    parameters = []
    for name, field in model.model_fields.items():
        keys = _filter_keys(field)
        if keys is not None:  # a JSON object in the query string: {"key": ["value", ...]}
            parameters.append(
                {
                    "name": field.alias or name,
                    "in": "query",
                    "required": False,
                    "description": "JSON-encoded filters: " + ", ".join(keys),
                    "content": {
                        JSON: {
                            "schema": {
                                "type": "object",
                                "propertyNames": {"enum": list(keys)},
                                "additionalProperties": {"type": "array", "items": {"type": "string"}},
                            }
                        }
                    },
                }
            )
            continue
        try:
            schema = TypeAdapter(field.annotation or Any).json_schema()
        except Exception:  # noqa: BLE001 - filters and other custom types travel as strings
            schema = {"type": "string"}
        if schema.get("type") in ("object", "array") or "$ref" in schema or "$defs" in schema:
            schema = {"type": "string", "description": "JSON-encoded"}
        parameter: dict[str, Any] = {
            "name": field.alias or name,
            "in": "query",
            "required": field.is_required(),
            "schema": schema,
        }
        notes = [
            str(m.__class__.__name__).lower() + (f": {m.why}" if getattr(m, "why", "") else "")
            for m in field.metadata
            if m.__class__.__name__ in ("Refused", "Allowed", "NoOp")
        ]
        if field.description or notes:
            parameter["description"] = "; ".join(filter(None, [field.description or "", *notes]))
        parameters.append(parameter)
    return parameters


def _operation(method: str, path: str, handler: Any, schemas: _Schemas) -> dict[str, Any]:
    module = handler.__module__.rsplit(".", 1)[-1]
    doc = (handler.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ").replace("``", "`")
    operation: dict[str, Any] = {"operationId": f"{module}.{handler.__name__}.{method.lower()}", "tags": [module]}
    if doc:
        operation["summary"] = doc
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}} for name in _PARAM.findall(path)
    ]
    endpoint = getattr(handler, "endpoint", None)
    refused = getattr(endpoint, "refused", None)
    query_model = getattr(endpoint, "query", None)
    if query_model is not None:
        parameters += _query_parameters(query_model)
    if parameters:
        operation["parameters"] = parameters
    body_model = getattr(endpoint, "body", None)
    if body_model is not None:
        operation["requestBody"] = {
            "required": not getattr(endpoint, "optional_body", False),
            "content": {JSON: {"schema": schemas.ref(body_model)}},
        }
    elif getattr(endpoint, "binary_body", False):
        operation["requestBody"] = {"content": {TAR: {"schema": {"type": "string", "format": "binary"}}}}
    answers: dict[str, Any] = {}
    if refused is not None:
        operation["description"] = f"dockyard answers {refused.status}: {refused.message}"
        operation["x-dockyard-refused"] = refused.status
        schemas.ref(r.ErrorResponse)
        operation["responses"] = {str(refused.status): {"$ref": f"#/components/responses/Error{refused.status}"}}
        return operation
    for answer in RESPONSES.get((method, path), ()):
        entry: dict[str, Any] = {"description": answer.description}
        if answer.media is not None:
            schema: dict[str, Any] = {}
            if answer.model is not None:
                schema = schemas.ref(answer.model)
                if answer.many:
                    schema = {"type": "array", "items": schema}
            elif answer.media in (TAR, RAW):
                schema = {"type": "string", "format": "binary"}
            elif answer.media == "text/plain":
                schema = {"type": "string"}
            entry["content"] = {answer.media: {"schema": schema}}
        if answer.stream:
            entry["x-stream"] = True
        answers[str(answer.status)] = entry
    if answers and all(a.stream for a in RESPONSES[(method, path)]):
        operation["x-stream"] = True
    schemas.ref(r.ErrorResponse)
    for status in ERRORS:
        answers.setdefault(str(status), {"$ref": f"#/components/responses/Error{status}"})
    operation["responses"] = answers
    return operation


def document(app: web.Application) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``app``'s Engine API routes."""
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for method, path, handler in sorted(_routes(app), key=lambda item: (item[1], item[0])):
        paths.setdefault(path, {})[method.lower()] = _operation(method, path, handler, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "dockyard Engine API",
            "version": API_VERSION,
            "description": f"The Docker Engine API v{API_VERSION} as dockyard {__version__} serves it. Every "
            "path is also served without the version prefix.",
            "x-dockyard-version": __version__,
        },
        "servers": [{"url": f"/v{API_VERSION}"}],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.components.items())),
            "responses": {
                f"Error{status}": {
                    "description": description,
                    "content": {JSON: {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
                }
                for status, description in ERRORS.items()
            },
        },
    }


# -- serving ------------------------------------------------------------------------------------

_DOCS = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dockyard Engine API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css"><link rel="icon" href="data:,"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script><script src="/docs/init.js"></script></body></html>
"""
_INIT = """window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
  supportedSubmitMethods: ["get", "head"]});
"""
_DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'"
)


@functools.cache
def _swagger_file(name: str) -> bytes | None:
    """A file of Swagger UI, from the ``swagger-ui-bundle`` package (None when it is not installed)."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        return None
    from pathlib import Path

    path = Path(swagger_ui_path) / name
    return path.read_bytes() if path.is_file() else None


def register(app: web.Application) -> None:
    """``/openapi.json`` and ``/docs`` (the document is made once, on first request)."""
    cached: list[bytes] = []

    async def spec(request: web.Request) -> web.Response:
        if not cached:
            cached.append(json.dumps(document(request.app), indent=1).encode())
        return web.Response(body=cached[0], headers={"Content-Type": JSON})

    async def docs(request: web.Request) -> web.Response:
        return web.Response(
            text=_DOCS,
            content_type="text/html",
            headers={"Content-Security-Policy": _DOCS_CSP, "X-Frame-Options": "DENY"},
        )

    async def asset(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name == "init.js":
            return web.Response(text=_INIT, content_type="text/javascript")
        body = _swagger_file(name) if name in ("swagger-ui.css", "swagger-ui-bundle.js") else None
        if body is None:
            from dockyard.errors import NotFound

            raise NotFound(
                f"no such file: {name}"
                if name not in ("swagger-ui.css", "swagger-ui-bundle.js")
                else "Swagger UI is not installed (pip install swagger-ui-bundle-v2); /openapi.json is"
            )
        return web.Response(
            body=body,
            content_type="text/css" if name.endswith(".css") else "text/javascript",
            headers={"Cache-Control": "max-age=3600"},
        )

    app.router.add_get("/openapi.json", spec)
    app.router.add_get("/docs", docs)
    app.router.add_get("/docs/{name}", asset)
