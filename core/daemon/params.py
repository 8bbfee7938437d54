"""What each route takes: its query parameters and its JSON body, declared as models.

A route registers with the models it reads (``add_route(..., query=ListQuery,
body=CreateRequest)``); :func:`bind` parses and checks both before the handler
runs, so a handler only ever sees values it implements, and the declarations
are the table ``docs/api-coverage.md`` is generated from
(:mod:`dockyard.daemon.coverage`).

Query parameters follow moby's ``httputils``: an empty value is an absent one;
booleans are true unless ``""``, ``0``, ``no``, ``false`` or ``none``; integers
must parse.  Parameters outside API v1.41 are ignored, as Docker ignores them.
Fields marked :class:`~dockyard.models.api.Refused` or
:class:`~dockyard.models.api.Allowed` are refused with a 400 naming them when a
client sets them to anything else than their default, and a ``filters`` key
the endpoint does not know is ``Invalid filter 'key'``.
"""

from __future__ import annotations

import functools
import json
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from aiohttp import web
from multidict import MultiMapping
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from dockyard.errors import DockyardError, InvalidParameter
from dockyard.filters import Filters
from dockyard.models.api import check_supported, unsupported

__all__ = [
    "Bool",
    "Endpoint",
    "FilterKeys",
    "FiltersParam",
    "Query",
    "RefusedEndpoint",
    "bind",
    "body",
    "optional_body",
    "parse_body",
    "query",
    "read_json",
    "refuse",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Q = TypeVar("Q", bound="Query")
B = TypeVar("B", bound=BaseModel)

# typed request keys where aiohttp has them (3.12+), plain strings before
_QUERY: Any = web.RequestKey("dockyard.query", object) if hasattr(web, "RequestKey") else "dockyard.query"
_BODY: Any = web.RequestKey("dockyard.body", object) if hasattr(web, "RequestKey") else "dockyard.body"


def _docker_bool(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "no", "false", "none")
    return value


#: a query boolean as moby reads one (``httputils.BoolValue``)
Bool = Annotated[bool, BeforeValidator(_docker_bool)]


@dataclass(frozen=True)
class FilterKeys:
    """The ``filters`` keys an endpoint accepts (others are ``Invalid filter``)."""

    keys: tuple[str, ...]

    def __init__(self, *keys: str) -> None:
        object.__setattr__(self, "keys", keys)


def _parse_filters(value: Any) -> Any:
    return Filters.parse(value) if isinstance(value, str) or value is None else value


#: the ``filters`` parameter; declare its keys with :class:`FilterKeys` in the field's metadata
FiltersParam = Annotated[Filters, BeforeValidator(_parse_filters)]


class Query(BaseModel):
    """Query parameters of one endpoint; each field's alias (when given) is the API's name."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True, arbitrary_types_allowed=True)

    @classmethod
    def parse(cls: type[Q], params: MultiMapping[str]) -> Q:
        data: dict[str, Any] = {}
        for name, info in cls.model_fields.items():
            key = info.alias or name
            if key not in params:
                continue
            if typing.get_origin(info.annotation) is list:
                data[key] = [v for v in params.getall(key) if v != ""]
            elif params[key] != "":
                data[key] = params[key]
        try:
            parsed = cls.model_validate(data)
        except ValidationError as exc:
            raise InvalidParameter(_validation_message(exc, "query parameter ")) from None
        problems = ["query parameter " + p for p in unsupported(parsed)]
        if problems:
            raise InvalidParameter("; ".join(problems))
        for name, info in cls.model_fields.items():
            for item in info.metadata:
                if isinstance(item, FilterKeys):
                    getattr(parsed, name).validate(item.keys)
        return parsed


@dataclass(frozen=True)
class RefusedEndpoint:
    """A whole endpoint dockyard answers with an error: a feature it does not have
    (:class:`~dockyard.errors.NotSupportedByDriver`, 501) or one Docker itself refuses in this
    state (:class:`~dockyard.errors.Unavailable`, 503: swarm endpoints on a node in no swarm)."""

    error: type[DockyardError]
    message: str

    @property
    def status(self) -> int:
        return self.error.status


@dataclass(frozen=True)
class Endpoint:
    """What one route reads: the declaration :mod:`dockyard.daemon.coverage` reports from."""

    query: type[Query] | None = None
    #: the JSON body's model; None for no body or a binary one (see ``binary_body``)
    body: type[BaseModel] | None = None
    #: an empty body is allowed (the handler then sees None)
    optional_body: bool = False
    #: a tar or other stream the handler reads itself (build context, import, load, archive)
    binary_body: bool = False
    refused: RefusedEndpoint | None = None


def bind(handler: Handler, endpoint: Endpoint) -> Handler:
    """Wrap ``handler`` so that its query and body are parsed and checked first."""

    @functools.wraps(handler)
    async def handle(request: web.Request) -> web.StreamResponse:
        if endpoint.query is not None:
            request[_QUERY] = endpoint.query.parse(request.query)
        if endpoint.body is not None:
            empty = endpoint.optional_body and not (await request.read()).strip()
            request[_BODY] = None if empty else await parse_body(request, endpoint.body)
        return await handler(request)

    handle.endpoint = endpoint  # type: ignore[attr-defined]
    return handle


def refuse(endpoint: RefusedEndpoint) -> Handler:
    """A handler for a refused endpoint."""

    async def handle(request: web.Request) -> web.StreamResponse:
        await request.read()  # the client may still be sending: take the body before answering
        raise endpoint.error(endpoint.message)

    handle.endpoint = Endpoint(refused=endpoint)  # type: ignore[attr-defined]
    return handle


def query(request: web.Request, model: type[Q]) -> Q:
    """The parsed query of a route registered with ``query=model``."""
    parsed = request[_QUERY]
    assert isinstance(parsed, model), f"{request.path} is registered with another query model"
    return parsed


def body(request: web.Request, model: type[B]) -> B:
    """The parsed JSON body of a route registered with ``body=model``."""
    parsed = request[_BODY]
    assert isinstance(parsed, model), f"{request.path} is registered with another body model"
    return parsed


def optional_body(request: web.Request, model: type[B]) -> B | None:
    """The parsed JSON body of a route registered with ``body=model, optional_body=True``."""
    parsed = request[_BODY]
    assert parsed is None or isinstance(parsed, model), f"{request.path} is registered with another body model"
    return parsed


async def read_json(request: web.Request) -> Any:
    """The request's JSON body ({} if empty).  A body must be sent as ``application/json``: a browser's
    cross-site form or ``text/plain`` request cannot be (see :mod:`dockyard.daemon.guard`)."""
    raw = await request.read()
    if not raw.strip():
        return {}
    if request.content_type != "application/json":
        raise InvalidParameter(
            f"unsupported Content-Type header ({request.headers.get('Content-Type', '')}): must be 'application/json'"
        )
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidParameter(f"invalid JSON in request body: {exc}") from None
    except RecursionError:
        raise InvalidParameter("invalid JSON in request body: nested too deeply") from None


async def parse_body(request: web.Request, model: type[B]) -> B:
    """Read, validate and check a JSON body against ``model``; 400 naming what is wrong or refused."""
    data = await read_json(request)
    if not isinstance(data, dict):
        raise InvalidParameter("the request body must be a JSON object")
    try:
        parsed = model.model_validate(data)
    except ValidationError as exc:
        raise InvalidParameter(_validation_message(exc, "")) from None
    check_supported(parsed)
    return parsed


def _validation_message(exc: ValidationError, prefix: str) -> str:
    parts = []
    for error in exc.errors()[:3]:
        location = ".".join(str(p) for p in error.get("loc", ()))
        parts.append(f"{prefix}{location}: {error.get('msg')}")
    return "invalid request: " + "; ".join(parts)
