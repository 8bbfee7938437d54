"""Distribution endpoints: pull (``POST /images/create?fromImage=``), push,
login (``POST /auth``) and search, over the distribution driver.

``X-Registry-Auth`` is base64url(JSON) of ``{username, password, serveraddress}``
(``e30=`` when not logged in).  Pull and push answer a JSON-lines progress
stream; an error found before the first message (an unknown manifest, a
refused login) is an ordinary HTTP error, as Docker answers it, and one found
later goes into the stream as ``errorDetail``.

Moving images in and out of the store is :mod:`dockyard.transfer`'s job.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Annotated, Any, Callable

from aiohttp import web
from pydantic import ConfigDict

from dockyard import auth_header
from dockyard.daemon.deps import engine as _engine
from dockyard.daemon.http import (
    add_route,
    cancel_when_client_leaves,
    in_own_thread,
    json_response,
    json_stream_response,
    refuse_route,
    write_message,
)
from dockyard.daemon.params import FilterKeys, FiltersParam, Query, RefusedEndpoint, body, query
from dockyard.errors import DockyardError, InvalidParameter, NotSupportedByDriver
from dockyard.filters import Filters
from dockyard.models.api import ApiModel
from dockyard.transfer import SEARCH_FILTERS, pull_image, push_image, search_images

log = logging.getLogger(__name__)

Progress = Callable[[dict], None]


# -- the driver ----------------------------------------------------------------------------------


def registry_auth(request: web.Request) -> dict:
    return auth_header.decode(request.headers.get("X-Registry-Auth"))


# -- pull ----------------------------------------------------------------------------------------


async def _stream(request: web.Request, work: Callable[[Progress], Any]) -> web.StreamResponse:
    """Run ``work(progress)`` in a thread and stream its progress messages.

    Errors before the first message become the HTTP status; later ones go into
    the stream.  When the client leaves, the work's next progress report raises
    :class:`ClientLeft` in its thread: it stops there, cleaning up after itself."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    stop = threading.Event()

    def progress(message: dict) -> None:
        if stop.is_set():
            raise ClientLeft("the client went away")
        loop.call_soon_threadsafe(queue.put_nowait, message)

    task = asyncio.ensure_future(in_own_thread(work, progress, name="transfer"))
    response: web.StreamResponse | None = None

    async def relay() -> None:
        nonlocal response
        while True:
            getter = asyncio.ensure_future(queue.get())
            try:
                done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not getter.done():
                    getter.cancel()
            if getter not in done:
                break
            if response is None:
                response = await json_stream_response(request)
            await write_message(response, getter.result())
        while not queue.empty():
            if response is None:
                response = await json_stream_response(request)
            await write_message(response, queue.get_nowait())

    try:
        async with cancel_when_client_leaves(request):
            await relay()
    finally:
        if not task.done():  # the client left: the work stops at its next progress report
            stop.set()
            await asyncio.shield(asyncio.gather(task, return_exceptions=True))
    if stop.is_set():
        return response if response is not None else web.Response(status=499)
    exc = task.exception()
    if exc is not None:
        if response is None:
            raise exc
        message = exc.message if isinstance(exc, DockyardError) else f"internal error: {exc!r}"
        if not isinstance(exc, DockyardError):
            log.error("%s %s failed", request.method, request.path, exc_info=exc)
        await write_message(response, {"errorDetail": {"message": message}, "error": message})
    if response is None:
        response = await json_stream_response(request)
    return response


class ClientLeft(Exception):
    """Raised in a transfer's thread by its progress callback once the client has gone."""


async def pull(request: web.Request, from_image: str, tag: str) -> web.StreamResponse:
    """``POST /images/create?fromImage=NAME&tag=TAG`` (tag may be a digest)."""
    engine = _engine(request)
    if not from_image:
        raise InvalidParameter("fromImage must be given")
    if tag.startswith(("sha256:", "sha512:")):
        reference = f"{from_image}@{tag}"
    elif tag:
        reference = f"{from_image}:{tag}"
    else:
        reference = from_image
    auth = registry_auth(request)
    await request.read()
    return await _stream(request, lambda progress: pull_image(engine, reference, auth, progress))


# -- push ----------------------------------------------------------------------------------------


class PushQuery(Query):
    tag: str = ""


async def push(request: web.Request) -> web.StreamResponse:
    """``POST /images/{name}/push?tag=``: every tag of the repository when no tag is given."""
    engine = _engine(request)
    name = request.match_info["name"]
    tag = query(request, PushQuery).tag
    if not tag and ":" in name.rsplit("/", 1)[-1]:
        name, tag = name.rsplit(":", 1)
    tags = engine.images.push_tags(name, tag)
    auth = registry_auth(request)
    await request.read()
    return await _stream(request, lambda progress: push_image(engine, name, tags, auth, progress))


# -- login and search ----------------------------------------------------------------------------


class AuthConfig(ApiModel):
    """Body of ``POST /auth`` (lower-case names, as the API spells them)."""

    model_config = ConfigDict(alias_generator=None, populate_by_name=True, extra="ignore")

    username: str = ""
    password: str = ""
    #: deprecated in Docker; dockyard's registry uses it to register an account at login (docs/registry.md)
    email: str = ""
    serveraddress: str = ""


async def login(request: web.Request) -> web.Response:
    """``POST /auth``: check credentials against a registry."""
    engine = _engine(request)
    auth = body(request, AuthConfig)
    result = await asyncio.to_thread(
        engine.distribution.login, auth.serveraddress, auth.username, auth.password, auth.email
    )
    return json_response({"IdentityToken": result.get("IdentityToken", ""), "Status": result["Status"]})


class SearchQuery(Query):
    term: str = ""
    limit: int = 25
    filters: Annotated[FiltersParam, FilterKeys(*SEARCH_FILTERS)] = Filters()


async def search(request: web.Request) -> web.Response:
    """``GET /images/search?term=&limit=&filters=``."""
    q = query(request, SearchQuery)
    results = await asyncio.to_thread(
        search_images, _engine(request), q.term, q.limit, registry_auth(request), q.filters
    )
    return json_response(results)


def register(app: web.Application) -> None:
    """Routes other than ``POST /images/create`` (which delegates to :func:`pull`)."""
    add_route(app, "POST", r"/images/{name:.+}/push", push, query=PushQuery)
    add_route(app, "POST", "/auth", login, body=AuthConfig)
    add_route(app, "GET", "/images/search", search, query=SearchQuery)
    refuse_route(
        app,
        "GET",
        r"/distribution/{name:.+}/json",
        RefusedEndpoint(NotSupportedByDriver, "GET /distribution/{name}/json is not supported by dockyard"),
    )
